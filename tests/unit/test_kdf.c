/*
 * Tests of the KDF and MAC operations (KS_OP_KDF, KS_OP_MAC; ks_op_kdf.h)
 * through the gate.  Needs MPK: runs natively on a CPU with pku, else in
 * the QEMU guest.  Linked against libkeystore-test.so for its two test
 * operations: KS_OP_TEST_SEAL (make tokens of known secrets, look into the
 * tokens T returns) and KS_OP_TEST_SEAL_IDENTITY (sealing off, so that
 * OpenSSL's published vectors can be fed in and compared).
 *
 *   1. Sealing off: OpenSSL's TLS13-KDF, HKDF and TLS1-PRF vectors.
 *   2. Sealing on: the RFC 8448 key schedule and Finished MACs.
 *   3. The output-class policy, each refusal with its control.
 *
 * References that are not in a vector (an "iv" at 32 bytes, an exporter)
 * come from the system's libcrypto in U, a separate copy of OpenSSL.
 */

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* the system's libcrypto (U): reference values only */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "ks_test.h"

#include "test_kdf_vectors.h"

/* ---- helpers (and those of ks_test.h) ------------------------------------ */

struct bin {
    unsigned char  b[256];
    size_t         n;
};

static struct bin
hx(const char *s)
{
    struct bin r;
    unsigned v;

    memset(&r, 0, sizeof(r));
    for (; s[0] != '\0' && s[1] != '\0'; s += 2) {
        if (r.n >= sizeof(r.b) || sscanf(s, "%2x", &v) != 1) {
            abort();
        }
        r.b[r.n++] = (unsigned char) v;
    }
    return r;
}

/* a ‖ b (seeds are concatenated the way the provider does) */
static struct bin
cat(struct bin a, const void *b, size_t n)
{
    assert_true(a.n + n <= sizeof(a.b));
    memcpy(a.b + a.n, b, n);
    a.n += n;
    return a;
}

static struct bin
str(const char *s)
{
    struct bin r = { .n = 0 };

    return cat(r, s, strlen(s));
}

/* A token of the known secret s (class cls). */
static struct bin
tok(unsigned cls, struct bin s)
{
    struct bin t = s;

    seal(cls, s.b, t.b, s.n);
    return t;
}

/* What the token t of class cls stands for. */
static struct bin
untok(unsigned cls, const unsigned char *t, size_t n)
{
    struct bin r = { .n = n };

    unseal(cls, t, r.b, n);
    return r;
}

static long
kdf(struct ks_args_kdf a)
{
    return ks_gate_call(KS_OP_KDF, &a);
}

/* TLS13-KDF expand with key k (a token if ktok), as libssl calls it. */
static long
expand(unsigned md, struct bin k, int ktok, const char *label,
    struct bin data, unsigned cls, unsigned char *out, size_t outlen)
{
    return kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS13, .md = md, .mode = KS_KDF_EXPAND_ONLY,
        .key_is_token = (uint32_t) ktok, .key = k.b, .keylen = k.n,
        .label = (const unsigned char *) label, .labellen = strlen(label),
        .data = data.b, .datalen = data.n,
        .out_class = cls, .out = out, .outlen = outlen });
}

/* TLS13-KDF extract: key and salt may be absent (n == 0). */
static long
extract(unsigned md, struct bin k, int ktok, struct bin salt, int stok,
    unsigned cls, unsigned char *out, size_t outlen)
{
    return kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS13, .md = md, .mode = KS_KDF_EXTRACT_ONLY,
        .key_is_token = (uint32_t) ktok, .key = k.b, .keylen = k.n,
        .salt_is_token = (uint32_t) stok, .salt = salt.b, .saltlen = salt.n,
        .label = (const unsigned char *) "derived", .labellen = 7,
        .out_class = cls, .out = out, .outlen = outlen });
}

/* TLS1-PRF: secret k, seeds already concatenated. */
static long
prf(struct bin k, int ktok, struct bin seed, unsigned cls,
    unsigned char *out, size_t outlen)
{
    return kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS1_PRF, .md = KS_MD_SHA256,
        .key_is_token = (uint32_t) ktok, .key = k.b, .keylen = k.n,
        .data = seed.b, .datalen = seed.n,
        .out_class = cls, .out = out, .outlen = outlen });
}

static long
prf_keyblock(struct bin k, struct bin seed, unsigned klen, unsigned ivlen,
    unsigned char *out, size_t outlen)
{
    return kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS1_PRF, .md = KS_MD_SHA256, .key_is_token = 1,
        .key = k.b, .keylen = k.n, .data = seed.b, .datalen = seed.n,
        .out_class = KS_OUT_KEYBLOCK, .kb_key_len = klen, .kb_iv_len = ivlen,
        .out = out, .outlen = outlen });
}

static long
mac(int ktok, struct bin k, struct bin data, unsigned char *out)
{
    struct ks_args_mac a = {
        .md = KS_MD_SHA256, .key_is_token = (uint32_t) ktok,
        .key = k.b, .keylen = k.n, .data = data.b, .datalen = data.n,
        .out = out, .outlen = 32,
    };

    return ks_gate_call(KS_OP_MAC, &a);
}

