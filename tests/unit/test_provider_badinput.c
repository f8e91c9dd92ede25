/*
 * Bad input through EVP and the keystore provider (built in, preferred),
 * an MPK test: what an attacker in U, or a bug, can hand the provider
 * with libssl's markers.  (The same requests at the gate, without the
 * provider: test_kdf, test_aead.)  Sealing is on (libkeystore-test.so's
 * seal operations only look at what T made), and every refusal must
 * leave the output buffer as it was.
 *
 *   garbage token (TLS13-KDF, TLS1-PRF, HKDF): T cannot tell a garbage
 *       token from a real one (any bytes unseal to something), so the
 *       derivation works and its output is a token: it unseals to the
 *       derivation from what the garbage stands for, and is neither that
 *       nor the derivation from the garbage's own bytes.  Control: with
 *       sealing off the same call gives the derivation from the garbage's
 *       bytes, which the comparison sees.
 *   token of the wrong length: a key, secret, output or MAC key whose
 *       length does not fit its use is refused; control: the right one.
 *   unknown label: TLS 1.3 labels T does not know give secrets (an
 *       exporter's label is the application's): refused as anything but
 *       a secret, and the secret is a token.  An unknown output class or
 *       marker is refused.
 *   clear output for a secret class: refused for every secret label of
 *       TLS 1.3 and TLS 1.2 (also with the label split over two seeds)
 *       and for HKDF with a token; controls: the public outputs (TLS 1.3
 *       "iv" at 12 bytes, TLS 1.2 Finished) are served clear.
 *   wrong tag, truncated record: TLS 1.3-style records (GCM, ChaCha20-
 *       Poly1305) with a flipped tag bit or one byte short, TLS 1.2 GCM
 *       records one byte short or shorter than nonce and tag: refused,
 *       no plaintext out (T zeroes it); control: the record as sent
 *       decrypts, and the context keeps working after a failure.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "ks_test.h"
#include "test_provider.h"

#define EXPAND  EVP_KDF_HKDF_MODE_EXPAND_ONLY
#define EXTRACT EVP_KDF_HKDF_MODE_EXTRACT_ONLY

static const unsigned char hash32[32] = "a transcript hash of 32 bytes..";
static const unsigned char randoms[64] =
    "client random, 32 bytes........server random, 32 bytes........";

/* ---- KDF requests ---------------------------------------------------------- */

struct kdf_req {
    const char           *alg;      /* TLS13-KDF, TLS1-PRF, HKDF */
    int                   mode;     /* TLS13-KDF, HKDF */
    size_t                keylen;   /* the key (TLS1-PRF: the secret) */
    const char           *label;    /* TLS13-KDF label; TLS1-PRF first
                                     * seed (then the randoms); HKDF info */
    const char           *label2;   /* TLS1-PRF: a seed before the randoms */
    const char           *out;      /* mpktls-out; NULL: unmarked */
    int                   key_token;
    const char           *marker;   /* another marker (= 1), or NULL */
    size_t                kb_key, kb_iv;    /* TLS1-PRF key block */
};

/*
 * r with key (r->keylen bytes) through the provider propq selects (NULL:
 * the preferred one, the keystore; "provider=default": the reference,
 * unmarked).  1 or 0; errors stay queued.
 */
