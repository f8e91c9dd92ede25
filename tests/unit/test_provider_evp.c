/*
 * OpenSSL's own EVP test vectors through the keystore provider (built in,
 * preferred by "?provider=keystore"), an MPK test.  OpenSSL is built
 * no-tests, so evp_test does not exist; this test reads its data files
 * (the pinned tree's test/recipes/30-test_evp_data/, embedded at build
 * time with .incbin because the QEMU guest's initramfs holds only
 * binaries) with evp_test's syntax and semantics: stanzas of "key =
 * value" lines, PEM blocks, Availablein (only stanzas the default
 * provider runs), "Ctrl = name:value" through OSSL_PARAM_allocate_from_
 * text, Result (the operation must fail).
 *
 * Each applicable vector runs twice:
 *   marked:   as libssl calls the provider for a sealed-token operation
 *             (the mpktls-* markers, openssl-patch/README.md), so the
 *             crypto runs in T: one KS_OP_KDF / KS_OP_MAC / AEAD_RECORD /
 *             KEX_DERIVE crossing each, counted.  The keystore's sealing
 *             is off (KS_OP_TEST_SEAL_IDENTITY of libkeystore-test.so: a
 *             token is the secret itself), so T's tokens compare with
 *             the vectors' bytes;
 *   unmarked: without markers: forwarded to the default provider, no
 *             crossing.
 * Per file and path the test counts the stanzas of its kind (an
 * independent scan of the raw text), the ones run and the ones skipped
 * by reason, and asserts: every run vector passed, at least one ran,
 * run + skipped = all.  Skipped are only stanzas outside what TLS (and
 * the keystore) uses: FIPS-provider-only ones, other algorithms and
 * digests, GCM IVs other than 12 bytes and tags other than 16, AADs over
 * 64 bytes (the token context's buffer; a TLS AAD is 5 or 13 bytes).
 *
 * Deviations from evp_test, on purpose:
 * - TLS13-KDF extract vectors without a salt come without prefix and
 *   label (OpenSSL does not use them then); the marked path adds
 *   libssl's ("tls13 ", "derived"), which T requires.
 * - Marker choice: a key or salt is passed as a token where its length
 *   is a token length and T's output class for the vector (its label,
 *   seeds, length) is one T serves; otherwise raw, with mpktls-out =
 *   "clear" (T still computes).  Counted as token/raw inputs.
 * - NextIV (the IV after the operation) is not checked: a token context
 *   refuses to give out its IV, by design.
 * - X25519/X448/ECDH: the keystore takes no private key from outside, so
 *   the vectors' private keys cannot be used in T.  The marked path
 *   checks instead that a key made in T, derived with the public half of
 *   each vector's private key, gives what the default provider derives
 *   from that private key and T's public key (not a KAT; the unmarked
 *   path is the KAT).
 * - evpkdf_tls11_prf.txt (MD5-SHA1, TLS 1.0/1.1): the marked path must
 *   refuse every vector (the keystore does not serve that PRF).
 * Control: with sealing on, the marked outputs are tokens, not the
 * vectors' bytes (TLS13-KDF), and token keys give other ciphertexts.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "ks_test.h"
#include "test_provider.h"

/* ---- the data files, embedded -------------------------------------------- */

#define EVP_EMBED(sym, file)                                            \
    __asm__(".pushsection .rodata\n.globl " #sym "\n.hidden " #sym "\n"  \
            #sym ":\n.incbin \"" EVP_DATA "/" file "\"\n.byte 0\n"       \
            ".popsection\n");                                           \
    extern const char sym[] __attribute__((visibility("hidden")))

EVP_EMBED(f_aes, "evpciph_aes_common.txt");
EVP_EMBED(f_chacha, "evpciph_chacha.txt");
EVP_EMBED(f_tls13, "evpkdf_tls13_kdf.txt");
EVP_EMBED(f_hkdf, "evpkdf_hkdf.txt");
EVP_EMBED(f_tls12prf, "evpkdf_tls12_prf.txt");
EVP_EMBED(f_tls11prf, "evpkdf_tls11_prf.txt");
EVP_EMBED(f_mac, "evpmac_common.txt");
EVP_EMBED(f_ecx, "evppkey_ecx.txt");
EVP_EMBED(f_ecdh, "evppkey_ecdh.txt");

/* ---- evp_test's stanzas ---------------------------------------------------- */

#define STANZA_MAX 64

struct kv {
    char *key, *value;
};

struct stanza {
    int         line;                       /* of its first pair */
    int         n;
    struct kv   kv[STANZA_MAX];
    char       *pem;                        /* its PEM block, or NULL */
};

struct reader {
    const char *p;
    int         line;
};

/* The next line [*s, *s + *n) without its newline; 0 at the end. */
static int
next_line(struct reader *r, const char **s, size_t *n)
{
    const char *e;

    if (*r->p == '\0')
        return 0;
    e = strchr(r->p, '\n');
    if (e == NULL)
        e = r->p + strlen(r->p);
    *s = r->p;
    *n = (size_t)(e - r->p);
    r->p = *e == '\n' ? e + 1 : e;
    r->line++;
    return 1;
}

static char *
dup_trim(const char *s, size_t n)
{
    char *d;

    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    d = strndup(s, n);
    assert_non_null(d);
    return d;
}

static void
stanza_clear(struct stanza *st)
{
    int i;

    for (i = 0; i < st->n; i++) {
        free(st->kv[i].key);
        free(st->kv[i].value);
    }
    free(st->pem);
    memset(st, 0, sizeof(*st));
}

/* The next stanza (a PEM block belongs to the stanza it is in): 1, or 0
 * at the end of the text. */
