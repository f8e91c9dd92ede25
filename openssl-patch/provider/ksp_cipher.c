/*
 * Record ciphers of the keystore provider (U): AES-128-GCM, AES-256-GCM,
 * ChaCha20-Poly1305.
 *
 * libssl initialises a record cipher whose key is a sealed record-key
 * token with mpktls-key-token=1 on the key init (openssl-patch/patches/
 * 0005).  That init is one KS_OP_AEAD_NEW crossing: T unseals the token
 * and keeps the cipher context, U keeps its handle.  After that the U stub
 * keeps what is public: the per-record nonce (libssl's static IV XOR the
 * sequence number, given by the per-record IV init), the AAD (the record
 * header) and the tag, and each record is exactly one KS_OP_AEAD_RECORD
 * crossing, at the update that carries the record's data:
 *
 *   TLS 1.3 record (tls13_meth.c:tls13_cipher), as libssl calls it:
 *     init(nonce)  [decrypt: set_ctx_params(tag)]  update(AAD, out NULL)
 *     update(data) <- the crossing: encrypt/decrypt + tag in T
 *     final (0 bytes)  [encrypt: get_ctx_params(tag) from the stub]
 *
 * A record with no data (none in TLS 1.3) crosses at final.  A nonce
 * serves one record only: a second record needs a new IV init, so the
 * stub never encrypts twice under one nonce.  A wrong tag fails the
 * update (T writes zeros), which libssl turns into a bad_record_mac alert.
 *
 *   TLS 1.2 record (tls1_meth.c:tls1_cipher), as libssl calls it:
 *     key init (GCM: key, then set_ctx_params(tlsivfixed, 4 bytes);
 *               ChaCha20-Poly1305: key and the 12-byte fixed IV)
 *     per record: set_ctx_params(tlsaad: seq || type || version || len),
 *                 get_ctx_params(tlsaadpad) -> 16,
 *                 update(the whole record) <- the crossing
 *   The stub does what the default provider's TLS modes do
 *   (ciphercommon_gcm.c: gcm_tls_init/gcm_tls_cipher;
 *   cipher_chacha20_poly1305_hw.c: chacha_poly1305_tls_init/_tls_cipher):
 *   it corrects the length in the AAD (minus the explicit nonce and, on
 *   decryption, the tag), builds the 12-byte nonce and lays out the record:
 *     GCM:    nonce = fixed IV (4) || explicit nonce (8); the record is
 *             explicit nonce || ciphertext || tag.  Encrypting, the
 *             explicit nonce is the record's sequence number (from the
 *             AAD; RFC 5288 lets the sender choose it, it must only never
 *             repeat under a key: OpenSSL counts up from a random value);
 *             decrypting, it is the record's.
 *     ChaCha: nonce = fixed IV XOR (0^4 || sequence number) (RFC 7905);
 *             the record is ciphertext || tag.
 *   The output length is the whole record (encryption) or the payload
 *   (decryption, written after the explicit nonce), as libssl expects.
 *   An encrypting context refuses a sequence number that does not grow,
 *   so no nonce is used twice.  EVP_Cipher() does the same as update.
 *
 * Unmarked inits (raw keys: anyone's AES-GCM, QUIC's) select the default
 * provider's implementation for the context, and everything is forwarded.
 * A token context refuses what it cannot do rather than hand it to the
 * keyless default context: dup, a new key or IV length, reading the IV,
 * IV generation parameters, a direction change.
 */

#include "ksp_local.h"

#include <stdlib.h>
#include <string.h>

#define AAD_MAX  64                     /* a TLS record header: 5 (1.2: 13) */

/* TLS 1.2 records (the values of evp.h, which the provider does not use) */
#define TLS_AAD_LEN         13          /* EVP_AEAD_TLS1_AAD_LEN */
#define GCM_FIXED_IV_LEN    4           /* EVP_GCM_TLS_FIXED_IV_LEN */
#define GCM_EXPLICIT_IV_LEN 8           /* EVP_GCM_TLS_EXPLICIT_IV_LEN */
#define TLS_TAG_LEN         16          /* GCM and Poly1305 tags */

struct cipher_alg {
    struct ksp_fwd  fwd;
    uint32_t        ks_alg;             /* enum ks_aead_alg */
    size_t          keylen;
};

static struct cipher_alg alg_aes128gcm = {
    { OSSL_OP_CIPHER, "AES-128-GCM", NULL, 0 }, KS_AEAD_AES_128_GCM, 16 };