static int
kdf(const struct kdf_req *r, const char *propq, const unsigned char *key,
    unsigned char *out, size_t outlen)
{
    EVP_KDF *k = EVP_KDF_fetch(NULL, r->alg, propq);
    EVP_KDF_CTX *ctx = k == NULL ? NULL : EVP_KDF_CTX_new(k);
    OSSL_PARAM p[16], *q = p;
    int mode = r->mode, tok = r->key_token, one = 1, prf, ok;
    size_t zero = 0, kb_key = r->kb_key, kb_iv = r->kb_iv;

    assert_non_null(ctx);
    assert_string_equal(OSSL_PROVIDER_get0_name(EVP_KDF_get0_provider(k)),
                        propq == NULL ? KS_PROVIDER_NAME : "default");
    prf = strcmp(r->alg, "TLS1-PRF") == 0;
    *q++ = OSSL_PARAM_construct_utf8_string("digest", "SHA2-256", 0);
    if (!prf)
        *q++ = OSSL_PARAM_construct_int("mode", &mode);
    *q++ = OSSL_PARAM_construct_octet_string(prf ? "secret" : "key",
                                             (void *)key, r->keylen);
    if (prf) {
        *q++ = OSSL_PARAM_construct_octet_string("seed", (void *)r->label,
                                                 strlen(r->label));
        if (r->label2 != NULL)
            *q++ = OSSL_PARAM_construct_octet_string("seed",
                       (void *)r->label2, strlen(r->label2));
        *q++ = OSSL_PARAM_construct_octet_string("seed", (void *)randoms, 64);
    } else if (strcmp(r->alg, "HKDF") == 0) {
        *q++ = OSSL_PARAM_construct_octet_string("info", (void *)r->label,
                                                 strlen(r->label));
    } else {
        *q++ = OSSL_PARAM_construct_octet_string("prefix", "tls13 ", 6);
        *q++ = OSSL_PARAM_construct_octet_string("label", (void *)r->label,
                                                 strlen(r->label));
        if (mode == EXPAND)
            *q++ = OSSL_PARAM_construct_octet_string("data", (void *)hash32,
                                                     32);
    }
    if (r->out != NULL && propq == NULL) {
        *q++ = OSSL_PARAM_construct_utf8_string("mpktls-out", (char *)r->out,
                                                0);
        *q++ = OSSL_PARAM_construct_int("mpktls-key-token", &tok);
        if (r->kb_key != 0) {
            *q++ = OSSL_PARAM_construct_size_t("mpktls-kb-mac", &zero);
            *q++ = OSSL_PARAM_construct_size_t("mpktls-kb-key", &kb_key);
            *q++ = OSSL_PARAM_construct_size_t("mpktls-kb-iv", &kb_iv);
        }
        if (r->marker != NULL)
            *q++ = OSSL_PARAM_construct_int(r->marker, &one);
    }
    *q = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(ctx, out, outlen, p) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(k);
    return ok;
}

/* The marked request r with key fails with an error and writes nothing */
static void
refused(const struct kdf_req *r, const unsigned char *key, size_t outlen)
{
    unsigned char out[128];
    size_t i;

    assert_true(outlen <= sizeof(out));
    memset(out, 0xee, sizeof(out));
    ERR_clear_error();
    if (kdf(r, NULL, key, out, outlen))
        fail_msg("%s \"%s\" as %s (key %zu, out %zu): not refused", r->alg,
                 r->label, r->out, r->keylen, outlen);
    assert_true(ERR_peek_error() != 0);
    ERR_clear_error();
    for (i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0xee);
}

/* The marked request works and gives what the default derives from
 * ref_key, clear (cls < 0) or as a token of class cls */
static void
served(const struct kdf_req *r, const unsigned char *key,
    const unsigned char *ref_key, int cls, size_t outlen)
{
    unsigned char out[128], want[128], u[128];

    assert_true(outlen <= sizeof(out));
    if (!kdf(r, NULL, key, out, outlen)) {
        ERR_print_errors_fp(stderr);
        fail_msg("%s \"%s\" as %s: refused", r->alg, r->label, r->out);
    }
    assert_true(kdf(r, "provider=default", ref_key, want, outlen));
    if (cls < 0) {
        assert_memory_equal(out, want, outlen);
        return;
    }
    unseal((unsigned)cls, out, u, outlen);
    assert_memory_equal(u, want, outlen);       /* T derived this */
    assert_memory_not_equal(out, want, outlen); /* and sealed it */
}

/* ---- garbage tokens ---------------------------------------------------------- */

