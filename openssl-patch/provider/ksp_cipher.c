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
 * Unmarked inits (raw keys: anyone's AES-GCM, QUIC's) select the default
 * provider's implementation for the context, and everything is forwarded.
 * Not yet (part 2): TLS 1.2 records (tlsaad, tlsivfixed: refused on a
 * token context, so TLS 1.2 fails closed), EVP_Cipher() one-shot calls on
 * a token context, dup of a token context.
 */

#include "ksp_local.h"

#include <stdlib.h>
#include <string.h>

#define AAD_MAX  64                     /* a TLS record header: 5 (1.2: 13) */

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

static int
is_tag_param(const OSSL_PARAM *p)
{
    return strcmp(p->key, OSSL_CIPHER_PARAM_AEAD_TAG) == 0;
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
        } else if (is_token_param(p)) {
            /* TLS 1.2 record parameters, a new key or IV length: part 2
             * or never; refused, never passed to the keyless default */
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

/* The record: one crossing.  in/out may be equal, never partly overlap. */
static int
cipher_record(struct cipher_ctx *c, unsigned char *out,
    const unsigned char *in, size_t inl)
{
    struct ks_args_aead_record a;
    unsigned char *tmp = NULL;
    long rc;

    if (!c->have_nonce || c->done || (!c->enc && !c->have_tag)) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED,
                "record without a fresh nonce%s", c->enc ? "" : " or tag");
        return 0;
    }
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
    a.nonce = c->nonce;
    a.aad = c->aad;
    a.aadlen = c->aadlen;
    a.in = in;
    a.inlen = inl;
    a.out = out;
    a.tag = c->tag;
    rc = ks_gate_call(KS_OP_AEAD_RECORD, &a);
    free(tmp);
    c->done = 1;                    /* the nonce is spent, whatever happened */
    c->have_nonce = 0;
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
    if (c->enc) {
        c->have_tag = 1;
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
    /* a record without data (only AAD) crosses here */
    if (!c->done && !cipher_record(c, NULL, NULL, 0)) {
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

    if (c->handle != 0 || c->fns.cipher == NULL) {
        /* EVP_Cipher() on a token context: TLS 1.2 records, part 2 */
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
               is_tag_param);
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