/* n bytes of the KDF name with the parameters p, from the system's
 * libcrypto (U): the references below. */
static struct bin
ref_derive(const char *name, const OSSL_PARAM *p, size_t n)
{
    EVP_KDF *k = EVP_KDF_fetch(NULL, name, NULL);
    EVP_KDF_CTX *c = EVP_KDF_CTX_new(k);
    struct bin r = { .n = n };

    assert_non_null(c);
    assert_int_equal(EVP_KDF_derive(c, r.b, n, p), 1);
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(k);
    return r;
}

/* HKDF-Expand-Label with the system's libcrypto (U): the reference. */
static struct bin
ref_expand(struct bin secret, const char *label, struct bin data, size_t n)
{
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, secret.b, secret.n),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_LABEL, (char *) label,
                                strlen(label)),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_DATA, data.b, data.n),
        OSSL_PARAM_END,
    };

    return ref_derive("TLS13-KDF", p, n);
}

/* TLS1-PRF (SHA-256) with the system's libcrypto (U): the reference. */
static struct bin
ref_prf(struct bin secret, struct bin seed, size_t n)
{
    OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SECRET, secret.b, secret.n),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, seed.b, seed.n),
        OSSL_PARAM_END,
    };

    return ref_derive("TLS1-PRF", p, n);
}

static struct bin
sha256(struct bin in)
{
    struct bin r = { .n = 32 };

    assert_int_equal(EVP_Digest(in.b, in.n, r.b, NULL, EVP_sha256(), NULL), 1);
    return r;
}

#define assert_bin_equal(buf, bin) \
    assert_memory_equal((buf), (bin).b, (bin).n)

static const struct bin  none;              /* an absent input */

/* ---- 1. OpenSSL's vectors, sealing off ------------------------------------ */

static void
vectors_tls13_kdf(void **state)
{
    unsigned char out[64];
    size_t i;

    (void) state;
    identity(1);
    for (i = 0; i < sizeof(t13_vectors) / sizeof(t13_vectors[0]); i++) {
        const struct t13_vector *v = &t13_vectors[i];
        struct bin key = hx(v->key), salt = hx(v->salt), want = hx(v->out);
        long rc;

        memset(out, 0, sizeof(out));
        if (v->mode == KS_KDF_EXTRACT_ONLY) {
            rc = extract(v->md, key, v->key_token, salt, salt.n > 0,
                         KS_OUT_SECRET, out, want.n);
        } else {
            rc = expand(v->md, key, 1, v->label, hx(v->data), KS_OUT_SECRET,
                        out, want.n);
        }
        if (rc != 0) {
            fail_msg("evpkdf_tls13_kdf.txt line %d: %ld", v->line, rc);
        }
        /* a SECRET token: in identity mode it unseals to itself */
        assert_bin_equal(untok(KS_SEAL_SECRET, out, want.n).b, want);
        assert_bin_equal(out, want);
    }

    /* the policy still applies with sealing off: a traffic secret from a
     * secret is never clear (line 27 asked for as clear) */
    assert_int_equal(expand(KS_MD_SHA256, hx(t13_vectors[1].key), 1,
                            t13_vectors[1].label, hx(t13_vectors[1].data),
                            KS_OUT_CLEAR, out, 32), KS_ERR_ARG);
}