static const struct kdf_req garbage_cases[] = {
    { "TLS13-KDF", EXPAND, 32, "c hs traffic", NULL, "secret", 1, NULL, 0, 0 },
    { "TLS1-PRF", 0, 48, "master secret", NULL, "secret", 1, NULL, 0, 0 },
    { "HKDF", EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, 32, "an info", NULL,
      "secret", 1, NULL, 0, 0 },
};

static void
garbage_token(void **state)
{
    const struct kdf_req *r = *state;
    unsigned char g[64], ug[64], out[64], raw[64];
    size_t n = r->keylen;

    assert_int_equal(RAND_bytes(g, sizeof(g)), 1);
    unseal(KS_SEAL_SECRET, g, ug, n);
    /* a token: of the derivation from what the garbage stands for */
    served(r, g, ug, KS_SEAL_SECRET, n);
    assert_true(kdf(r, NULL, g, out, n));
    assert_true(kdf(r, "provider=default", g, raw, n));
    assert_memory_not_equal(out, raw, n);   /* not from the bytes in clear */
    /* control: sealing off, the same call gives exactly that */
    identity(1);
    assert_true(kdf(r, NULL, g, out, n));
    identity(0);
    assert_memory_equal(out, raw, n);
    print_message("# %s: a garbage %zu-byte token gives a token (of the "
                  "derivation from what it unseals to)\n", r->alg, n);
}

/* ---- lengths ----------------------------------------------------------------- */

/* HMAC-SHA-256 with a MAC-key token of keylen bytes: 1 or 0 */
static int
hmac_token(const unsigned char *key, size_t keylen, unsigned char *out)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac == NULL ? NULL : EVP_MAC_CTX_new(mac);
    int one = 1, ok;
    size_t n = 0;
    OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string("digest", "SHA2-256", 0),
        OSSL_PARAM_int("mpktls-key-token", &one), OSSL_PARAM_END
    };

    assert_non_null(ctx);
    ok = EVP_MAC_init(ctx, key, keylen, p)
         && EVP_MAC_update(ctx, hash32, sizeof(hash32))
         && EVP_MAC_final(ctx, out, &n, 32) && n == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

static void
token_wrong_length(void **state)
{
    struct kdf_req r13 = { "TLS13-KDF", EXPAND, 48, "c hs traffic", NULL,
                           "secret", 1, NULL, 0, 0 };
    struct kdf_req prf = { "TLS1-PRF", 0, 47, "master secret", NULL,
                           "secret", 1, NULL, 0, 0 };
    unsigned char t[64], u[64], mac[32];

    (void)state;
    assert_int_equal(RAND_bytes(t, sizeof(t)), 1);
    /* a SHA-256 secret token of 48 bytes (a SHA-384 secret's length) or
     * 20 (no token length); control: 32 */
    refused(&r13, t, 32);
    r13.keylen = 20;
    refused(&r13, t, 32);
    r13.keylen = 32;
    unseal(KS_SEAL_SECRET, t, u, 32);
    served(&r13, t, u, KS_SEAL_SECRET, 32);
    /* the output: a SHA-256 secret of 48 bytes, a record key of 20 */
    refused(&r13, t, 48);
    r13.label = "key";
    r13.out = "record-key";
    refused(&r13, t, 20);
    served(&r13, t, u, KS_SEAL_RECORD_KEY, 16);
    /* a TLS 1.2 master-secret token of 47 bytes; control: 48 */
    refused(&prf, t, 48);
    prf.keylen = 48;
    unseal(KS_SEAL_SECRET, t, u, 48);
    served(&prf, t, u, KS_SEAL_SECRET, 48);
    /* a finished-key token of 48 bytes for HMAC-SHA-256; control: 32 */
    ERR_clear_error();
    assert_false(hmac_token(t, 48, mac));
    ERR_clear_error();
    assert_true(hmac_token(t, 32, mac));
}

/* ---- labels and output classes ---------------------------------------------- */