static struct cipher_alg alg_aes256gcm = {
    { OSSL_OP_CIPHER, "AES-256-GCM", NULL, 0 }, KS_AEAD_AES_256_GCM, 32 };
static struct cipher_alg alg_chacha = {
    { OSSL_OP_CIPHER, "ChaCha20-Poly1305", NULL, 0 },
    KS_AEAD_CHACHA20_POLY1305, 32 };

struct cipher_fns {
    OSSL_FUNC_cipher_newctx_fn                  *newctx;
    OSSL_FUNC_cipher_freectx_fn                 *freectx;
    OSSL_FUNC_cipher_dupctx_fn                  *dupctx;
    OSSL_FUNC_cipher_encrypt_init_fn            *einit;
    OSSL_FUNC_cipher_decrypt_init_fn            *dinit;
    OSSL_FUNC_cipher_update_fn                  *update;
    OSSL_FUNC_cipher_final_fn                   *final;
    OSSL_FUNC_cipher_cipher_fn                  *cipher;
    OSSL_FUNC_cipher_get_params_fn              *get_params;
    OSSL_FUNC_cipher_get_ctx_params_fn          *get_ctx_params;
    OSSL_FUNC_cipher_set_ctx_params_fn          *set_ctx_params;
    OSSL_FUNC_cipher_gettable_params_fn         *gettable_params;
    OSSL_FUNC_cipher_gettable_ctx_params_fn     *gettable_ctx_params;
    OSSL_FUNC_cipher_settable_ctx_params_fn     *settable_ctx_params;
};

struct cipher_ctx {
    struct ksp_provctx         *pc;
    const struct cipher_alg    *alg;
    struct cipher_fns           fns;
    void                       *inner;      /* the default's context */
    /* a token context (marked): */
    uint64_t                    handle;     /* KS_HT_AEAD, 0: not marked */
    int                         enc;
    unsigned char               nonce[KS_AEAD_NONCE_LEN];
    int                         have_nonce; /* until the record is done */
    unsigned char               aad[AAD_MAX];
    size_t                      aadlen;
    unsigned char               tag[KS_AEAD_TAG_LEN];
    int                         have_tag;   /* decrypt: set; encrypt: made */
    int                         done;       /* the record crossed */
    /* TLS 1.2 record mode (tlsivfixed or tlsaad seen; never left) */
    int                         tls12;
    unsigned char               iv[KS_AEAD_NONCE_LEN];  /* of the last init */
    int                         have_iv;
    unsigned char               fixed[KS_AEAD_NONCE_LEN];
    size_t                      fixedlen;   /* GCM 4, ChaCha 12; 0: none */
    unsigned char               tls_aad[TLS_AAD_LEN];   /* corrected */
    int                         tls_pending;    /* an AAD awaits its record */
    uint64_t                    next_seq;   /* encrypt: lowest allowed */
};

static void
cipher_fns_load(struct cipher_fns *f, const OSSL_DISPATCH *d)
{
#define F(field, type, id) f->field = (type *) ksp_dispatch_fn(d, id)
    F(newctx, OSSL_FUNC_cipher_newctx_fn, OSSL_FUNC_CIPHER_NEWCTX);
    F(freectx, OSSL_FUNC_cipher_freectx_fn, OSSL_FUNC_CIPHER_FREECTX);
    F(dupctx, OSSL_FUNC_cipher_dupctx_fn, OSSL_FUNC_CIPHER_DUPCTX);
    F(einit, OSSL_FUNC_cipher_encrypt_init_fn, OSSL_FUNC_CIPHER_ENCRYPT_INIT);
    F(dinit, OSSL_FUNC_cipher_decrypt_init_fn, OSSL_FUNC_CIPHER_DECRYPT_INIT);
    F(update, OSSL_FUNC_cipher_update_fn, OSSL_FUNC_CIPHER_UPDATE);
    F(final, OSSL_FUNC_cipher_final_fn, OSSL_FUNC_CIPHER_FINAL);
    F(cipher, OSSL_FUNC_cipher_cipher_fn, OSSL_FUNC_CIPHER_CIPHER);
    F(get_params, OSSL_FUNC_cipher_get_params_fn, OSSL_FUNC_CIPHER_GET_PARAMS);
    F(get_ctx_params, OSSL_FUNC_cipher_get_ctx_params_fn,
      OSSL_FUNC_CIPHER_GET_CTX_PARAMS);
    F(set_ctx_params, OSSL_FUNC_cipher_set_ctx_params_fn,
      OSSL_FUNC_CIPHER_SET_CTX_PARAMS);
    F(gettable_params, OSSL_FUNC_cipher_gettable_params_fn,
      OSSL_FUNC_CIPHER_GETTABLE_PARAMS);
    F(gettable_ctx_params, OSSL_FUNC_cipher_gettable_ctx_params_fn,
      OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS);
    F(settable_ctx_params, OSSL_FUNC_cipher_settable_ctx_params_fn,
      OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS);
#undef F
}