static int
next_stanza(struct reader *r, struct stanza *st)
{
    const char *s, *eq, *pem = NULL;
    size_t n;

    stanza_clear(st);
    while (next_line(r, &s, &n)) {
        char *t = dup_trim(s, n);

        if (pem != NULL) {
            if (strncmp(t, "-----END", 8) == 0) {
                st->pem = strndup(pem, (size_t)(s + n - pem));
                assert_non_null(st->pem);
                pem = NULL;
            }
        } else if (t[0] == '\0') {
            if (st->n > 0) {
                free(t);
                return 1;
            }
        } else if (strncmp(t, "-----BEGIN", 10) == 0) {
            pem = s;
        } else if (t[0] != '#' && strncmp(t, "Title", 5) != 0) {
            /* (evp_test reads a Title line as a heading, not a pair) */
            eq = memchr(s, '=', n);
            if (eq == NULL)
                fail_msg("line %d: not 'key = value': %s", r->line, t);
            assert_true(st->n < STANZA_MAX);
            if (st->n == 0)
                st->line = r->line;
            st->kv[st->n].key = dup_trim(s, (size_t)(eq - s));
            st->kv[st->n].value = dup_trim(eq + 1, (size_t)(s + n - eq - 1));
            st->n++;
        }
        free(t);
    }
    return st->n > 0;
}

static const char *
get(const struct stanza *st, const char *key)
{
    int i;

    for (i = 0; i < st->n; i++) {
        if (strcmp(st->kv[i].key, key) == 0)
            return st->kv[i].value;
    }
    return NULL;
}

/* The stanza's keyword (the first key after Availablein/FIPSversion) */
static const char *
keyword(const struct stanza *st)
{
    int i;

    for (i = 0; i < st->n; i++) {
        if (strcmp(st->kv[i].key, "Availablein") != 0
            && strcmp(st->kv[i].key, "FIPSversion") != 0)
            return st->kv[i].key;
    }
    return "";
}

/* evp_test's Availablein: run only where it names the default provider
 * (FIPSversion only matters with a FIPS provider, which is not here) */
static int
default_available(const struct stanza *st)
{
    const char *v = get(st, "Availablein");

    return v == NULL || strstr(v, "default") != NULL;
}

/* Stanzas with this keyword, counted in the raw text: independent of the
 * parser, so that the parser cannot lose any */
static unsigned
count_keyword_lines(const char *text, const char *kw)
{
    struct reader r = { text, 0 };
    const char *s;
    size_t n, k = strlen(kw);
    unsigned count = 0;

    while (next_line(&r, &s, &n)) {
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        if (n > k && strncmp(s, kw, k) == 0) {
            s += k, n -= k;
            while (n > 0 && *s == ' ')
                s++, n--;
            count += n > 0 && *s == '=';
        }
    }
    return count;
}

/* evp_test's parse_bin: "" or NULL empty, "..." a string with \n escapes,
 * else hex.  OPENSSL_malloc'd, at least one byte. */
static unsigned char *
bin(const char *v, size_t *len)
{
    unsigned char *b;
    size_t n = v == NULL ? 0 : strlen(v), i;
    long l;

    if (n == 0 || strcmp(v, "NULL") == 0) {
        *len = 0;
        return OPENSSL_zalloc(1);
    }
    if (v[0] == '"') {
        assert_true(n >= 2 && v[n - 1] == '"');
        b = OPENSSL_zalloc(n);
        assert_non_null(b);
        for (i = 1, *len = 0; i < n - 1; i++) {
            if (v[i] == '\\' && v[i + 1] == 'n')
                b[(*len)++] = '\n', i++;
            else
                b[(*len)++] = (unsigned char)v[i];
        }
        return b;
    }
    b = OPENSSL_hexstr2buf(v, &l);
    assert_non_null(b);
    *len = (size_t)l;
    return b;
}

/* ---- counting ------------------------------------------------------------ */

enum skip {
    SK_FIPS,        /* Availablein without the default provider */
    SK_ALG,         /* another algorithm */
    SK_DIGEST,      /* a digest TLS 1.2/1.3 and the keystore do not use */
    SK_SHAPE,       /* GCM IV not 12 bytes, tag not 16 */
    SK_AAD,         /* AAD over 64 bytes */
    SK_KEY,         /* a key/salt length or group TLS does not use */
    NSKIP
};

static const char *const skip_names[NSKIP] = {
    "FIPS provider only", "other algorithm", "digest not SHA-256/384/512",
    "IV not 12 or tag not 16 bytes", "AAD over 64 bytes",
    "key/salt length or group",
};

enum path { MARKED, UNMARKED, REFUSED };

struct tally {
    unsigned total, run, failed, must_fail, token_in, raw_in;
    unsigned skipped[NSKIP];
    unsigned added_prefix;                  /* TLS13-KDF: libssl's added */
    int      last_failed;                   /* line: one count a vector */
};

static int quiet;                           /* the control expects failures */

static void
vfail(struct tally *t, int line, const char *fmt, ...)
{
    va_list ap;
    char msg[256];

    if (!quiet) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        print_message("# FAIL line %d: %s\n", line, msg);
        ERR_print_errors_fp(stderr);
    }
    if (t->last_failed != line)
        t->failed++;
    t->last_failed = line;
}

static const char *
prov_of(const OSSL_PROVIDER *p)
{
    return p == NULL ? "(none)" : OSSL_PROVIDER_get0_name(p);
}

/* 1 if T can seal len bytes (ks_seal_len_ok) */
static int
token_len(size_t len)
{
    return len == 16 || len == 32 || len == 48 || len == 56 || len == 64
           || len == 66;
}