static void
unknown_label(void **state)
{
    struct kdf_req r = { "TLS13-KDF", EXPAND, 32, "unknown label", NULL,
                         "clear", 1, NULL, 0, 0 };
    unsigned char t[32], u[32];

    (void)state;
    assert_int_equal(RAND_bytes(t, sizeof(t)), 1);
    unseal(KS_SEAL_SECRET, t, u, 32);
    refused(&r, t, 32);
    r.out = "record-key";
    refused(&r, t, 16);
    r.out = "mac-key";
    refused(&r, t, 32);
    r.out = "public";                       /* no such class */
    refused(&r, t, 32);
    r.out = "secret";
    r.marker = "mpktls-foo";                /* no such marker */
    refused(&r, t, 32);
    /* control: as a secret, it is served, and sealed */
    r.marker = NULL;
    served(&r, t, u, KS_SEAL_SECRET, 32);
}

static void
clear_for_secret_class(void **state)
{
    static const struct {
        struct kdf_req r;
        size_t outlen;
    } secret[] = {
        { { "TLS13-KDF", EXPAND, 32, "c hs traffic", NULL, "clear", 1, NULL,
            0, 0 }, 32 },
        { { "TLS13-KDF", EXPAND, 32, "s ap traffic", NULL, "clear", 1, NULL,
            0, 0 }, 32 },
        { { "TLS13-KDF", EXPAND, 32, "res master", NULL, "clear", 1, NULL,
            0, 0 }, 32 },
        { { "TLS13-KDF", EXPAND, 32, "key", NULL, "clear", 1, NULL, 0, 0 },
          16 },
        { { "TLS13-KDF", EXPAND, 32, "finished", NULL, "clear", 1, NULL, 0,
            0 }, 32 },
        { { "TLS13-KDF", EXPAND, 32, "iv", NULL, "clear", 1, NULL, 0, 0 },
          16 },
        { { "TLS13-KDF", EXTRACT, 32, "derived", NULL, "clear", 1, NULL, 0,
            0 }, 32 },
        { { "TLS1-PRF", 0, 48, "master secret", NULL, "clear", 1, NULL, 0,
            0 }, 48 },
        { { "TLS1-PRF", 0, 48, "extended master secret", NULL, "clear", 1,
            NULL, 0, 0 }, 48 },
        { { "TLS1-PRF", 0, 48, "key expansion", NULL, "clear", 1, NULL, 0,
            0 }, 40 },
        { { "TLS1-PRF", 0, 48, "key ", "expansion", "clear", 1, NULL, 0, 0 },
          40 },
        { { "HKDF", EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, 32, "an info", NULL,
            "clear", 1, NULL, 0, 0 }, 32 },
    };
    struct kdf_req iv = { "TLS13-KDF", EXPAND, 32, "iv", NULL, "clear", 1,
                          NULL, 0, 0 };
    struct kdf_req fin = { "TLS1-PRF", 0, 48, "client finished", NULL,
                           "clear", 1, NULL, 0, 0 };
    struct kdf_req kb = { "TLS1-PRF", 0, 48, "key expansion", NULL,
                          "keyblock", 1, NULL, 16, 4 };
    struct kdf_req hkdf = secret[11].r;
    unsigned char t[48], u[48], out[40], want[40];
    size_t i;

    (void)state;
    assert_int_equal(RAND_bytes(t, sizeof(t)), 1);
    for (i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        refused(&secret[i].r, t, secret[i].outlen);
    /* controls: the public outputs are served clear; the key block as a
     * key block (keys sealed, the fixed IVs clear) */
    unseal(KS_SEAL_SECRET, t, u, 32);
    served(&iv, t, u, -1, 12);
    unseal(KS_SEAL_SECRET, t, u, 48);
    served(&fin, t, u, -1, 12);
    assert_true(kdf(&kb, NULL, t, out, 40));
    assert_true(kdf(&kb, "provider=default", u, want, 40));
    assert_memory_not_equal(out, want, 32);
    assert_memory_equal(out + 32, want + 32, 8);
    /* and HKDF with a raw key gives clear bytes */
    hkdf.key_token = 0;
    served(&hkdf, t, t, -1, 32);
    print_message("# %zu secret-class requests for clear output refused\n",
                  sizeof(secret) / sizeof(secret[0]));
}

/* ---- records ----------------------------------------------------------------- */

static const unsigned char header[5] = { 23, 3, 3, 0, 40 };

/* A TLS 1.3-style record context (the key is a record-key token) */
static EVP_CIPHER_CTX *
rec_ctx(const char *alg, int enc, const unsigned char *key)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, alg, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int one = 1;
    OSSL_PARAM p[] = { OSSL_PARAM_int("mpktls-key-token", &one),
                       OSSL_PARAM_END };

    assert_non_null(ctx);
    assert_int_equal(EVP_CipherInit_ex2(ctx, c, key, NULL, enc, p), 1);
    EVP_CIPHER_free(c);
    return ctx;
}