static void
vectors_hkdf(void **state)
{
    unsigned char out[128];
    struct bin okm1 = hx(HKDF1_OKM), okm2 = hx(HKDF2_OKM);
    struct bin okm3 = hx(HKDF3_OKM), prk1 = hx(HKDF1_PRK);
    struct ks_args_kdf a = {
        .kdf = KS_KDF_HKDF, .md = KS_MD_SHA256,
        .mode = KS_KDF_EXTRACT_AND_EXPAND, .out_class = KS_OUT_CLEAR,
    };
    struct bin ikm1 = hx(HKDF1_IKM), salt1 = hx(HKDF1_SALT);
    struct bin info1 = hx(HKDF1_INFO), ikm2 = hx(HKDF2_IKM);
    struct bin salt2 = hx(HKDF2_SALT), info2 = hx(HKDF2_INFO);

    (void) state;
    identity(1);
    /* raw inputs: the output follows out_class, clear here */
    a.key = ikm1.b; a.keylen = ikm1.n;
    a.salt = salt1.b; a.saltlen = salt1.n;
    a.label = info1.b; a.labellen = info1.n;
    a.out = out; a.outlen = okm1.n;
    assert_int_equal(kdf(a), 0);                            /* line 16 */
    assert_bin_equal(out, okm1);

    a.mode = KS_KDF_EXTRACT_ONLY;                           /* line 23 */
    a.label = NULL; a.labellen = 0; a.outlen = 32;
    assert_int_equal(kdf(a), 0);
    assert_bin_equal(out, prk1);

    /* line 30 with the PRK as a token: the output is a SECRET token, so
     * only the token lengths; 32 bytes are the first block of the OKM */
    a.mode = KS_KDF_EXPAND_ONLY;
    a.key = prk1.b; a.keylen = prk1.n; a.key_is_token = 1;
    a.salt = NULL; a.saltlen = 0;
    a.label = info1.b; a.labellen = info1.n;
    a.outlen = 32;
    assert_int_equal(kdf(a), KS_ERR_ARG);                   /* not clear */
    a.out_class = KS_OUT_SECRET;
    a.outlen = okm1.n;
    assert_int_equal(kdf(a), KS_ERR_ARG);                   /* 42: no token */
    a.outlen = 32;
    assert_int_equal(kdf(a), 0);
    assert_memory_equal(untok(KS_SEAL_SECRET, out, 32).b, okm1.b, 32);
    a.key_is_token = 0;                                     /* raw: as asked */
    a.out_class = KS_OUT_CLEAR;
    a.outlen = okm1.n;
    assert_int_equal(kdf(a), 0);
    assert_bin_equal(out, okm1);

    a.mode = KS_KDF_EXTRACT_AND_EXPAND;                     /* line 37 */
    a.key = ikm2.b; a.keylen = ikm2.n;
    a.salt = salt2.b; a.saltlen = salt2.n;
    a.label = info2.b; a.labellen = info2.n;
    a.outlen = okm2.n;
    assert_int_equal(kdf(a), 0);
    assert_bin_equal(out, okm2);

    a.key = ikm1.b; a.keylen = ikm1.n;                      /* line 58 */
    a.salt = NULL; a.saltlen = 0;
    a.label = NULL; a.labellen = 0;
    a.outlen = okm3.n;
    assert_int_equal(kdf(a), 0);
    assert_bin_equal(out, okm3);
}

static void
vectors_tls1_prf(void **state)
{
    static const struct { unsigned key, iv; } layouts[] = {
        { 16, 4 },                                  /* AES-128-GCM: 40 */
        { 32, 4 },                                  /* AES-256-GCM: 72 */
        { 32, 12 },                                 /* ChaCha20: 88 */
    };
    unsigned char out[128];
    struct bin pms = hx(PRF_PMS), ms = hx(PRF_MS), kb = hx(PRF_KB);
    struct bin ms_seed = cat(cat(str("master secret"), hx(PRF_MS_CR).b, 32),
                             hx(PRF_MS_SR).b, 32);
    struct bin kb_seed = cat(cat(str("key expansion"), hx(PRF_KB_SR).b, 32),
                             hx(PRF_KB_CR).b, 32);
    size_t i;

    (void) state;
    identity(1);
    /* line 17: the master secret, a SECRET token of the pre-master token */
    assert_int_equal(prf(pms, 1, ms_seed, KS_OUT_SECRET, out, 48), 0);
    assert_bin_equal(untok(KS_SEAL_SECRET, out, 48).b, ms);
    assert_int_equal(prf(pms, 1, ms_seed, KS_OUT_CLEAR, out, 48), KS_ERR_ARG);
    assert_int_equal(prf(pms, 0, ms_seed, KS_OUT_CLEAR, out, 48), 0);  /* raw */
    assert_bin_equal(out, ms);

    /* line 26: 128 bytes in the file; a key block is a prefix of it.
     * Keys as RECORD_KEY tokens, fixed IVs clear, in libssl's layout. */
    for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        unsigned k = layouts[i].key, iv = layouts[i].iv;
        size_t n = 2 * (k + iv);

        memset(out, 0, sizeof(out));
        assert_int_equal(prf_keyblock(ms, kb_seed, k, iv, out, n), 0);
        assert_memory_equal(untok(KS_SEAL_RECORD_KEY, out, k).b, kb.b, k);
        assert_memory_equal(untok(KS_SEAL_RECORD_KEY, out + k, k).b,
                            kb.b + k, k);
        assert_memory_equal(out + 2 * k, kb.b + 2 * k, 2 * iv);
    }
    /* the key-expansion output never comes as a whole */
    assert_int_equal(prf(ms, 1, kb_seed, KS_OUT_CLEAR, out, 128), KS_ERR_ARG);
    assert_int_equal(prf(ms, 1, kb_seed, KS_OUT_SECRET, out, 64), KS_ERR_ARG);
}

/* ---- 2. RFC 8448 through the gate, sealing on ----------------------------- */

/* The 32-byte token t as a key argument. */
static struct bin
token32(const unsigned char *t)
{
    struct bin r = { .n = 32 };

    memcpy(r.b, t, 32);
    return r;
}

/* From the SECRET token s, the traffic secret of label over the
 * transcript hash th: a SECRET token (to out) of RFC 8448's want. */
static void
rfc_secret(const unsigned char *s, const char *label, const char *th,
    const char *want, unsigned char *out)
{
    assert_int_equal(expand(KS_MD_SHA256, token32(s), 1, label, hx(th),
                            KS_OUT_SECRET, out, 32), 0);
    assert_bin_equal(untok(KS_SEAL_SECRET, out, 32).b, hx(want));
}