static size_t
md_len(const char *name)
{
    static const struct {
        const char *name;
        size_t len;
    } mds[] = {
        { "SHA2-256", 32 }, { "SHA256", 32 }, { "SHA-256", 32 },
        { "SHA2-384", 48 }, { "SHA384", 48 }, { "SHA-384", 48 },
        { "SHA2-512", 64 }, { "SHA512", 64 }, { "SHA-512", 64 },
    };
    size_t i;

    for (i = 0; name != NULL && i < sizeof(mds) / sizeof(mds[0]); i++) {
        if (strcasecmp(name, mds[i].name) == 0)
            return mds[i].len;
    }
    return 0;
}

/* ---- AEAD: AES-128/256-GCM, ChaCha20-Poly1305 ------------------------------ */

struct aead_vec {
    unsigned char *key, *iv, *aad, *pt, *ct, *tag;
    size_t keylen, ivlen, aadlen, len, ctlen, taglen;
};

/*
 * One direction.  Unmarked: as evp_test (the IV length, then key and IV).
 * Marked: as libssl's TLS 1.3 record layer (key init with the token
 * marker, then a per-record IV init; an IV length other than 12 is set
 * in between, which a token context refuses).  Then the tag (decrypting),
 * AAD, data.  out: len bytes (plus room); tag out when encrypting.
 */
static int
aead_once(const EVP_CIPHER *c, int enc, enum path path,
    const struct aead_vec *v, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    const unsigned char *in = enc ? v->pt : v->ct;
    int one = 1, n = 0, f = 0, ok;
    OSSL_PARAM mark[] = {
        OSSL_PARAM_int("mpktls-key-token", &one), OSSL_PARAM_END
    };

    assert_non_null(ctx);
    ok = EVP_CipherInit_ex2(ctx, c, path == MARKED ? v->key : NULL, NULL, enc,
                            path == MARKED ? mark : NULL);
    if (ok && (int)v->ivlen != EVP_CIPHER_get_iv_length(c))
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)v->ivlen,
                                 NULL) > 0;
    ok = ok && EVP_CipherInit_ex2(ctx, NULL, path == MARKED ? NULL : v->key,
                                  v->iv, enc, NULL);
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)v->taglen,
                                 v->tag) > 0;
    if (ok && v->aadlen > 0)
        ok = EVP_CipherUpdate(ctx, NULL, &n, v->aad, (int)v->aadlen);
    ok = ok && EVP_CipherUpdate(ctx, out, &n, in, (int)v->len)
         && EVP_CipherFinal_ex(ctx, out + n, &f) && (size_t)(n + f) == v->len;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)v->taglen,
                                 tag) > 0;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static void
aead_vec_free(struct aead_vec *v)
{
    OPENSSL_free(v->key);
    OPENSSL_free(v->iv);
    OPENSSL_free(v->aad);
    OPENSSL_free(v->pt);
    OPENSSL_free(v->ct);
    OPENSSL_free(v->tag);
}

/* 0: run it; else the skip reason */
static int
aead_skip(const struct stanza *st, const struct aead_vec *v, enum path path)
{
    static const char *const ours[] = {
        "aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"
    };
    const char *name = get(st, "Cipher");
    size_t i;

    for (i = 0; i < 3 && strcasecmp(name, ours[i]) != 0; i++)
        ;
    if (i == 3)
        return SK_ALG + 1;
    if (!default_available(st))
        return SK_FIPS + 1;
    if (path != MARKED || get(st, "Result") != NULL)
        return 0;                           /* must fail: on every path */
    if (v->ivlen != 12 || v->taglen != 16)
        return SK_SHAPE + 1;
    if (v->aadlen > 64)
        return SK_AAD + 1;
    return 0;
}

static void
aead_vector(const struct stanza *st, enum path path, struct tally *t)
{
    const char *op = get(st, "Operation"), *result = get(st, "Result");
    int dirs = op == NULL ? 3 : strcasecmp(op, "DECRYPT") == 0 ? 1 : 2;
    struct aead_vec v;
    EVP_CIPHER *c;
    unsigned char *out, tag[16];
    uint64_t before;
    int skip, okd = 1, oke = 1, i;

    v.key = bin(get(st, "Key"), &v.keylen);
    v.iv = bin(get(st, "IV"), &v.ivlen);
    v.aad = bin(get(st, "AAD"), &v.aadlen);
    v.pt = bin(get(st, "Plaintext"), &v.len);
    v.ct = bin(get(st, "Ciphertext"), &v.ctlen);
    v.tag = bin(get(st, "Tag"), &v.taglen);
    if ((skip = aead_skip(st, &v, path)) != 0) {
        t->skipped[skip - 1]++;
        aead_vec_free(&v);
        return;
    }
    t->run++;
    t->must_fail += result != NULL;
    c = EVP_CIPHER_fetch(NULL, get(st, "Cipher"), NULL);
    assert_non_null(c);
    assert_string_equal(prov_of(EVP_CIPHER_get0_provider(c)), "keystore");
    assert_true(v.taglen <= sizeof(tag));
    out = OPENSSL_malloc(v.len + 32);
    assert_non_null(out);
    before = crossings();
    if (dirs & 2) {
        oke = aead_once(c, 1, path, &v, out, tag);
        if (result == NULL && (!oke || memcmp(out, v.ct, v.len) != 0
                               || memcmp(tag, v.tag, v.taglen) != 0))
            vfail(t, st->line, "encryption differs");
    }
    if (dirs & 1) {
        memset(out, 0xa5, v.len + 32);
        okd = aead_once(c, 0, path, &v, out, tag);
        if (result == NULL && (!okd || memcmp(out, v.pt, v.len) != 0))
            vfail(t, st->line, "decryption differs");
        /* marked, a failed record gives nothing: T wrote zeros (or it
         * was refused before T: the buffer is as it was).  (The default
         * provider's GCM writes the plaintext before it checks the tag.) */
        for (i = 1; result != NULL && path == MARKED && (size_t)i < v.len;
             i++) {
            if (out[i] != out[0] || (out[0] != 0 && out[0] != 0xa5)) {
                vfail(t, st->line, "failed decryption left output");
                break;
            }
        }
    }
    if (result != NULL && ((dirs & 2 && oke) || (dirs & 1 && okd)))
        vfail(t, st->line, "%s expected, but it worked", result);
    /* marked: AEAD_NEW, AEAD_RECORD, FREE a direction; unmarked: none */
    if ((path == MARKED) != (crossings() > before))
        vfail(t, st->line, "%s crossings", path == MARKED ? "no" : "unexpected");
    ERR_clear_error();
    OPENSSL_free(out);
    EVP_CIPHER_free(c);
    aead_vec_free(&v);
}