/* One TLS 1.3-style record (as tls13_meth.c): 1 or 0; errors cleared */
static int
rec13(EVP_CIPHER_CTX *ctx, const unsigned char nonce[12],
    const unsigned char *in, size_t len, unsigned char *out,
    unsigned char tag[16])
{
    int enc = EVP_CIPHER_CTX_is_encrypting(ctx), n = 0, f = 0, ok;

    ok = EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, enc, NULL)
         && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag))
         && EVP_CipherUpdate(ctx, NULL, &n, header, sizeof(header))
         && EVP_CipherUpdate(ctx, out, &n, in, (int)len)
         && EVP_CipherFinal_ex(ctx, out + n, &f)
         && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag));
    ERR_clear_error();
    return ok;
}

static void
assert_zero(const unsigned char *p, size_t n)
{
    while (n-- > 0)
        assert_int_equal(p[n], 0);
}

static const char *const rec_algs[] = { "AES-128-GCM", "ChaCha20-Poly1305" };

static void
record_wrong_tag(void **state)
{
    static const unsigned char msg[40] = "an application record of 40 bytes..."
                                          "...";
    const char *alg = *state;
    unsigned char key[32], nonce[12], ct[40], pt[40], tag[16], bad[16];
    EVP_CIPHER_CTX *e, *d;

    assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
    assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
    e = rec_ctx(alg, 1, key);
    d = rec_ctx(alg, 0, key);
    assert_true(rec13(e, nonce, msg, 40, ct, tag));
    memcpy(bad, tag, 16);
    bad[5] ^= 0x01;
    memset(pt, 0xee, sizeof(pt));
    assert_false(rec13(d, nonce, ct, 40, pt, bad));
    assert_zero(pt, 40);                    /* no plaintext out */
    /* control: the right tag decrypts, in the same context */
    assert_true(rec13(d, nonce, ct, 40, pt, tag));
    assert_memory_equal(pt, msg, 40);
    EVP_CIPHER_CTX_free(e);
    EVP_CIPHER_CTX_free(d);
}

/* TLS 1.2 GCM record (explicit nonce || payload || tag) through the
 * record mode, as tls1_meth.c: 1 or 0 (errors cleared); *len in/out */
static int
rec12(EVP_CIPHER_CTX *ctx, unsigned char *buf, size_t *len, size_t aadlen)
{
    unsigned char aad[13] = { 0, 0, 0, 0, 0, 0, 0, 1, 23, 3, 3 };
    int outl = 0, ok;

    aad[11] = (unsigned char)(aadlen >> 8);
    aad[12] = (unsigned char)aadlen;
    ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_TLS1_AAD, 13, aad) == 16
         && EVP_CipherUpdate(ctx, buf, &outl, buf, (int)*len) == 1;
    ERR_clear_error();
    *len = (size_t)outl;
    return ok;
}

static EVP_CIPHER_CTX *
rec12_ctx(int enc, const unsigned char *key, const unsigned char *fixed)
{
    EVP_CIPHER_CTX *ctx = rec_ctx("AES-128-GCM", enc, key);

    assert_true(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IV_FIXED, 4,
                                    (void *)fixed) > 0);
    return ctx;
}