/* From the traffic secret token s, the record key (a RECORD_KEY token,
 * not the key itself) and the iv (clear): RFC 8448's want_key, want_iv. */
static void
rfc_key_iv(const unsigned char *s, const char *want_key, const char *want_iv)
{
    unsigned char key[16], iv[12];

    assert_int_equal(expand(KS_MD_SHA256, token32(s), 1, "key", none,
                            KS_OUT_RECORD_KEY, key, 16), 0);
    assert_memory_not_equal(key, hx(want_key).b, 16);
    assert_bin_equal(untok(KS_SEAL_RECORD_KEY, key, 16).b, hx(want_key));
    assert_int_equal(expand(KS_MD_SHA256, token32(s), 1, "iv", none,
                            KS_OUT_CLEAR, iv, 12), 0);
    assert_bin_equal(iv, hx(want_iv));
}

/* From the handshake traffic secret token s, the finished key (a MAC_KEY
 * token of RFC 8448's want_key) and with it the Finished MAC over the
 * transcript hash th: RFC 8448's want_mac. */
static void
rfc_finished(const unsigned char *s, const char *want_key, const char *th,
    const char *want_mac)
{
    unsigned char fin[32], vd[32];

    assert_int_equal(expand(KS_MD_SHA256, token32(s), 1, "finished", none,
                            KS_OUT_MAC_KEY, fin, 32), 0);
    assert_bin_equal(untok(KS_SEAL_MAC_KEY, fin, 32).b, hx(want_key));
    assert_int_equal(mac(1, token32(fin), hx(th), vd), 0);
    assert_bin_equal(vd, hx(want_mac));
}

static void
rfc8448_key_schedule(void **state)
{
    const unsigned md = KS_MD_SHA256;
    unsigned char early[32], hs[32], chs[32], shs[32], master[32];
    unsigned char cap[32], sap[32];
    struct bin ecdhe = tok(KS_SEAL_SECRET, hx(R_ECDHE));

    (void) state;
    /* tokens are not the secrets: sealing is on */
    assert_memory_not_equal(ecdhe.b, hx(R_ECDHE).b, 32);

    /* early secret: no PSK, so no key and no salt (raw: as asked) */
    assert_int_equal(extract(md, none, 0, none, 0, KS_OUT_SECRET, early, 32), 0);
    assert_bin_equal(untok(KS_SEAL_SECRET, early, 32).b, hx(R_EARLY));

    /* handshake secret: (EC)DHE token, salt = early token; TLS13-KDF
     * does the "derived" step itself */
    assert_int_equal(extract(md, ecdhe, 1, token32(early), 1, KS_OUT_SECRET,
                             hs, 32), 0);
    assert_memory_not_equal(hs, hx(R_HS).b, 32);
    assert_bin_equal(untok(KS_SEAL_SECRET, hs, 32).b, hx(R_HS));

    /* the handshake traffic secrets */
    rfc_secret(hs, "c hs traffic", R_TH_SH, R_C_HS, chs);
    rfc_secret(hs, "s hs traffic", R_TH_SH, R_S_HS, shs);

    /* master secret: no key, salt = handshake token */
    assert_int_equal(extract(md, none, 0, token32(hs), 1, KS_OUT_SECRET,
                             master, 32), 0);
    assert_bin_equal(untok(KS_SEAL_SECRET, master, 32).b, hx(R_MASTER));

    /* server handshake key (RECORD_KEY token), iv (clear), finished key
     * (MAC_KEY token) and the server Finished MAC over CH..CV */
    rfc_key_iv(shs, R_S_HS_KEY, R_S_HS_IV);
    rfc_finished(shs, R_S_FIN_KEY, R_TH_CV, R_S_FIN);

    /* the client's, Finished over CH..server Finished */
    rfc_key_iv(chs, R_C_HS_KEY, R_C_HS_IV);
    rfc_finished(chs, R_C_FIN_KEY, R_TH_SF, R_C_FIN);

    /* application traffic secrets and their keys and ivs */
    rfc_secret(master, "c ap traffic", R_TH_SF, R_C_AP, cap);
    rfc_secret(master, "s ap traffic", R_TH_SF, R_S_AP, sap);
    rfc_key_iv(sap, R_S_AP_KEY, R_S_AP_IV);
    rfc_key_iv(cap, R_C_AP_KEY, R_C_AP_IV);
}

/* ---- 3. the policy --------------------------------------------------------- */