/* ---- KDFs: TLS13-KDF, HKDF, TLS1-PRF ------------------------------------- */

#define PARAMS_MAX 24

/* What the marker choice needs of a vector (from its Ctrl lines). */
struct kdf_in {
    size_t  md_len;                         /* 0: not SHA-256/384/512 */
    int     has_digest, extract, has_prefix;
    size_t  keylen, saltlen, labellen, seedlen;
    char    label[256], seeds[2048];
};

/* One "name:value" Ctrl: into the OSSL_PARAM p (as evp_test) and into in */
static int
kdf_ctrl(const char *ctrl, const OSSL_PARAM *settable, OSSL_PARAM *p,
    struct kdf_in *in)
{
    char *name = strdup(ctrl), *value;
    const char *raw;
    unsigned char *b = NULL;
    size_t n = 0;
    int found = 0, ok;

    assert_non_null(name);
    value = strchr(name, ':');
    value = value == NULL ? (char *)"" : (*value = '\0', value + 1);
    raw = strncmp(name, "hex", 3) == 0 ? name + 3 : name;
    if (raw != name && value[0] != '\0') {
        long l = 0;

        b = OPENSSL_hexstr2buf(value, &l);
        n = b == NULL ? 0 : (size_t)l;
    } else {
        b = (unsigned char *)OPENSSL_strdup(value);
        n = raw != name ? 0 : strlen(value);
    }
    if (strcmp(raw, "digest") == 0) {
        in->has_digest = 1;
        in->md_len = md_len(value);
    } else if (strcmp(raw, "mode") == 0) {
        in->extract = strcasecmp(value, "EXTRACT_ONLY") == 0;
    } else if (strcmp(raw, "key") == 0 || strcmp(raw, "secret") == 0) {
        in->keylen = n;
    } else if (strcmp(raw, "salt") == 0) {
        in->saltlen = n;
    } else if (strcmp(raw, "prefix") == 0) {
        in->has_prefix = 1;
    } else if (strcmp(raw, "label") == 0 && n < sizeof(in->label)) {
        memcpy(in->label, b, n);
        in->labellen = n;
    } else if (strcmp(raw, "seed") == 0 && b != NULL
               && n < sizeof(in->seeds) - in->seedlen) {
        memcpy(in->seeds + in->seedlen, b, n);
        in->seedlen += n;
    }
    OPENSSL_free(b);
    ok = OSSL_PARAM_allocate_from_text(p, settable, name, value,
                                       strlen(value), &found);
    free(name);
    return ok;
}

/*
 * The markers libssl would pass for this vector, and how T must classify
 * it (ks_op_kdf.h): a token input only where its length is a token length
 * and T's class for the output is one it serves at this length; else raw
 * inputs with mpktls-out "clear".  Returns the number of params added.
 */