static void *
cipher_newctx(struct ksp_provctx *pc, struct cipher_alg *alg)
{
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &alg->fwd);
    struct cipher_ctx *c;

    if (d == NULL || (c = calloc(1, sizeof(*c))) == NULL) {
        return NULL;
    }
    c->pc = pc;
    c->alg = alg;
    cipher_fns_load(&c->fns, d);
    if (c->fns.newctx == NULL || c->fns.freectx == NULL
        || c->fns.einit == NULL || c->fns.dinit == NULL
        || c->fns.update == NULL || c->fns.final == NULL
        || (c->inner = c->fns.newctx(pc->deflt.provctx)) == NULL)
    {
        free(c);
        return NULL;
    }
    return c;
}

/* Back to an unmarked context: the T context is ended. */
static void
cipher_unmark(struct cipher_ctx *c)
{
    ksp_free_handle(c->pc, c->handle);
    c->handle = 0;
    c->have_nonce = c->have_tag = c->done = 0;
    c->aadlen = 0;
    c->tls12 = c->have_iv = c->tls_pending = 0;
    c->fixedlen = 0;
    c->next_seq = 0;
}

static int
is_chacha(const struct cipher_ctx *c)
{
    return c->alg->ks_alg == KS_AEAD_CHACHA20_POLY1305;
}

static void
cipher_freectx(void *vctx)
{
    struct cipher_ctx *c = vctx;

    if (c == NULL) {
        return;
    }
    cipher_unmark(c);
    c->fns.freectx(c->inner);
    explicit_bzero(c, sizeof(*c));
    free(c);
}

static void *
cipher_dupctx(void *vctx)
{
    struct cipher_ctx *src = vctx, *c;

    if (src->handle != 0) {
        /* one T context has one owner: no copies (not needed by libssl) */
        KSP_ERR(src->pc, KSP_R_NOT_SUPPORTED, "dup of a token cipher context");
        return NULL;
    }
    if (src->fns.dupctx == NULL || (c = malloc(sizeof(*c))) == NULL) {
        return NULL;
    }
    *c = *src;
    if ((c->inner = src->fns.dupctx(src->inner)) == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

/* The IV length the default's context has now. */
static size_t
inner_ivlen(struct cipher_ctx *c)
{
    size_t ivlen = 0;
    OSSL_PARAM p[2] = {
        { OSSL_CIPHER_PARAM_IVLEN, OSSL_PARAM_UNSIGNED_INTEGER, &ivlen,
          sizeof(ivlen), 0 },
        OSSL_PARAM_END
    };

    if (c->fns.get_ctx_params == NULL || !c->fns.get_ctx_params(c->inner, p)) {
        return 0;
    }
    return ivlen;
}

/* A key token: a T context for it (one crossing). */
static int
cipher_mark(struct cipher_ctx *c, int enc, const unsigned char *key,
    size_t keylen)
{
    struct ks_args_aead_new a;
    uint64_t h = 0;

    if (keylen != c->alg->keylen || inner_ivlen(c) != KS_AEAD_NONCE_LEN) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER,
                "record-key token: key or IV length the keystore does not serve");
        return 0;
    }
    cipher_unmark(c);
    memset(&a, 0, sizeof(a));
    a.alg = c->alg->ks_alg;
    a.enc = (uint32_t) enc;
    a.key = key;
    a.keylen = keylen;
    a.handle = &h;
    if (ksp_gate(c->pc, KS_OP_AEAD_NEW, &a, "AEAD key") != 0) {
        return 0;
    }
    c->handle = h;
    c->enc = enc;
    return 1;
}

/* Parameters a token context handles itself (or refuses) */
static int
is_token_param(const OSSL_PARAM *p)
{
    return strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TAG) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_AAD) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_GET_IV_GEN) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_SET_IV_INV) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_IV) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_UPDATED_IV) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_KEYLEN) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_IVLEN) == 0
           || strncmp(p->key, "mpktls-", 7) == 0;
}

