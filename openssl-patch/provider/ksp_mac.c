/*
 * HMAC of the keystore provider (U).
 *
 * libssl marks the two HMACs whose key is a sealed MAC-key token
 * (openssl-patch/patches/0003): the TLS 1.3 Finished MAC (EVP_Q_mac: the
 * marker comes with set_ctx_params and with init) and the PSK binder
 * (EVP_DigestSignInit_ex with an HMAC key: the default provider's HMAC
 * signature hands its init parameters on to EVP_MAC_init, so the marker
 * reaches this init).  A marked MAC keeps the token and collects the
 * (public) input in U; final is one KS_OP_MAC crossing, whose clear
 * result (verify data) is the MAC.
 *
 * Every other HMAC (session-ticket and cookie HMACs with raw keys, the
 * HMAC inside the default provider's KDFs) is forwarded to the default
 * provider's HMAC.
 */

#include "ksp_local.h"

#include <stdlib.h>
#include <string.h>

#define MAC_KEY_MAX     64              /* a Finished key: hash length */
#define MAC_DATA_MAX    (1u << 20)      /* T's argument bound */

struct mac_fns {
    OSSL_FUNC_mac_newctx_fn                 *newctx;
    OSSL_FUNC_mac_dupctx_fn                 *dupctx;
    OSSL_FUNC_mac_freectx_fn                *freectx;
    OSSL_FUNC_mac_init_fn                   *init;
    OSSL_FUNC_mac_update_fn                 *update;
    OSSL_FUNC_mac_final_fn                  *final;
    OSSL_FUNC_mac_set_ctx_params_fn         *set_ctx_params;
    OSSL_FUNC_mac_get_ctx_params_fn         *get_ctx_params;
    OSSL_FUNC_mac_settable_ctx_params_fn    *settable_ctx_params;
    OSSL_FUNC_mac_gettable_ctx_params_fn    *gettable_ctx_params;
};

struct mac_ctx {
    struct ksp_provctx  *pc;
    struct mac_fns       fns;
    void                *inner;
    uint32_t             md;                /* from the digest parameter */
    int                  pending;           /* marker seen since last init */
    int                  marked;            /* the key is a token */
    unsigned char        key[MAC_KEY_MAX];
    size_t               keylen;
    unsigned char       *data;              /* the input so far (marked) */
    size_t               datalen, datacap;
};

static struct ksp_fwd fwd_hmac = { OSSL_OP_MAC, "HMAC", NULL, 0 };

static void *
hmac_newctx(void *provctx)
{
    struct ksp_provctx *pc = provctx;
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &fwd_hmac);
    struct mac_ctx *c;

    if (d == NULL || (c = calloc(1, sizeof(*c))) == NULL) {
        return NULL;
    }
    c->pc = pc;
    c->fns.newctx = (OSSL_FUNC_mac_newctx_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_NEWCTX);
    c->fns.dupctx = (OSSL_FUNC_mac_dupctx_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_DUPCTX);
    c->fns.freectx = (OSSL_FUNC_mac_freectx_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_FREECTX);
    c->fns.init = (OSSL_FUNC_mac_init_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_INIT);
    c->fns.update = (OSSL_FUNC_mac_update_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_UPDATE);
    c->fns.final = (OSSL_FUNC_mac_final_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_FINAL);
    c->fns.set_ctx_params = (OSSL_FUNC_mac_set_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_SET_CTX_PARAMS);
    c->fns.get_ctx_params = (OSSL_FUNC_mac_get_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_GET_CTX_PARAMS);
    if (c->fns.newctx == NULL || c->fns.freectx == NULL || c->fns.init == NULL
        || c->fns.update == NULL || c->fns.final == NULL
        || (c->inner = c->fns.newctx(pc->deflt.provctx)) == NULL)
    {
        free(c);
        return NULL;
    }
    return c;
}

static void
mac_data_free(struct mac_ctx *c)
{
    if (c->data != NULL) {
        explicit_bzero(c->data, c->datacap);
        free(c->data);
    }
    c->data = NULL;
    c->datalen = c->datacap = 0;
}

static void
hmac_freectx(void *vctx)
{
    struct mac_ctx *c = vctx;

    if (c == NULL) {
        return;
    }
    c->fns.freectx(c->inner);
    mac_data_free(c);
    explicit_bzero(c, sizeof(*c));
    free(c);
}

