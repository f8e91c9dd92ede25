/*
 * The keystore provider: its public entry point (U).
 *
 * Built in:   OSSL_PROVIDER_add_builtin(libctx, KS_PROVIDER_NAME,
 *                                       ks_provider_init);
 *             OSSL_PROVIDER_load(libctx, "default");      (needed: see below)
 *             OSSL_PROVIDER_load(libctx, KS_PROVIDER_NAME);
 *             EVP_set_default_properties(libctx, "?provider=keystore");
 *             (before any SSL_CTX exists: SSL_CTX_new caches its ciphers)
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

#define KS_PROVIDER_NAME "keystore"

int ks_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx);

#endif /* KS_PROVIDER_H */