/* Parameters a token context answers itself */
static int
is_answered_param(const OSSL_PARAM *p)
{
    return strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TAG) == 0
           || strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_AAD_PAD) == 0;
}

/* ---- TLS 1.2 records ----------------------------------------------------- */

/*
 * tlsivfixed: GCM's 4-byte fixed IV (the 8-byte invocation field is the
 * explicit nonce), or ChaCha20-Poly1305's whole 12-byte IV.  Public: it
 * comes from the clear part of the key block.
 */
static int
tls12_fixed_iv(struct cipher_ctx *c, const OSSL_PARAM *p)
{
    const void *d;
    size_t n, want = is_chacha(c) ? KS_AEAD_NONCE_LEN : GCM_FIXED_IV_LEN;

    if (!ksp_param_get_octets(p, &d, &n) || n != want || d == NULL) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "fixed IV of %zu bytes",
                p->data_size);
        return 0;
    }
    memcpy(c->fixed, d, n);
    c->fixedlen = n;
    c->tls12 = 1;
    c->have_nonce = 0;              /* no TLS 1.3-style record from here */
    return 1;
}

/*
 * tlsaad: the 13-byte AAD of the next record (sequence number, type,
 * version, length), as gcm_tls_init / chacha_poly1305_tls_init take it:
 * the length is the record's and is corrected to the payload's (minus the
 * explicit nonce for GCM, minus the tag when decrypting).
 */
static int
tls12_aad(struct cipher_ctx *c, const OSSL_PARAM *p)
{
    const unsigned char *a;
    const void *d;
    size_t n, len, sub;

    if (!ksp_param_get_octets(p, &d, &n) || n != TLS_AAD_LEN || d == NULL) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "TLS AAD of %zu bytes",
                p->data_size);
        return 0;
    }
    a = d;
    if (c->fixedlen == 0 && is_chacha(c) && c->have_iv) {
        /* ChaCha20-Poly1305's fixed IV is the IV of the key init */
        memcpy(c->fixed, c->iv, KS_AEAD_NONCE_LEN);
        c->fixedlen = KS_AEAD_NONCE_LEN;
    }
    if (c->fixedlen == 0) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "TLS AAD without a fixed IV");
        return 0;
    }
    c->tls12 = 1;
    c->have_nonce = 0;
    c->tls_pending = 0;
    len = (size_t) a[TLS_AAD_LEN - 2] << 8 | a[TLS_AAD_LEN - 1];
    sub = (is_chacha(c) ? 0 : GCM_EXPLICIT_IV_LEN)
          + (c->enc ? 0 : TLS_TAG_LEN);
    if (len < sub) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "TLS record too short");
        return 0;
    }
    len -= sub;
    memcpy(c->tls_aad, a, TLS_AAD_LEN);
    c->tls_aad[TLS_AAD_LEN - 2] = (unsigned char) (len >> 8);
    c->tls_aad[TLS_AAD_LEN - 1] = (unsigned char) len;
    c->tls_pending = 1;
    return 1;
}

static int
token_set_params(struct cipher_ctx *c, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p;

    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strncmp(p->key, "mpktls-", 7) == 0) {
            continue;               /* the init's own marker */
        }
        if (strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TAG) == 0) {
            const void *t;
            size_t n;

            if (c->enc || !ksp_param_get_octets(p, &t, &n)
                || n != KS_AEAD_TAG_LEN || t == NULL)
            {
                KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "tag");
                return 0;
            }
            memcpy(c->tag, t, n);
            c->have_tag = 1;
        } else if (strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED) == 0) {
            if (!tls12_fixed_iv(c, p)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TLS1_AAD) == 0) {
            if (!tls12_aad(c, p)) {
                return 0;
            }
        } else if (is_token_param(p)) {
            /* IV generation, a new key or IV length: refused, never
             * passed to the keyless default */
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "%s on a token cipher", p->key);
            return 0;
        }
    }
    return ksp_params_forward_set(c->inner, params,
               (int (*)(void *, const OSSL_PARAM[])) c->fns.set_ctx_params,
               is_token_param);
}