static int
kdf_markers(const char *kdf, const struct kdf_in *in, size_t outlen,
    OSSL_PARAM *p, int *key_tok, int *salt_tok, size_t kb[3],
    struct tally *t)
{
    const char *out = "clear", *s = in->seeds, *l = in->label;
    size_t n = in->seedlen, ll = in->labellen;
    int k = 0, cls_ok = 1;

#define SEEDS(x) (n >= strlen(x) && memcmp(s, x, strlen(x)) == 0)
#define LABEL(x) (ll == strlen(x) && memcmp(l, x, ll) == 0)
    kb[0] = kb[1] = kb[2] = 0;
    if (strcasecmp(kdf, "TLS13-KDF") == 0) {
        if (in->extract) {
            out = "secret";
        } else if (LABEL("key")) {
            out = "record-key", cls_ok = outlen == 16 || outlen == 32;
        } else if (LABEL("finished")) {
            out = "mac-key", cls_ok = outlen == in->md_len;
        } else if ((LABEL("iv") && outlen == 12) || LABEL("exporter")) {
            out = "clear";
        } else {
            out = "secret", cls_ok = outlen == in->md_len;
        }
    } else if (strcasecmp(kdf, "HKDF") == 0) {
        out = "secret", cls_ok = token_len(outlen);
    } else if (SEEDS("key expansion")) {
        /* an AEAD key block: 2 * (key + fixed IV), no MAC keys */
        out = "keyblock", kb[1] = outlen == 40 || outlen == 56 ? 16 : 32;
        kb[2] = outlen == 40 || outlen == 72 ? 4 : 12;
        cls_ok = outlen == 2 * (kb[1] + kb[2]);
    } else if (SEEDS("client finished") || SEEDS("server finished")) {
        out = outlen == 12 ? "clear" : "secret";
        cls_ok = outlen == 12 || token_len(outlen);
    } else if (SEEDS("master secret") || SEEDS("extended master secret")) {
        out = "secret", cls_ok = token_len(outlen);
    }
#undef SEEDS
#undef LABEL
    if (!cls_ok)
        out = "clear";
    if (!cls_ok && strcmp(out, "keyblock") == 0)
        kb[1] = kb[2] = 0;
    *key_tok = cls_ok && in->keylen > 0 && token_len(in->keylen);
    *salt_tok = cls_ok && in->saltlen > 0 && token_len(in->saltlen)
                && strcasecmp(kdf, "TLS1-PRF") != 0;
    if (*key_tok || *salt_tok)
        t->token_in++;
    else
        t->raw_in++;
    p[k++] = OSSL_PARAM_construct_utf8_string("mpktls-out", (char *)out, 0);
    p[k++] = OSSL_PARAM_construct_int("mpktls-key-token", key_tok);
    if (strcasecmp(kdf, "TLS1-PRF") != 0)
        p[k++] = OSSL_PARAM_construct_int("mpktls-salt-token", salt_tok);
    if (strcmp(out, "keyblock") == 0) {
        p[k++] = OSSL_PARAM_construct_size_t("mpktls-kb-mac", &kb[0]);
        p[k++] = OSSL_PARAM_construct_size_t("mpktls-kb-key", &kb[1]);
        p[k++] = OSSL_PARAM_construct_size_t("mpktls-kb-iv", &kb[2]);
    }
    /* libssl's prefix and label, which T requires (OpenSSL ignores them
     * in an extract without salt, where the vectors leave them out) */
    if (strcasecmp(kdf, "TLS13-KDF") == 0 && in->extract && !in->has_prefix) {
        p[k++] = OSSL_PARAM_construct_octet_string("prefix", "tls13 ", 6);
        p[k++] = OSSL_PARAM_construct_octet_string("label", "derived", 7);
        t->added_prefix++;
    }
    p[k] = OSSL_PARAM_construct_end();
    return k;
}

/* Whether the marked path takes the vector (else the skip reason + 1) */
static int
kdf_skip(const struct stanza *st, const struct kdf_in *in, enum path path)
{
    if (!default_available(st))
        return SK_FIPS + 1;
    if (path != MARKED || get(st, "Result") != NULL)
        return 0;                           /* must fail: on every path */
    if (in->md_len == 0)
        return SK_DIGEST + 1;
    /* TLS 1.3's salt is the previous secret, its expand key a secret:
     * hash length (T refuses others, ks_op_kdf.c) */
    if (strcasecmp(get(st, "KDF"), "TLS13-KDF") == 0
        && (in->extract ? in->saltlen != 0 && in->saltlen != in->md_len
                        : in->keylen != in->md_len))
        return SK_KEY + 1;
    return 0;
}

static void
kdf_vector(const struct stanza *st, enum path path, struct tally *t)
{
    const char *name = get(st, "KDF"), *result = get(st, "Result");
    OSSL_PARAM params[PARAMS_MAX], marks[12];
    struct kdf_in in;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
    EVP_KDF_CTX *ctx;
    const OSSL_PARAM *settable;
    unsigned char *want, *out;
    size_t outlen, kb[3];
    uint64_t before, crossed;
    int i, np = 0, skip, ok = 1, key_tok, salt_tok;

    assert_non_null(kdf);
    assert_string_equal(prov_of(EVP_KDF_get0_provider(kdf)), "keystore");
    ctx = EVP_KDF_CTX_new(kdf);
    assert_non_null(ctx);
    settable = EVP_KDF_CTX_settable_params(ctx);
    memset(&in, 0, sizeof(in));
    for (i = 0; i < st->n; i++) {
        if (strncmp(st->kv[i].key, "Ctrl", 4) != 0)
            continue;
        assert_true(np < PARAMS_MAX - 1);
        if (kdf_ctrl(st->kv[i].value, settable, &params[np], &in))
            np++;
        else
            ok = 0;                         /* as evp_test: a ctrl error */
    }
    params[np] = OSSL_PARAM_construct_end();
    want = bin(get(st, "Output"), &outlen);
    skip = kdf_skip(st, &in, path == REFUSED ? UNMARKED : path);
    if (skip != 0) {
        t->skipped[skip - 1]++;
    } else {
        t->run++;
        t->must_fail += result != NULL || path == REFUSED;
        marks[0] = OSSL_PARAM_construct_end();
        if (path != UNMARKED)
            kdf_markers(name, &in, outlen, marks, &key_tok, &salt_tok, kb, t);
        out = OPENSSL_malloc(outlen + 1);
        assert_non_null(out);
        before = crossings();
        ok = ok && EVP_KDF_CTX_set_params(ctx, params)
             && EVP_KDF_derive(ctx, out, outlen, marks) > 0;
        crossed = crossings() - before;
        if (result == NULL && path != REFUSED
            && (!ok || memcmp(out, want, outlen) != 0))
            vfail(t, st->line, "%s: output differs", name);
        if ((result != NULL || path == REFUSED) && ok)
            vfail(t, st->line, "%s: must fail, but derived", name);
        if (ok && crossed != (path == MARKED))
            vfail(t, st->line, "%llu crossings", (unsigned long long)crossed);
        OPENSSL_free(out);
    }
    ERR_clear_error();
    for (i = 0; i < np; i++)
        OPENSSL_free(params[i].data);
    OPENSSL_free(want);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
}