static void
secret_never_clear(void **state)
{
    struct bin hs = tok(KS_SEAL_SECRET, hx(R_HS));
    struct bin shs = tok(KS_SEAL_SECRET, hx(R_S_HS));
    unsigned char out[32], mark[32];

    (void) state;
    memset(mark, 0xaa, sizeof(mark));
    memcpy(out, mark, 32);
    assert_int_equal(expand(KS_MD_SHA256, hs, 1, "c hs traffic", hx(R_TH_SH),
                            KS_OUT_CLEAR, out, 32), KS_ERR_ARG);
    assert_memory_equal(out, mark, 32);                 /* nothing written */
    /* nor as another sealed class than T's */
    assert_int_equal(expand(KS_MD_SHA256, hs, 1, "c hs traffic", hx(R_TH_SH),
                            KS_OUT_MAC_KEY, out, 32), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "key", none, KS_OUT_SECRET,
                            out, 32), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "key", none, KS_OUT_CLEAR,
                            out, 16), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "finished", none,
                            KS_OUT_CLEAR, out, 32), KS_ERR_ARG);
    assert_int_equal(extract(KS_MD_SHA256, none, 0, hs, 1, KS_OUT_CLEAR,
                             out, 32), KS_ERR_ARG);
    assert_memory_equal(out, mark, 32);
    /* odd lengths of sealed labels are refused, not guessed */
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "key", none,
                            KS_OUT_RECORD_KEY, out, 24), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "finished", none,
                            KS_OUT_MAC_KEY, out, 16), KS_ERR_ARG);

    /* control: as a SECRET token it works, and is the real secret */
    assert_int_equal(expand(KS_MD_SHA256, hs, 1, "c hs traffic", hx(R_TH_SH),
                            KS_OUT_SECRET, out, 32), 0);
    assert_bin_equal(untok(KS_SEAL_SECRET, out, 32).b, hx(R_C_HS));
    /* control: raw inputs are the caller's own, so clear is allowed */
    assert_int_equal(expand(KS_MD_SHA256, hx(R_HS), 0, "c hs traffic",
                            hx(R_TH_SH), KS_OUT_CLEAR, out, 32), 0);
    assert_bin_equal(out, hx(R_C_HS));
}

static void
iv_clear_only_at_12(void **state)
{
    struct bin shs = tok(KS_SEAL_SECRET, hx(R_S_HS));
    struct bin real = ref_expand(hx(R_S_HS), "iv", none, 32);
    unsigned char out[32], mark[32];

    (void) state;
    memset(mark, 0x55, sizeof(mark));
    memcpy(out, mark, 32);
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "iv", none, KS_OUT_CLEAR,
                            out, 32), KS_ERR_ARG);
    assert_memory_equal(out, mark, 32);
    /* at 32 bytes "iv" is a secret: sealed, and only the token leaves */
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "iv", none, KS_OUT_SECRET,
                            out, 32), 0);
    assert_memory_not_equal(out, real.b, 32);
    assert_bin_equal(untok(KS_SEAL_SECRET, out, 32).b, real);
    /* neither clear nor a secret at other lengths */
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "iv", none, KS_OUT_CLEAR,
                            out, 16), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "iv", none, KS_OUT_SECRET,
                            out, 16), KS_ERR_ARG);
    /* control: at 12 it is clear and is RFC 8448's iv */
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "iv", none, KS_OUT_CLEAR,
                            out, 12), 0);
    assert_bin_equal(out, hx(R_S_HS_IV));
}

static void
prf_reserved_label_split_across_seeds(void **state)
{
    struct bin ms = tok(KS_SEAL_SECRET, hx(PRF_MS)), kb = hx(PRF_KB);
    /* seeds "key expansio" and "n" ‖ randoms, concatenated as the
     * provider passes them: T sees the reserved label whole */
    struct bin seed = cat(cat(cat(str("key expansio"), "n", 1),
                              hx(PRF_KB_SR).b, 32), hx(PRF_KB_CR).b, 32);
    struct bin exp_seed = cat(cat(str("EXPORTER key expansion"),
                                  hx(PRF_KB_SR).b, 32), hx(PRF_KB_CR).b, 32);
    struct bin fin_seed = cat(str("client finished"), hx(R_TH_SF).b, 32);
    unsigned char out[72], mark[72];

    (void) state;
    memset(mark, 0x3c, sizeof(mark));
    memcpy(out, mark, sizeof(out));
    assert_int_equal(prf(ms, 1, seed, KS_OUT_CLEAR, out, 72), KS_ERR_ARG);
    assert_int_equal(prf(ms, 1, seed, KS_OUT_CLEAR, out, 12), KS_ERR_ARG);
    assert_int_equal(prf(ms, 1, seed, KS_OUT_SECRET, out, 48), KS_ERR_ARG);
    assert_memory_equal(out, mark, sizeof(out));
    /* control: as a key block it is the real one, keys sealed */
    assert_int_equal(prf_keyblock(ms, seed, 32, 4, out, 72), 0);
    assert_memory_not_equal(out, kb.b, 32);
    assert_memory_equal(untok(KS_SEAL_RECORD_KEY, out, 32).b, kb.b, 32);
    assert_memory_equal(out + 64, kb.b + 64, 8);
    /* key-block layouts the keystore does not serve */
    assert_int_equal(kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS1_PRF, .md = KS_MD_SHA256, .key_is_token = 1,
        .key = ms.b, .keylen = 48, .data = seed.b, .datalen = seed.n,
        .out_class = KS_OUT_KEYBLOCK, .kb_mac_len = 20, .kb_key_len = 16,
        .kb_iv_len = 4, .out = out, .outlen = 80 }), KS_ERR_ARG);
    assert_int_equal(prf_keyblock(ms, seed, 24, 4, out, 56), KS_ERR_ARG);
    assert_int_equal(prf_keyblock(ms, seed, 16, 8, out, 48), KS_ERR_ARG);
    assert_int_equal(prf_keyblock(ms, seed, 32, 4, out, 70), KS_ERR_ARG);

    /* control: an exporter label that only contains it is clear */
    assert_int_equal(prf(ms, 1, exp_seed, KS_OUT_CLEAR, out, 40), 0);
    assert_bin_equal(out, ref_prf(hx(PRF_MS), exp_seed, 40));
    /* TLS 1.2 Finished: clear at 12 bytes only */
    assert_int_equal(prf(ms, 1, fin_seed, KS_OUT_CLEAR, out, 12), 0);
    assert_bin_equal(out, ref_prf(hx(PRF_MS), fin_seed, 12));
    assert_int_equal(prf(ms, 1, fin_seed, KS_OUT_CLEAR, out, 32), KS_ERR_ARG);
}