static int
cipher_init(struct cipher_ctx *c, int enc, const unsigned char *key,
    size_t keylen, const unsigned char *iv, size_t ivlen,
    const OSSL_PARAM params[])
{
    int token = ksp_param_key_token(params);

    if (token == -2) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "%s", KSP_MARK_KEY_TOKEN);
        return 0;
    }
    if (key != NULL && token == 1) {
        if (!cipher_mark(c, enc, key, keylen)) {
            return 0;
        }
    } else if (key != NULL || (token != 1 && c->handle == 0)) {
        /* a raw key, or no token context: the default does it all */
        if (c->handle != 0) {
            cipher_unmark(c);
        }
        return enc ? c->fns.einit(c->inner, key, keylen, iv, ivlen, params)
                   : c->fns.dinit(c->inner, key, keylen, iv, ivlen, params);
    } else if (c->handle == 0) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "token marker without a key");
        return 0;
    } else if (c->tls12) {
        /* TLS 1.2 records take their nonces from tlsaad, never an IV */
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "re-init of a TLS 1.2 record "
                "context");
        return 0;
    }
    /* a token context: a key init, or a per-record IV init */
    if (enc != c->enc) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "direction change");
        return 0;
    }
    c->have_nonce = c->done = 0;
    c->aadlen = 0;
    c->have_tag = 0;
    if (iv != NULL) {
        if (ivlen != KS_AEAD_NONCE_LEN) {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "IV length %zu", ivlen);
            return 0;
        }
        memcpy(c->nonce, iv, ivlen);
        c->have_nonce = 1;
        memcpy(c->iv, iv, ivlen);       /* ChaCha20 in TLS 1.2: fixed IV */
        c->have_iv = 1;
    }
    return token_set_params(c, params);
}

static int
cipher_einit(void *vctx, const unsigned char *key, size_t keylen,
    const unsigned char *iv, size_t ivlen, const OSSL_PARAM params[])
{
    return cipher_init(vctx, 1, key, keylen, iv, ivlen, params);
}

static int
cipher_dinit(void *vctx, const unsigned char *key, size_t keylen,
    const unsigned char *iv, size_t ivlen, const OSSL_PARAM params[])
{
    return cipher_init(vctx, 0, key, keylen, iv, ivlen, params);
}

/*
 * One record through T: the crossing.  nonce, aad: in U; the tag is
 * c->tag (out when encrypting, in when decrypting).  in/out may be equal;
 * if they partly overlap the input is copied first.
 */
static int
aead_cross(struct cipher_ctx *c, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, unsigned char *out,
    const unsigned char *in, size_t inl)
{
    struct ks_args_aead_record a;
    unsigned char *tmp = NULL;
    long rc;

    if (inl > 0 && in != out
        && (uintptr_t) in < (uintptr_t) out + inl
        && (uintptr_t) out < (uintptr_t) in + inl)
    {
        if ((tmp = malloc(inl)) == NULL) {
            return 0;
        }
        memcpy(tmp, in, inl);
        in = tmp;
    }
    memset(&a, 0, sizeof(a));
    a.handle = c->handle;
    a.nonce = nonce;
    a.aad = aad;
    a.aadlen = aadlen;
    a.in = in;
    a.inlen = inl;
    a.out = out;
    a.tag = c->tag;
    rc = ks_gate_call(KS_OP_AEAD_RECORD, &a);
    free(tmp);
    if (rc != 0) {
        /* a bad tag is the peer's doing (KS_ERR_CRYPTO on decryption):
         * libssl turns the failure into a bad_record_mac alert */
        if (!c->enc && rc == KS_ERR_CRYPTO) {
            KSP_ERR(c->pc, KSP_R_REFUSED, "record authentication failed");
        } else {
            KSP_ERR(c->pc, KSP_R_REFUSED, "AEAD record: %ld", rc);
        }
        return 0;
    }
    return 1;
}

/* A TLS 1.3-style record (nonce from the IV init): one crossing. */
static int
cipher_record(struct cipher_ctx *c, unsigned char *out,
    const unsigned char *in, size_t inl)
{
    int ok;

    if (!c->have_nonce || c->done || (!c->enc && !c->have_tag)) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED,
                "record without a fresh nonce%s", c->enc ? "" : " or tag");
        return 0;
    }
    ok = aead_cross(c, c->nonce, c->aad, c->aadlen, out, in, inl);
    c->done = 1;                    /* the nonce is spent, whatever happened */
    c->have_nonce = 0;
    if (ok && c->enc) {
        c->have_tag = 1;
    }
    return ok;
}