/* ---- HMAC ---------------------------------------------------------------- */

static void
mac_vector(const struct stanza *st, enum path path, struct tally *t)
{
    const char *alg = get(st, "Algorithm"), *result = get(st, "Result");
    const char *osize = get(st, "OutputSize");
    unsigned char *key, *input, *want, out[EVP_MAX_MD_SIZE];
    size_t keylen, inlen, wantlen, outlen = 0;
    int one = 1, ok;
    uint64_t before, crossed;
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    OSSL_PARAM p[3];

    if (strcasecmp(get(st, "MAC"), "HMAC") != 0) {
        t->skipped[SK_ALG]++;
        return;
    }
    if (!default_available(st)) {
        t->skipped[SK_FIPS]++;
        return;
    }
    key = bin(get(st, "Key"), &keylen);
    if (path == MARKED && result == NULL
        && (md_len(alg) == 0 || keylen != md_len(alg))) {
        /* a MAC-key token is a TLS 1.3 finished key: hash length, SHA-2 */
        t->skipped[md_len(alg) == 0 ? SK_DIGEST : SK_KEY]++;
        OPENSSL_free(key);
        return;
    }
    t->run++;
    t->must_fail += result != NULL;
    input = bin(get(st, "Input"), &inlen);
    want = bin(get(st, "Output"), &wantlen);
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    assert_non_null(mac);
    assert_string_equal(prov_of(EVP_MAC_get0_provider(mac)), "keystore");
    ctx = EVP_MAC_CTX_new(mac);
    assert_non_null(ctx);
    p[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)alg, 0);
    p[1] = path == MARKED ? OSSL_PARAM_construct_int("mpktls-key-token", &one)
                          : OSSL_PARAM_construct_end();
    p[2] = OSSL_PARAM_construct_end();
    before = crossings();
    ok = EVP_MAC_init(ctx, key, keylen, p) && EVP_MAC_update(ctx, input, inlen)
         && EVP_MAC_final(ctx, out, &outlen, sizeof(out));
    crossed = crossings() - before;
    if (result == NULL && (!ok || outlen != wantlen
                           || memcmp(out, want, wantlen) != 0
                           || (osize != NULL
                               && EVP_MAC_CTX_get_mac_size(ctx)
                                  != (size_t)atoi(osize))))
        vfail(t, st->line, "HMAC-%s differs", alg);
    if (result != NULL && ok)
        vfail(t, st->line, "%s expected, but it worked", result);
    if (ok && crossed != (path == MARKED))
        vfail(t, st->line, "%llu crossings", (unsigned long long)crossed);
    ERR_clear_error();
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    OPENSSL_free(key);
    OPENSSL_free(input);
    OPENSSL_free(want);
}

/* ---- X25519, X448, ECDH ---------------------------------------------------- */

#define KEYS_MAX 512

/* The keys a file defines (PrivateKey/PublicKey with PEM, *Raw), decoded
 * with the default provider when a derive first names them */
struct keyref {
    char      *name, *pem, *raw;            /* raw: "TYPE:hex" */
    int        priv;
    EVP_PKEY  *pkey;
};

static struct keyref keys[KEYS_MAX];
static int nkeys;

static void
keys_clear(void)
{
    int i;

    for (i = 0; i < nkeys; i++) {
        free(keys[i].name);
        free(keys[i].pem);
        free(keys[i].raw);
        EVP_PKEY_free(keys[i].pkey);
    }
    nkeys = 0;
}

/* 1 if the stanza defines a key (kept) */
static int
key_stanza(struct stanza *st)
{
    const char *k = st->kv[0].key;
    struct keyref *r = &keys[nkeys];
    char *v = st->kv[0].value, *colon;

    if (strncmp(k, "PrivateKey", 10) != 0 && strncmp(k, "PublicKey", 9) != 0)
        return 0;
    assert_true(nkeys < KEYS_MAX);
    memset(r, 0, sizeof(*r));
    r->priv = k[1] == 'r';
    if (strcmp(k + (r->priv ? 10 : 9), "Raw") == 0) {
        colon = strchr(v, ':');
        assert_non_null(colon);
        r->raw = strdup(colon + 1);
        *colon = '\0';
    } else {
        assert_non_null(st->pem);
        r->pem = st->pem;
        st->pem = NULL;
    }
    r->name = strdup(v);
    nkeys++;
    return 1;
}

static EVP_PKEY *
key_get(const char *name)
{
    int i;

    for (i = 0; name != NULL && i < nkeys; i++) {
        struct keyref *r = &keys[i];

        if (strcmp(r->name, name) != 0)
            continue;
        if (r->pkey == NULL && r->pem != NULL) {
            BIO *b = BIO_new_mem_buf(r->pem, -1);

            r->pkey = r->priv
                ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, NULL,
                                             "provider=default")
                : PEM_read_bio_PUBKEY_ex(b, NULL, NULL, NULL, NULL,
                                         "provider=default");
            BIO_free(b);
        } else if (r->pkey == NULL) {
            char *type = strdup(r->raw), *hex = strchr(type, ':');
            unsigned char *d;
            size_t n;

            assert_non_null(hex);
            *hex++ = '\0';
            d = bin(hex, &n);
            r->pkey = r->priv
                ? EVP_PKEY_new_raw_private_key_ex(NULL, type,
                                                  "provider=default", d, n)
                : EVP_PKEY_new_raw_public_key_ex(NULL, type,
                                                 "provider=default", d, n);
            OPENSSL_free(d);
            free(type);
        }
        return r->pkey;
    }
    return NULL;
}