static void *
hmac_dupctx(void *vctx)
{
    struct mac_ctx *src = vctx, *c;

    if (src->fns.dupctx == NULL || (c = malloc(sizeof(*c))) == NULL) {
        return NULL;
    }
    *c = *src;
    c->data = NULL;
    c->datacap = 0;
    if (src->datalen > 0) {
        if ((c->data = malloc(src->datalen)) == NULL) {
            free(c);
            return NULL;
        }
        memcpy(c->data, src->data, src->datalen);
        c->datacap = src->datalen;
    }
    if ((c->inner = src->fns.dupctx(src->inner)) == NULL) {
        mac_data_free(c);
        free(c);
        return NULL;
    }
    return c;
}

/* The digest and the marker, from any parameter list. */
static int
mac_parse(struct mac_ctx *c, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p;
    const char *s;
    int t;

    if ((p = ksp_param_find(params, OSSL_MAC_PARAM_DIGEST)) != NULL) {
        if (!ksp_param_get_utf8(p, &s)) {
            return 0;
        }
        c->md = ksp_md_from_name(s);        /* 0: not one T serves */
    }
    t = ksp_param_key_token(params);
    if (t == -2) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "%s", KSP_MARK_KEY_TOKEN);
        return 0;
    }
    if (t >= 0) {
        c->pending = t;
    }
    return 1;
}

/* Parameters for the default's context: all but the key when it is a token */
static int
skip_key(const OSSL_PARAM *p)
{
    return strcmp(p->key, OSSL_MAC_PARAM_KEY) == 0;
}

/* A token key becomes the context's key: marked mode from now on. */
static int
mac_take_token(struct mac_ctx *c, const unsigned char *key, size_t keylen)
{
    if (c->md == 0 || keylen != ksp_md_len(c->md)) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER,
                "MAC-key token: digest or length the keystore does not serve");
        return 0;
    }
    memcpy(c->key, key, keylen);
    c->keylen = keylen;
    c->marked = 1;
    c->datalen = 0;
    return 1;
}

static int
hmac_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct mac_ctx *c = vctx;
    const OSSL_PARAM *p;

    if (!mac_parse(c, params)) {
        return 0;
    }
    p = ksp_param_find(params, OSSL_MAC_PARAM_KEY);
    if (p != NULL && c->pending == 1) {
        const void *k;
        size_t n;

        /* a key given as a parameter, marked as a token */
        if (!ksp_param_get_octets(p, &k, &n) || n > MAC_KEY_MAX
            || !mac_take_token(c, k, n))
        {
            return 0;
        }
        c->pending = 0;
        return ksp_params_forward_set(c->inner, params,
                   (int (*)(void *, const OSSL_PARAM[])) c->fns.set_ctx_params,
                   skip_key);
    }
    if (p != NULL) {
        c->marked = 0;                      /* a raw key replaces a token */
    }
    return c->fns.set_ctx_params == NULL
           || c->fns.set_ctx_params(c->inner, params);
}

static int
hmac_init(void *vctx, const unsigned char *key, size_t keylen,
    const OSSL_PARAM params[])
{
    struct mac_ctx *c = vctx;
    int token;

    if (!mac_parse(c, params)) {
        return 0;
    }
    token = c->pending == 1;
    c->pending = 0;
    if (key != NULL && token) {
        /* the digest and the rest go to the default's context, the token
         * never does */
        if (keylen > MAC_KEY_MAX || !mac_take_token(c, key, keylen)) {
            return 0;
        }
        return c->fns.set_ctx_params == NULL
               || c->fns.set_ctx_params(c->inner, params);
    }
    if (key == NULL && c->marked) {
        c->datalen = 0;                     /* again, with the same token */
        return c->fns.set_ctx_params == NULL
               || c->fns.set_ctx_params(c->inner, params);
    }
    if (key == NULL && token) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "token marker without a key");
        return 0;
    }
    c->marked = 0;
    explicit_bzero(c->key, sizeof(c->key));
    return c->fns.init(c->inner, key, keylen, params);
}

static int
hmac_update(void *vctx, const unsigned char *in, size_t inl)
{
    struct mac_ctx *c = vctx;

    if (!c->marked) {
        return c->fns.update(c->inner, in, inl);
    }
    if (inl > MAC_DATA_MAX - c->datalen) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "MAC input too long for the keystore");
        return 0;
    }
    if (c->datalen + inl > c->datacap) {
        size_t cap = c->datacap ? c->datacap : 64;
        unsigned char *n;

        while (cap < c->datalen + inl) {
            cap *= 2;
        }
        if ((n = malloc(cap)) == NULL) {
            return 0;
        }
        if (c->datalen > 0) {
            memcpy(n, c->data, c->datalen);
        }
        mac_data_free(c);
        c->data = n;
        c->datacap = cap;
    }
    if (inl > 0) {
        memcpy(c->data + c->datalen, in, inl);
        c->datalen += inl;
    }
    return 1;
}