static uint64_t
be64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/*
 * A TLS 1.2 record, the whole of it in one update (or EVP_Cipher()): one
 * crossing.  GCM: explicit nonce (8) || payload || tag (16); ChaCha20-
 * Poly1305: payload || tag.  *outl: the whole record when encrypting, the
 * payload when decrypting (which is written after the explicit nonce),
 * as the default provider's TLS modes answer.
 */
static int
tls12_record(struct cipher_ctx *c, unsigned char *out, size_t *outl,
    size_t outsize, const unsigned char *in, size_t inl)
{
    unsigned char nonce[KS_AEAD_NONCE_LEN], explicit[GCM_EXPLICIT_IV_LEN];
    size_t eiv = is_chacha(c) ? 0 : GCM_EXPLICIT_IV_LEN, plen, i;
    uint64_t seq = be64(c->tls_aad);
    int ok;

    if (!c->tls_pending) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "TLS 1.2 record without its AAD");
        return 0;
    }
    c->tls_pending = 0;             /* an AAD serves one record */
    if (out == NULL || in == NULL || inl < eiv + TLS_TAG_LEN
        || outsize < inl)
    {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "TLS 1.2 record of %zu bytes", inl);
        return 0;
    }
    plen = inl - eiv - TLS_TAG_LEN;
    /* ChaCha20-Poly1305 checks the record against the AAD's length (GCM
     * does not: a wrong length there fails the tag) */
    if (is_chacha(c) && plen != ((size_t) c->tls_aad[TLS_AAD_LEN - 2] << 8
                                 | c->tls_aad[TLS_AAD_LEN - 1]))
    {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "TLS 1.2 record length");
        return 0;
    }
    if (c->enc) {
        if (seq < c->next_seq || seq == UINT64_MAX) {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED,
                    "TLS 1.2 sequence number used twice under one key");
            return 0;
        }
        for (i = 0; i < 8; i++) {
            explicit[i] = c->tls_aad[i];        /* the sequence number */
        }
        c->next_seq = seq + 1;      /* the nonce is spent, whatever happens */
    } else {
        memcpy(explicit, in, eiv);
        memcpy(c->tag, in + eiv + plen, TLS_TAG_LEN);
    }
    if (is_chacha(c)) {
        memcpy(nonce, c->fixed, KS_AEAD_NONCE_LEN);
        for (i = 0; i < 8; i++) {
            nonce[4 + i] ^= c->tls_aad[i];
        }
    } else {
        memcpy(nonce, c->fixed, GCM_FIXED_IV_LEN);
        memcpy(nonce + GCM_FIXED_IV_LEN, explicit, GCM_EXPLICIT_IV_LEN);
    }
    ok = aead_cross(c, nonce, c->tls_aad, TLS_AAD_LEN, out + eiv, in + eiv,
                    plen);
    if (!ok) {
        return 0;
    }
    if (c->enc) {
        /* after the crossing: out may overlap in */
        memcpy(out, explicit, eiv);
        memcpy(out + eiv + plen, c->tag, TLS_TAG_LEN);
        *outl = inl;
    } else {
        *outl = plen;
    }
    return 1;
}

static int
cipher_update(void *vctx, unsigned char *out, size_t *outl, size_t outsize,
    const unsigned char *in, size_t inl)
{
    struct cipher_ctx *c = vctx;

    if (c->handle == 0) {
        return c->fns.update(c->inner, out, outl, outsize, in, inl);
    }
    if (c->tls12) {
        return tls12_record(c, out, outl, outsize, in, inl);
    }
    if (out == NULL) {                      /* AAD */
        if (c->done || inl > AAD_MAX - c->aadlen) {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "AAD");
            return 0;
        }
        if (inl > 0) {
            memcpy(c->aad + c->aadlen, in, inl);
            c->aadlen += inl;
        }
        *outl = 0;
        return 1;
    }
    if (outsize < inl || !cipher_record(c, out, in, inl)) {
        return 0;
    }
    *outl = inl;
    return 1;
}

static int
cipher_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    struct cipher_ctx *c = vctx;

    if (c->handle == 0) {
        return c->fns.final(c->inner, out, outl, outsize);
    }
    /* a record without data (only AAD) crosses here; a TLS 1.2 record
     * was all done by its update */
    if (!c->tls12 && !c->done && !cipher_record(c, NULL, NULL, 0)) {
        return 0;
    }
    *outl = 0;
    return 1;
}