/*
 * HKDF-Expand(S, info) for one block is HMAC(S, info ‖ 0x01), so a MAC
 * that took a traffic secret's token as its key would hand out the record
 * key: HMAC(S, HkdfLabel(16, "tls13 key", "") ‖ 0x01).  T unseals a MAC
 * key as KS_SEAL_MAC_KEY, so the traffic secret's token acts as an
 * unrelated key.
 */
static void
mac_with_secret_token_is_unrelated(void **state)
{
    static const unsigned char hkdf_label_key[] = {
        0x00, 0x10, 0x09, 't', 'l', 's', '1', '3', ' ', 'k', 'e', 'y', 0x00,
        0x01,
    };
    struct bin data = { .n = sizeof(hkdf_label_key) };
    struct bin shs = tok(KS_SEAL_SECRET, hx(R_S_HS));
    unsigned char out[32];

    (void) state;
    memcpy(data.b, hkdf_label_key, sizeof(hkdf_label_key));
    assert_int_equal(mac(1, shs, data, out), 0);
    assert_memory_not_equal(out, hx(R_S_HS_KEY).b, 16);

    /* control: where a token is the secret itself (sealing off), the same
     * call is the record key, so the comparison above can fail */
    identity(1);
    assert_int_equal(mac(1, hx(R_S_HS), data, out), 0);
    assert_bin_equal(out, hx(R_S_HS_KEY));
    identity(0);

    /* and the length is that of a finished key; a raw key is plain HMAC */
    assert_int_equal(mac(1, hx(R_S_HS_KEY), data, out), KS_ERR_ARG);
    assert_int_equal(mac(0, hx(R_S_HS), data, out), 0);
    assert_bin_equal(out, hx(R_S_HS_KEY));
}

static void
exporter_stage2_clear(void **state)
{
    struct bin exp = tok(KS_SEAL_SECRET, hx(R_EXP)), stage1;
    struct bin h_empty = sha256(none), h_ctx = sha256(str("context"));
    struct bin want = ref_expand(ref_expand(hx(R_EXP), "EXPORTER-mpk-tls",
                                            h_empty, 32),
                                 "exporter", h_ctx, 20);
    unsigned char out[32];

    (void) state;
    /* stage 1 with the application's label: a secret */
    assert_int_equal(expand(KS_MD_SHA256, exp, 1, "EXPORTER-mpk-tls", h_empty,
                            KS_OUT_CLEAR, out, 32), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, exp, 1, "EXPORTER-mpk-tls", h_empty,
                            KS_OUT_SECRET, out, 32), 0);
    stage1 = (struct bin) { .n = 32 };
    memcpy(stage1.b, out, 32);
    /* stage 2: clear, at the caller's length; T says so, not the caller */
    assert_int_equal(expand(KS_MD_SHA256, stage1, 1, "exporter", h_ctx,
                            KS_OUT_SECRET, out, 32), KS_ERR_ARG);
    assert_int_equal(expand(KS_MD_SHA256, stage1, 1, "exporter", h_ctx,
                            KS_OUT_CLEAR, out, 20), 0);
    assert_memory_equal(out, want.b, 20);
}