static void
record_truncated(void **state)
{
    static const unsigned char msg[40] = "an application record of 40 bytes..."
                                          "...";
    unsigned char key[16], nonce[12], ct[40], pt[40], tag[16], fixed[4];
    unsigned char rec[64], buf[64];
    size_t total = 8 + 40 + 16, n;
    EVP_CIPHER_CTX *e, *d;

    (void)state;
    assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
    assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
    assert_int_equal(RAND_bytes(fixed, sizeof(fixed)), 1);
    /* TLS 1.3-style: the ciphertext one byte short, with its tag */
    e = rec_ctx("AES-128-GCM", 1, key);
    d = rec_ctx("AES-128-GCM", 0, key);
    assert_true(rec13(e, nonce, msg, 40, ct, tag));
    memset(pt, 0xee, sizeof(pt));
    assert_false(rec13(d, nonce, ct, 39, pt, tag));
    assert_zero(pt, 39);
    assert_true(rec13(d, nonce, ct, 40, pt, tag));      /* control */
    assert_memory_equal(pt, msg, 40);
    EVP_CIPHER_CTX_free(e);
    EVP_CIPHER_CTX_free(d);

    /* TLS 1.2 GCM: one byte short, and shorter than nonce and tag */
    e = rec12_ctx(1, key, fixed);
    d = rec12_ctx(0, key, fixed);
    memcpy(rec + 8, msg, 40);
    n = total;
    assert_true(rec12(e, rec, &n, total - 16));
    assert_int_equal(n, total);
    memcpy(buf, rec, total);
    memset(buf + total - 1, 0xee, sizeof(buf) - total + 1);
    n = total - 1;
    assert_false(rec12(d, buf, &n, total - 1));
    assert_zero(buf + 8, 39);
    n = 8 + 16 - 1;
    memcpy(buf, rec, n);
    assert_false(rec12(d, buf, &n, 8 + 16 - 1));
    memcpy(buf, rec, total);                            /* control */
    n = total;
    assert_true(rec12(d, buf, &n, total));
    assert_int_equal(n, 40);
    assert_memory_equal(buf + 8, msg, 40);
    EVP_CIPHER_CTX_free(e);
    EVP_CIPHER_CTX_free(d);
}

/* ---- main ------------------------------------------------------------------------ */

int
main(void)
{
    struct CMUnitTest tests[] = {
        { "garbage token: TLS13-KDF", garbage_token, sealing_on, sealing_on,
          (void *)&garbage_cases[0] },
        { "garbage token: TLS1-PRF", garbage_token, sealing_on, sealing_on,
          (void *)&garbage_cases[1] },
        { "garbage token: HKDF", garbage_token, sealing_on, sealing_on,
          (void *)&garbage_cases[2] },
        cmocka_unit_test_setup_teardown(token_wrong_length, sealing_on,
                                        sealing_on),
        cmocka_unit_test_setup_teardown(unknown_label, sealing_on, sealing_on),
        cmocka_unit_test_setup_teardown(clear_for_secret_class, sealing_on,
                                        sealing_on),
        { "record_wrong_tag: AES-128-GCM", record_wrong_tag, sealing_on,
          sealing_on, (void *)rec_algs[0] },
        { "record_wrong_tag: ChaCha20-Poly1305", record_wrong_tag, sealing_on,
          sealing_on, (void *)rec_algs[1] },
        cmocka_unit_test_setup_teardown(record_truncated, sealing_on,
                                        sealing_on),
    };
    OSSL_PROVIDER *deflt, *ks;
    int failed;

    /* the keystore (the test library: its seal operations), the providers */
    if (setup_keystore(NULL) != 0 || !provider_setup(&deflt, &ks))
        return 1;
    failed = cmocka_run_group_tests_name("bad input", tests, NULL, NULL);
    OSSL_PROVIDER_unload(ks);
    OSSL_PROVIDER_unload(deflt);
    return failed;
}