static int
cipher_cipher(void *vctx, unsigned char *out, size_t *outl, size_t outsize,
    const unsigned char *in, size_t inl)
{
    struct cipher_ctx *c = vctx;

    if (c->handle != 0 && c->tls12) {
        return tls12_record(c, out, outl, outsize, in, inl);
    }
    if (c->handle != 0 || c->fns.cipher == NULL) {
        /* EVP_Cipher() on a TLS 1.3-style token context */
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "one-shot cipher on a token key");
        return 0;
    }
    return c->fns.cipher(c->inner, out, outl, outsize, in, inl);
}

static int
cipher_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    struct cipher_ctx *c = vctx;
    OSSL_PARAM *p;

    if (c->handle == 0) {
        return c->fns.get_ctx_params != NULL
               && c->fns.get_ctx_params(c->inner, params);
    }
    if ((p = ksp_param_find_rw(params, OSSL_CIPHER_PARAM_AEAD_TAG)) != NULL) {
        if (!c->enc || !c->have_tag || p->data_size == 0
            || p->data_size > KS_AEAD_TAG_LEN || p->data == NULL
            || p->data_type != OSSL_PARAM_OCTET_STRING)
        {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "tag");
            return 0;
        }
        memcpy(p->data, c->tag, p->data_size);
        p->return_size = p->data_size;
    }
    if ((p = ksp_param_find_rw(params, OSSL_CIPHER_PARAM_AEAD_TLS1_AAD_PAD))
        != NULL)
    {
        /* what the AAD adds to the record: the tag */
        if (!c->tls12 || !ksp_param_set_size_t(p, TLS_TAG_LEN)) {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "%s", p->key);
            return 0;
        }
    }
    if ((p = ksp_param_find_rw(params, OSSL_CIPHER_PARAM_AEAD_TLS1_GET_IV_GEN))
        != NULL || (p = ksp_param_find_rw(params, OSSL_CIPHER_PARAM_IV)) != NULL
        || (p = ksp_param_find_rw(params, OSSL_CIPHER_PARAM_UPDATED_IV)) != NULL)
    {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "%s on a token cipher", p->key);
        return 0;
    }
    /* key, IV and tag lengths and the rest: the default's context knows */
    return ksp_params_forward_get(c->inner, params,
               (int (*)(void *, OSSL_PARAM[])) c->fns.get_ctx_params,
               is_answered_param);
}

static int
cipher_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct cipher_ctx *c = vctx;

    if (c->handle != 0) {
        return token_set_params(c, params);
    }
    return c->fns.set_ctx_params == NULL
           || c->fns.set_ctx_params(c->inner, params);
}

/* ---- per algorithm: the parts without a context ------------------------- */

static const OSSL_DISPATCH *
alg_impl(void *provctx, struct cipher_alg *alg)
{
    return ksp_fwd_impl(provctx, &alg->fwd);
}

static int
alg_get_params(struct cipher_alg *alg, OSSL_PARAM params[])
{
    /* the default's get_params takes no provctx: it is a table of facts */
    const OSSL_DISPATCH *d = alg->fwd.impl;
    OSSL_FUNC_cipher_get_params_fn *fn = (OSSL_FUNC_cipher_get_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_CIPHER_GET_PARAMS);

    return fn != NULL && fn(params);
}

static const OSSL_PARAM *
alg_gettable_params(void *provctx, struct cipher_alg *alg)
{
    struct ksp_provctx *pc = provctx;
    OSSL_FUNC_cipher_gettable_params_fn *fn = (OSSL_FUNC_cipher_gettable_params_fn *)
        ksp_dispatch_fn(alg_impl(provctx, alg), OSSL_FUNC_CIPHER_GETTABLE_PARAMS);

    return fn == NULL ? NULL : fn(pc->deflt.provctx);
}

static const OSSL_PARAM *
alg_gettable_ctx_params(void *vctx, void *provctx, struct cipher_alg *alg)
{
    struct ksp_provctx *pc = provctx;
    struct cipher_ctx *c = vctx;
    OSSL_FUNC_cipher_gettable_ctx_params_fn *fn = (OSSL_FUNC_cipher_gettable_ctx_params_fn *)
        ksp_dispatch_fn(alg_impl(provctx, alg), OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS);

    return fn == NULL ? NULL : fn(c != NULL ? c->inner : NULL, pc->deflt.provctx);
}