static void
garbage_tokens(void **state)
{
    struct bin shs = tok(KS_SEAL_SECRET, hx(R_S_HS)), bad = { .n = 32 };
    struct bin ms = tok(KS_SEAL_SECRET, hx(PRF_MS));
    struct bin seed = cat(str("master secret"), hx(PRF_MS_CR).b, 32);
    unsigned char out[48], mark[48];
    unsigned i;

    (void) state;
    memset(mark, 0x77, sizeof(mark));
    memcpy(out, mark, sizeof(out));
    /* not a token length: refused, nothing written */
    ms.n = 47;
    assert_int_equal(prf(ms, 1, seed, KS_OUT_SECRET, out, 48), KS_ERR_ARG);
    shs.n = 31;
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "key", none,
                            KS_OUT_RECORD_KEY, out, 16), KS_ERR_ARG);
    assert_memory_equal(out, mark, sizeof(out));
    shs.n = 32;

    /* a token length but random: a key, just not the real one */
    for (i = 0; i < 32; i++) {
        bad.b[i] = (unsigned char) (i * 37 + 11);
    }
    assert_int_equal(expand(KS_MD_SHA256, bad, 1, "key", none,
                            KS_OUT_RECORD_KEY, out, 16), 0);
    assert_memory_not_equal(untok(KS_SEAL_RECORD_KEY, out, 16).b,
                            hx(R_S_HS_KEY).b, 16);
    /* a token of another class is as good as random */
    bad = tok(KS_SEAL_RECORD_KEY, hx(R_S_HS));
    assert_int_equal(expand(KS_MD_SHA256, bad, 1, "key", none,
                            KS_OUT_RECORD_KEY, out, 16), 0);
    assert_memory_not_equal(untok(KS_SEAL_RECORD_KEY, out, 16).b,
                            hx(R_S_HS_KEY).b, 16);
    /* control: the real token gives the real key */
    assert_int_equal(expand(KS_MD_SHA256, shs, 1, "key", none,
                            KS_OUT_RECORD_KEY, out, 16), 0);
    assert_bin_equal(untok(KS_SEAL_RECORD_KEY, out, 16).b, hx(R_S_HS_KEY));
}

static void
unknown_and_malformed_rejected(void **state)
{
    struct bin shs = tok(KS_SEAL_SECRET, hx(R_S_HS));
    char long_label[251];
    unsigned char out[64];
    struct ks_args_kdf ok = {
        .kdf = KS_KDF_TLS13, .md = KS_MD_SHA256, .mode = KS_KDF_EXPAND_ONLY,
        .key_is_token = 1, .key = shs.b, .keylen = 32,
        .label = (const unsigned char *) "traffic upd", .labellen = 11,
        .out_class = KS_OUT_SECRET, .out = out, .outlen = 32,
    };
    struct ks_args_kdf a;
    struct ks_args_mac m = {
        .md = KS_MD_SHA256, .key_is_token = 1, .key = shs.b, .keylen = 32,
        .data = out, .datalen = 32, .out = out, .outlen = 32,
    };

    (void) state;
    assert_int_equal(kdf(ok), 0);                           /* control */

    a = ok; a.md = 0;                   assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.md = KS_MD_SHA512 + 1;    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.kdf = 0;                  assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.kdf = KS_KDF_TLS1_PRF + 1; assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.mode = 3;                 assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.mode = KS_KDF_EXTRACT_AND_EXPAND;         /* not in TLS13-KDF */
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.out_class = 0;            assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.out_class = KS_OUT_KEYBLOCK + 1;
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.key_is_token = 2;         assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.keylen = 48;              /* not the hash length */
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.outlen = 0;               assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.kb_key_len = 16;          /* a layout without a key block */
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.salt = out; a.saltlen = 32;       /* expand takes no salt */
    assert_int_equal(kdf(a), KS_ERR_ARG);

    /* labels: missing, too long for "tls13 " + label, unknown class */
    a = ok; a.label = NULL; a.labellen = 0;
    assert_int_equal(kdf(a), KS_ERR_ARG);
    memset(long_label, 'a', sizeof(long_label));
    a = ok; a.label = (const unsigned char *) long_label; a.labellen = 250;
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a.labellen = 249;                                       /* control */
    assert_int_equal(kdf(a), 0);
    a.labellen = 256;
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.out_class = KS_OUT_RECORD_KEY;    /* "traffic upd" is SECRET */
    assert_int_equal(kdf(a), KS_ERR_ARG);
    a = ok; a.out_class = KS_OUT_CLEAR;
    assert_int_equal(kdf(a), KS_ERR_ARG);
    /* extract: T uses "derived" and nothing else */
    assert_int_equal(kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS13, .md = KS_MD_SHA256, .mode = KS_KDF_EXTRACT_ONLY,
        .salt_is_token = 1, .salt = shs.b, .saltlen = 32,
        .label = (const unsigned char *) "derivee", .labellen = 7,
        .out_class = KS_OUT_SECRET, .out = out, .outlen = 32 }), KS_ERR_ARG);
    assert_int_equal(kdf((struct ks_args_kdf) {
        .kdf = KS_KDF_TLS13, .md = KS_MD_SHA256, .mode = KS_KDF_EXTRACT_ONLY,
        .salt_is_token = 1, .salt = shs.b, .saltlen = 32,
        .out_class = KS_OUT_SECRET, .out = out, .outlen = 32 }), KS_ERR_ARG);

    /* MAC: unknown digest, wrong output length */
    m.md = 0;
    assert_int_equal(ks_gate_call(KS_OP_MAC, &m), KS_ERR_ARG);
    m.md = 7;
    assert_int_equal(ks_gate_call(KS_OP_MAC, &m), KS_ERR_ARG);
    m.md = KS_MD_SHA256; m.outlen = 31;
    assert_int_equal(ks_gate_call(KS_OP_MAC, &m), KS_ERR_ARG);
    m.outlen = 32;                                          /* control */
    assert_int_equal(ks_gate_call(KS_OP_MAC, &m), 0);
}