/* The key's group if TLS uses it (as T names them), else NULL */
static const char *
tls_group(EVP_PKEY *k)
{
    char g[64];

    if (EVP_PKEY_is_a(k, "X25519"))
        return "X25519";
    if (EVP_PKEY_is_a(k, "X448"))
        return "X448";
    if (!EVP_PKEY_is_a(k, "EC")
        || !EVP_PKEY_get_group_name(k, g, sizeof(g), NULL))
        return NULL;
    return strcmp(g, "prime256v1") == 0 ? "P-256"
           : strcmp(g, "secp384r1") == 0 ? "P-384"
           : strcmp(g, "secp521r1") == 0 ? "P-521" : NULL;
}

/* The public half of k, as a default-provider key (SubjectPublicKeyInfo) */
static EVP_PKEY *
public_copy(EVP_PKEY *k)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int n = i2d_PUBKEY(k, &der);
    EVP_PKEY *pub;

    assert_true(n > 0);
    p = der;
    pub = d2i_PUBKEY_ex(NULL, &p, n, NULL, "provider=default");
    OPENSSL_free(der);
    assert_non_null(pub);
    return pub;
}

/* derive(key, peer) with params; the secret, or NULL */
static unsigned char *
derive(EVP_PKEY *key, const char *propq, EVP_PKEY *peer,
    const OSSL_PARAM *params, size_t *len)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, propq);
    unsigned char *s = NULL;
    int ok;

    ok = ctx != NULL && EVP_PKEY_derive_init_ex(ctx, params) > 0
         && EVP_PKEY_derive_set_peer(ctx, peer) > 0
         && EVP_PKEY_derive(ctx, NULL, len) > 0
         && (s = OPENSSL_malloc(*len)) != NULL
         && EVP_PKEY_derive(ctx, s, len) > 0;
    if (!ok) {
        OPENSSL_free(s);
        s = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return s;
}

/*
 * Marked (see the top): a key made in T derives, with the marker, with
 * the public half of the vector's private key; the default provider
 * derives from that private key and T's public key: the same bytes (the
 * token is the secret, sealing is off).
 */
static void
derive_marked(const struct stanza *st, EVP_PKEY *priv, const char *group,
    struct tally *t)
{
    OSSL_PARAM mark[] = {
        OSSL_PARAM_utf8_string("mpktls-out", "secret", 0), OSSL_PARAM_END
    };
    int x = group[0] == 'X';
    EVP_PKEY *tkey = x ? EVP_PKEY_Q_keygen(NULL, NULL, group)
                       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    EVP_PKEY *vpub = public_copy(priv), *tpub;
    unsigned char *got, *want;
    size_t gotlen = 0, wantlen = 0;
    uint64_t before;

    assert_non_null(tkey);
    assert_string_equal(prov_of(EVP_PKEY_get0_provider(tkey)), "keystore");
    tpub = public_copy(tkey);
    before = crossings();
    got = derive(tkey, NULL, vpub, mark, &gotlen);
    if (crossings() - before != 1)
        vfail(t, st->line, "not one crossing");
    want = derive(priv, "provider=default", tpub, NULL, &wantlen);
    if (got == NULL || want == NULL || gotlen != wantlen
        || memcmp(got, want, gotlen) != 0)
        vfail(t, st->line, "%s: T's derive differs from the default's", group);
    OPENSSL_free(got);
    OPENSSL_free(want);
    EVP_PKEY_free(tkey);
    EVP_PKEY_free(tpub);
    EVP_PKEY_free(vpub);
}

static void
derive_vector(const struct stanza *st, enum path path, struct tally *t)
{
    EVP_PKEY *priv = key_get(get(st, "Derive"));
    EVP_PKEY *peer = key_get(get(st, "PeerKey"));
    const char *result = get(st, "Result"), *group;
    unsigned char *want, *got;
    size_t wantlen, gotlen = 0;
    uint64_t before;

    if (!default_available(st)) {
        t->skipped[SK_FIPS]++;
        return;
    }
    assert_non_null(priv);
    if ((group = tls_group(priv)) == NULL) {
        t->skipped[SK_KEY]++;
        return;
    }
    t->run++;
    t->must_fail += result != NULL;
    if (path == MARKED) {
        derive_marked(st, priv, group, t);
        ERR_clear_error();
        return;
    }
    want = bin(get(st, "SharedSecret"), &wantlen);
    before = crossings();
    got = derive(priv, NULL, peer, NULL, &gotlen);
    if (crossings() != before)
        vfail(t, st->line, "a default-provider derive crossed");
    if (result == NULL && (got == NULL || gotlen != wantlen
                           || memcmp(got, want, gotlen) != 0))
        vfail(t, st->line, "%s: shared secret differs", group);
    if (result != NULL && got != NULL)
        vfail(t, st->line, "%s expected, but it worked", result);
    ERR_clear_error();
    OPENSSL_free(got);
    OPENSSL_free(want);
}

/* ---- the files ------------------------------------------------------------- */

enum kind { K_CIPHER, K_KDF, K_MAC, K_DERIVE };

static const char *const kind_words[] = { "Cipher", "KDF", "MAC", "Derive" };

static void (*const runners[])(const struct stanza *, enum path,
                               struct tally *) = {
    aead_vector, kdf_vector, mac_vector, derive_vector
};

struct file_case {
    const char  *name;                      /* the test's name */
    const char  *file, *text;
    enum kind    kind;
    enum path    path;
};