static const OSSL_PARAM *
alg_settable_ctx_params(void *vctx, void *provctx, struct cipher_alg *alg)
{
    struct ksp_provctx *pc = provctx;
    struct cipher_ctx *c = vctx;
    OSSL_FUNC_cipher_settable_ctx_params_fn *fn = (OSSL_FUNC_cipher_settable_ctx_params_fn *)
        ksp_dispatch_fn(alg_impl(provctx, alg), OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS);

    return fn == NULL ? NULL : fn(c != NULL ? c->inner : NULL, pc->deflt.provctx);
}

/*
 * get_params has no provctx, and EVP calls it while it builds the method
 * (the cipher's constants), before any context exists: it uses the table
 * ksp_cipher_prime() looked up when the core queried our ciphers.
 */
#define CIPHER_FNS(tag, alg)                                                \
static void *tag##_newctx(void *provctx)                                    \
{ return cipher_newctx(provctx, &alg); }                                    \
static int tag##_get_params(OSSL_PARAM params[])                            \
{ return alg_get_params(&alg, params); }                                    \
static const OSSL_PARAM *tag##_gettable_params(void *provctx)               \
{ return alg_gettable_params(provctx, &alg); }                              \
static const OSSL_PARAM *tag##_gettable_ctx_params(void *c, void *provctx)  \
{ return alg_gettable_ctx_params(c, provctx, &alg); }                       \
static const OSSL_PARAM *tag##_settable_ctx_params(void *c, void *provctx)  \
{ return alg_settable_ctx_params(c, provctx, &alg); }                       \
static const OSSL_DISPATCH tag##_functions[] = {                            \
    { OSSL_FUNC_CIPHER_NEWCTX, (ksp_fn) tag##_newctx },                     \
    { OSSL_FUNC_CIPHER_FREECTX, (ksp_fn) cipher_freectx },                  \
    { OSSL_FUNC_CIPHER_DUPCTX, (ksp_fn) cipher_dupctx },                    \
    { OSSL_FUNC_CIPHER_ENCRYPT_INIT, (ksp_fn) cipher_einit },               \
    { OSSL_FUNC_CIPHER_DECRYPT_INIT, (ksp_fn) cipher_dinit },               \
    { OSSL_FUNC_CIPHER_UPDATE, (ksp_fn) cipher_update },                    \
    { OSSL_FUNC_CIPHER_FINAL, (ksp_fn) cipher_final },                      \
    { OSSL_FUNC_CIPHER_CIPHER, (ksp_fn) cipher_cipher },                    \
    { OSSL_FUNC_CIPHER_GET_PARAMS, (ksp_fn) tag##_get_params },             \
    { OSSL_FUNC_CIPHER_GET_CTX_PARAMS, (ksp_fn) cipher_get_ctx_params },    \
    { OSSL_FUNC_CIPHER_SET_CTX_PARAMS, (ksp_fn) cipher_set_ctx_params },    \
    { OSSL_FUNC_CIPHER_GETTABLE_PARAMS, (ksp_fn) tag##_gettable_params },   \
    { OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS,                                 \
      (ksp_fn) tag##_gettable_ctx_params },                                 \
    { OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS,                                 \
      (ksp_fn) tag##_settable_ctx_params },                                 \
    OSSL_DISPATCH_END                                                       \
};

CIPHER_FNS(aes128gcm, alg_aes128gcm)
CIPHER_FNS(aes256gcm, alg_aes256gcm)
CIPHER_FNS(chacha, alg_chacha)

void
ksp_cipher_prime(struct ksp_provctx *pc)
{
    if (pc->deflt.query == NULL) {
        return;                     /* not loaded (yet): fetches fail */
    }
    ksp_fwd_impl(pc, &alg_aes128gcm.fwd);
    ksp_fwd_impl(pc, &alg_aes256gcm.fwd);
    ksp_fwd_impl(pc, &alg_chacha.fwd);
}

const OSSL_ALGORITHM ksp_ciphers[] = {
    { "AES-128-GCM:id-aes128-GCM:2.16.840.1.101.3.4.1.6", KSP_PROPS,
      aes128gcm_functions, "AES-128-GCM with sealed record keys (mpk-tls)" },
    { "AES-256-GCM:id-aes256-GCM:2.16.840.1.101.3.4.1.46", KSP_PROPS,
      aes256gcm_functions, "AES-256-GCM with sealed record keys (mpk-tls)" },
    { "ChaCha20-Poly1305", KSP_PROPS, chacha_functions,
      "ChaCha20-Poly1305 with sealed record keys (mpk-tls)" },
    { NULL, NULL, NULL, NULL }
};