static int
hmac_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    struct mac_ctx *c = vctx;
    struct ks_args_mac a;
    size_t n;

    if (!c->marked) {
        return c->fns.final(c->inner, out, outl, outsize);
    }
    n = ksp_md_len(c->md);
    if (out == NULL || outsize < n) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.md = c->md;
    a.key_is_token = 1;
    a.key = c->key;
    a.keylen = c->keylen;
    a.data = c->data;
    a.datalen = c->datalen;
    a.out = out;
    a.outlen = n;
    if (ksp_gate(c->pc, KS_OP_MAC, &a, "HMAC") != 0) {
        return 0;
    }
    *outl = n;
    return 1;
}

/* size and block-size answered here for a token key */
static int
is_size(const OSSL_PARAM *p)
{
    return strcmp(p->key, OSSL_MAC_PARAM_SIZE) == 0
           || strcmp(p->key, OSSL_MAC_PARAM_BLOCK_SIZE) == 0;
}

static int
hmac_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    struct mac_ctx *c = vctx;
    OSSL_PARAM *p;

    if (!c->marked) {
        return c->fns.get_ctx_params != NULL
               && c->fns.get_ctx_params(c->inner, params);
    }
    if ((p = ksp_param_find_rw(params, OSSL_MAC_PARAM_SIZE)) != NULL
        && !ksp_param_set_size_t(p, ksp_md_len(c->md)))
    {
        return 0;
    }
    if ((p = ksp_param_find_rw(params, OSSL_MAC_PARAM_BLOCK_SIZE)) != NULL
        && !ksp_param_set_int(p, (int) ksp_md_block(c->md)))
    {
        return 0;
    }
    return ksp_params_forward_get(c->inner, params,
               (int (*)(void *, OSSL_PARAM[])) c->fns.get_ctx_params, is_size);
}

static const OSSL_PARAM *
hmac_settable_ctx_params(void *vctx, void *provctx)
{
    struct ksp_provctx *pc = provctx;
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &fwd_hmac);
    OSSL_FUNC_mac_settable_ctx_params_fn *fn = (OSSL_FUNC_mac_settable_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_SETTABLE_CTX_PARAMS);
    struct mac_ctx *c = vctx;

    return fn == NULL ? NULL : fn(c != NULL ? c->inner : NULL, pc->deflt.provctx);
}

static const OSSL_PARAM *
hmac_gettable_ctx_params(void *vctx, void *provctx)
{
    struct ksp_provctx *pc = provctx;
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &fwd_hmac);
    OSSL_FUNC_mac_gettable_ctx_params_fn *fn = (OSSL_FUNC_mac_gettable_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_MAC_GETTABLE_CTX_PARAMS);
    struct mac_ctx *c = vctx;

    return fn == NULL ? NULL : fn(c != NULL ? c->inner : NULL, pc->deflt.provctx);
}

static const OSSL_DISPATCH hmac_functions[] = {
    { OSSL_FUNC_MAC_NEWCTX, (ksp_fn) hmac_newctx },
    { OSSL_FUNC_MAC_DUPCTX, (ksp_fn) hmac_dupctx },
    { OSSL_FUNC_MAC_FREECTX, (ksp_fn) hmac_freectx },
    { OSSL_FUNC_MAC_INIT, (ksp_fn) hmac_init },
    { OSSL_FUNC_MAC_UPDATE, (ksp_fn) hmac_update },
    { OSSL_FUNC_MAC_FINAL, (ksp_fn) hmac_final },
    { OSSL_FUNC_MAC_SET_CTX_PARAMS, (ksp_fn) hmac_set_ctx_params },
    { OSSL_FUNC_MAC_GET_CTX_PARAMS, (ksp_fn) hmac_get_ctx_params },
    { OSSL_FUNC_MAC_SETTABLE_CTX_PARAMS, (ksp_fn) hmac_settable_ctx_params },
    { OSSL_FUNC_MAC_GETTABLE_CTX_PARAMS, (ksp_fn) hmac_gettable_ctx_params },
    OSSL_DISPATCH_END
};

const OSSL_ALGORITHM ksp_macs[] = {
    { "HMAC", KSP_PROPS, hmac_functions,
      "HMAC with sealed Finished/binder keys (mpk-tls keystore)" },
    { NULL, NULL, NULL, NULL }
};