/* A pointer into T, or one running into it, is refused and T's bytes
 * there stay as they were: the KDF would otherwise write a derived value
 * over T, or read T memory (the sealing key) as its input. */
static void
t_pointers_rejected(void **state)
{
    struct bin hs = tok(KS_SEAL_SECRET, hx(R_HS)), th = hx(R_TH_SH);
    uintptr_t t_heap = ranges[R_HEAP].start + ranges[R_HEAP].len - 64;
    uintptr_t t_data = ranges[R_DATA].start;
    unsigned char before[64], after[64], out[32];
    struct ks_args_kdf ok = {
        .kdf = KS_KDF_TLS13, .md = KS_MD_SHA256, .mode = KS_KDF_EXPAND_ONLY,
        .key_is_token = 1, .key = hs.b, .keylen = 32,
        .label = (const unsigned char *) "c hs traffic", .labellen = 12,
        .data = th.b, .datalen = 32,
        .out_class = KS_OUT_SECRET, .out = out, .outlen = 32,
    };
    struct ks_args_mac mok = {
        .md = KS_MD_SHA256, .key_is_token = 0, .key = hs.b, .keylen = 32,
        .data = th.b, .datalen = 32, .out = out, .outlen = 32,
    };
    struct ks_args_kdf a;
    struct ks_args_mac m;
    uintptr_t targets[3] = { t_heap, t_data, ranges[R_HEAP].start - 8 };
    unsigned i;

    (void) state;
    for (i = 0; i < 3; i++) {
        uintptr_t p = targets[i], from = i == 2 ? ranges[R_HEAP].start : p;

        peek(from, before, 24);
        a = ok; a.out = (unsigned char *) p;
        assert_int_equal(kdf(a), KS_ERR_ARG);
        m = mok; m.out = (unsigned char *) p;
        assert_int_equal(ks_gate_call(KS_OP_MAC, &m), KS_ERR_ARG);
        peek(from, after, 24);
        assert_memory_equal(before, after, 24);

        memset(out, 0x11, sizeof(out));
        a = ok; a.key = (const unsigned char *) p;
        assert_int_equal(kdf(a), KS_ERR_ARG);
        a = ok; a.label = (const unsigned char *) p;
        assert_int_equal(kdf(a), KS_ERR_ARG);
        a = ok; a.data = (const unsigned char *) p;
        assert_int_equal(kdf(a), KS_ERR_ARG);
        a = ok; a.mode = KS_KDF_EXTRACT_ONLY; a.key_is_token = 0;
        a.keylen = 0; a.key = NULL; a.datalen = 0;
        a.label = (const unsigned char *) "derived"; a.labellen = 7;
        a.salt_is_token = 1; a.salt = (const unsigned char *) p;
        a.saltlen = 32;
        assert_int_equal(kdf(a), KS_ERR_ARG);
        m = mok; m.key = (const unsigned char *) p;
        assert_int_equal(ks_gate_call(KS_OP_MAC, &m), KS_ERR_ARG);
        m = mok; m.data = (const unsigned char *) p;
        assert_int_equal(ks_gate_call(KS_OP_MAC, &m), KS_ERR_ARG);
        assert_memory_equal(out, (unsigned char [32]) { [0 ... 31] = 0x11 },
                            32);
    }
    /* and NULL with a length */
    a = ok; a.key = NULL;
    assert_int_equal(kdf(a), KS_ERR_ARG);

    /* control: the same calls with U pointers */
    assert_int_equal(kdf(ok), 0);
    assert_bin_equal(untok(KS_SEAL_SECRET, out, 32).b, hx(R_C_HS));
    assert_int_equal(ks_gate_call(KS_OP_MAC, &mok), 0);
}

int
main(void)
{
    /* every test starts with sealing on, whatever the previous one left */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(vectors_tls13_kdf, sealing_on),
        cmocka_unit_test_setup(vectors_hkdf, sealing_on),
        cmocka_unit_test_setup(vectors_tls1_prf, sealing_on),
        cmocka_unit_test_setup(rfc8448_key_schedule, sealing_on),
        cmocka_unit_test_setup(secret_never_clear, sealing_on),
        cmocka_unit_test_setup(iv_clear_only_at_12, sealing_on),
        cmocka_unit_test_setup(prf_reserved_label_split_across_seeds,
                               sealing_on),
        cmocka_unit_test_setup(mac_with_secret_token_is_unrelated, sealing_on),
        cmocka_unit_test_setup(exporter_stage2_clear, sealing_on),
        cmocka_unit_test_setup(garbage_tokens, sealing_on),
        cmocka_unit_test_setup(unknown_and_malformed_rejected, sealing_on),
        cmocka_unit_test_setup(t_pointers_rejected, sealing_on),
    };

    return cmocka_run_group_tests_name("ks_kdf", tests, setup_keystore, NULL);
}