static void
run_file(const struct file_case *fc, struct tally *t)
{
    struct reader r = { fc->text, 0 };
    struct stanza st;
    const char *kw = kind_words[fc->kind];

    memset(t, 0, sizeof(*t));
    memset(&st, 0, sizeof(st));
    t->total = count_keyword_lines(fc->text, kw);
    while (next_stanza(&r, &st)) {
        if (fc->kind == K_DERIVE && key_stanza(&st))
            continue;
        if (strcmp(keyword(&st), kw) != 0)
            continue;
        runners[fc->kind](&st, fc->path, t);
    }
    stanza_clear(&st);
    keys_clear();
}

static void
file_test(void **state)
{
    const struct file_case *fc = *state;
    struct tally t;
    unsigned skipped = 0, i;
    char why[256] = "";
    size_t n = 0;

    identity(1);                            /* sealing off: token = secret */
    run_file(fc, &t);
    for (i = 0; i < NSKIP; i++) {
        skipped += t.skipped[i];
        if (t.skipped[i] && n < sizeof(why))
            n += (size_t)snprintf(why + n, sizeof(why) - n, "%s%u %s",
                                  n ? ", " : "", t.skipped[i], skip_names[i]);
    }
    print_message("# %s %s: %u %s stanzas: %u run (%u must fail), %u "
                  "failed; %u skipped%s%s%s\n", fc->file,
                  fc->path == MARKED ? "marked" : fc->path == REFUSED
                  ? "marked (must be refused)" : "unmarked",
                  t.total, kind_words[fc->kind], t.run, t.must_fail,
                  t.failed, skipped, n ? " (" : "", why, n ? ")" : "");
    if (fc->kind == K_KDF && fc->path != UNMARKED)
        print_message("#   marked inputs: %u as tokens, %u raw; %u with "
                      "libssl's prefix and label added\n", t.token_in,
                      t.raw_in, t.added_prefix);
    assert_int_equal(t.failed, 0);
    assert_true(t.run > 0);
    assert_int_equal(t.run + skipped, t.total);
}

/*
 * Control: with sealing on, the same marked calls give tokens.  Every
 * TLS13-KDF vector's output differs from the vector (a token; with token
 * inputs, also from an unsealed key), and every ChaCha20-Poly1305
 * encryption with the key as a token gives another ciphertext.
 */
static void
control_sealing_on(void **state)
{
    static const struct file_case cases[] = {
        { "", "evpkdf_tls13_kdf.txt", f_tls13, K_KDF, MARKED },
        { "", "evpciph_chacha.txt", f_chacha, K_CIPHER, MARKED },
    };
    struct tally t;
    size_t i;

    (void)state;
    identity(0);
    quiet = 1;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_file(&cases[i], &t);
        print_message("# sealing on: %u of %u marked vectors of %s fail "
                      "(%u must fail anyway)\n", t.failed, t.run,
                      cases[i].file, t.must_fail);
        assert_true(t.run > 0);
        assert_int_equal(t.failed, t.run - t.must_fail);
    }
    quiet = 0;
}

#define FC(file, text, kind, path) \
    { file " (" #path ")", file, text, kind, path }

static const struct file_case files[] = {
    FC("evpciph_aes_common.txt", f_aes, K_CIPHER, MARKED),
    FC("evpciph_aes_common.txt", f_aes, K_CIPHER, UNMARKED),
    FC("evpciph_chacha.txt", f_chacha, K_CIPHER, MARKED),
    FC("evpciph_chacha.txt", f_chacha, K_CIPHER, UNMARKED),
    FC("evpkdf_tls13_kdf.txt", f_tls13, K_KDF, MARKED),
    FC("evpkdf_tls13_kdf.txt", f_tls13, K_KDF, UNMARKED),
    FC("evpkdf_hkdf.txt", f_hkdf, K_KDF, MARKED),
    FC("evpkdf_hkdf.txt", f_hkdf, K_KDF, UNMARKED),
    FC("evpkdf_tls12_prf.txt", f_tls12prf, K_KDF, MARKED),
    FC("evpkdf_tls12_prf.txt", f_tls12prf, K_KDF, UNMARKED),
    FC("evpkdf_tls11_prf.txt", f_tls11prf, K_KDF, REFUSED),
    FC("evpkdf_tls11_prf.txt", f_tls11prf, K_KDF, UNMARKED),
    FC("evpmac_common.txt", f_mac, K_MAC, MARKED),
    FC("evpmac_common.txt", f_mac, K_MAC, UNMARKED),
    FC("evppkey_ecx.txt", f_ecx, K_DERIVE, MARKED),
    FC("evppkey_ecx.txt", f_ecx, K_DERIVE, UNMARKED),
    FC("evppkey_ecdh.txt", f_ecdh, K_DERIVE, MARKED),
    FC("evppkey_ecdh.txt", f_ecdh, K_DERIVE, UNMARKED),
};
#define NFILES (sizeof(files) / sizeof(files[0]))

int
main(void)
{
    struct CMUnitTest tests[NFILES + 1];
    OSSL_PROVIDER *deflt, *ks;
    size_t i;
    int failed;

    for (i = 0; i < NFILES; i++)
        tests[i] = (struct CMUnitTest){ files[i].name, file_test,
                                        sealing_on, sealing_on,
                                        (void *)&files[i] };
    tests[NFILES] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
        control_sealing_on, sealing_on, sealing_on);
    /* the keystore (test library: its seal ops), then the providers */
    /* the keystore (the test library: its seal operations), the providers */
    if (setup_keystore(NULL) != 0 || !provider_setup(&deflt, &ks))
        return 1;
    failed = _cmocka_run_group_tests("evp vectors", tests, NFILES + 1,
                                     NULL, NULL);
    OSSL_PROVIDER_unload(ks);
    OSSL_PROVIDER_unload(deflt);
    return failed;
}
