/*
 * The keystore provider: its public entry point (U).
 *
 * Built in:   OSSL_PROVIDER_add_builtin(libctx, KS_PROVIDER_NAME,
 *                                       ks_provider_init);
 *             OSSL_PROVIDER_load(libctx, "default");      (needed: see below)
 *             OSSL_PROVIDER_load(libctx, KS_PROVIDER_NAME);
 *             EVP_set_default_properties(libctx, "?provider=keystore");
 *             (before any SSL_CTX exists: SSL_CTX_new caches its ciphers)
 *             ks_provider_prime(libctx, NULL);            (see below)
 * As a module: build/lib/ossl-modules/keystore.so, whose OSSL_provider_init
 *             is the same function (openssl.cnf: module = .../keystore.so).
 *
 * The provider needs the default provider in the same library context: it
 * forwards every call that libssl did not mark as a sealed-token call to
 * the default provider's implementation of the same algorithm.
 *
 * At init it creates the keystore with ks_init(NULL, ...) if nobody did
 * yet (ks_stats() fails).  NGINX's module calls ks_init() itself, earlier,
 * in the master (with its heap size and, later, the sealing key), so the
 * provider finds the keystore ready there; a failed ks_init() fails the
 * provider's init (fail closed).  See openssl-patch/provider/README.md.
 */

#ifndef KS_PROVIDER_H
#define KS_PROVIDER_H

#include <openssl/core.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/provider.h>
#include <string.h>

#define KS_PROVIDER_NAME "keystore"

int ks_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx);

/*
 * Fetches every algorithm of the keystore provider once, without naming a
 * provider, with the property query libssl will use (the SSL_CTX's propq:
 * NULL for SSL_CTX_new).  Call it right after EVP_set_default_properties(),
 * and again after anything that flushes OpenSSL's method cache (changing
 * the default properties, loading or unloading a provider), before the
 * program uses a key of the default provider of one of these types (signs
 * with an EC certificate key).  1 if every fetch landed on the keystore.
 *
 * Why: OpenSSL 3.5's method cache answers a fetch that names no provider
 * with the first cached method of that name and query string from any
 * provider (crypto/property/property.c, query_cmp() ignores the provider
 * when one side has none).  EVP caches a provider-specific fetch whenever
 * it uses a key with another provider's operation.  If the default's "EC"
 * key management is cached first, libssl's EVP_PKEY_CTX_new_from_name(
 * libctx, "EC", propq) gets it, its ECDHE key shares are made in U, the
 * default's ECDH ignores the sealing marker, and the handshakes fail
 * (closed: T takes the raw secret for a token).
 * Now that the keystore has ECDSA (ksp_sig.c), the preferred signature is
 * ours, so signing first with a default-provider EC key (a certificate key
 * decoded in U) caches the keystore's "EC" key management, not the
 * default's: that order no longer loses ECDHE (test_provider's
 * method_cache_order checks a P-256 handshake after it makes its key
 * shares in T).  Priming stays the safe call: anything else that caches
 * the default's "EC" first (an operation the keystore does not offer on a
 * default EC key, or a fetch with "provider=default" under the same
 * query) would still lose it.  SSL_CTX_new() itself fetches every group's
 * key management, so a program that creates its SSL_CTXs first is safe.
 * (A static inline function: the provider itself never links libcrypto.)
 */
static inline int
ks_provider_prime(OSSL_LIB_CTX *libctx, const char *propq)
{
    static const char *const kdfs[] = { "TLS13-KDF", "TLS1-PRF", "HKDF" };
    static const char *const ciphers[] = {
        "AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"
    };
    static const char *const keymgmts[] = {
        "X25519", "X448", "EC", "X25519MLKEM768"
    };
    static const char *const exchs[] = { "X25519", "X448", "ECDH" };
    const OSSL_PROVIDER *p;
    int ok = 1;
    size_t i;

#define KS_PRIME_ONE(type, fetch, prov, free_)                              \
    do {                                                                    \
        type *m_ = fetch;                                                   \
                                                                            \
        p = m_ == NULL ? NULL : prov(m_);                                   \
        ok &= p != NULL                                                     \
              && strcmp(OSSL_PROVIDER_get0_name(p), KS_PROVIDER_NAME) == 0; \
        free_(m_);                                                          \
    } while (0)
    for (i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++) {
        KS_PRIME_ONE(EVP_KDF, EVP_KDF_fetch(libctx, kdfs[i], propq),
                     EVP_KDF_get0_provider, EVP_KDF_free);
    }
    KS_PRIME_ONE(EVP_MAC, EVP_MAC_fetch(libctx, "HMAC", propq),
                 EVP_MAC_get0_provider, EVP_MAC_free);
    for (i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++) {
        KS_PRIME_ONE(EVP_CIPHER, EVP_CIPHER_fetch(libctx, ciphers[i], propq),
                     EVP_CIPHER_get0_provider, EVP_CIPHER_free);
    }
    for (i = 0; i < sizeof(keymgmts) / sizeof(keymgmts[0]); i++) {
        KS_PRIME_ONE(EVP_KEYMGMT, EVP_KEYMGMT_fetch(libctx, keymgmts[i], propq),
                     EVP_KEYMGMT_get0_provider, EVP_KEYMGMT_free);
    }
    for (i = 0; i < sizeof(exchs) / sizeof(exchs[0]); i++) {
        KS_PRIME_ONE(EVP_KEYEXCH, EVP_KEYEXCH_fetch(libctx, exchs[i], propq),
                     EVP_KEYEXCH_get0_provider, EVP_KEYEXCH_free);
    }
    KS_PRIME_ONE(EVP_KEM, EVP_KEM_fetch(libctx, "X25519MLKEM768", propq),
                 EVP_KEM_get0_provider, EVP_KEM_free);
#undef KS_PRIME_ONE
    return ok;
}

#endif /* KS_PROVIDER_H */
