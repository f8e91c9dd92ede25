/*
 * KDFs of the keystore provider (U): TLS13-KDF and TLS1-PRF.
 *
 * libssl marks every TLS13-KDF derivation it makes (openssl-patch/
 * patches/0002): mpktls-out (what the output is) and mpktls-key-token /
 * mpktls-salt-token (which inputs are sealed tokens), with the other
 * parameters, at derive.  A marked derivation is one KS_OP_KDF crossing:
 * T unseals the token inputs, derives with its private libcrypto, decides
 * the output class itself (ks_op_kdf.h: the marker must agree) and
 * returns a token, or clear bytes for the public outputs (the TLS 1.3
 * "iv", exporter values).  An unmarked derivation (QUIC's own, or any
 * other caller's) goes to the default provider's TLS13-KDF unchanged.
 *
 * Parameters are sticky, as in OpenSSL's KDFs: what set_ctx_params set
 * stays until reset.  Every parameter is also given to the default's
 * context, so that an unmarked derive sees exactly what it would without
 * this provider; a marked derive never shows it a token.
 *
 * TLS1-PRF (TLS 1.2, openssl-patch/patches/0004) works the same way: a
 * derivation marked with mpktls-out is one KS_OP_KDF over the secret and
 * the concatenated seeds (the master secret -> a SECRET token; the key
 * block, with its layout in mpktls-kb-mac/key/iv -> record-key tokens
 * and clear fixed IVs, in libssl's order; Finished and exporters ->
 * clear).  Seeds concatenate, as in OpenSSL's TLS1-PRF: every seed
 * parameter, in every call, is appended until reset.  The digest must be
 * SHA-256/384/512 (TLS 1.2): the MD5-SHA1 PRF of TLS 1.0/1.1 is refused
 * when marked.  Unmarked derivations go to the default TLS1-PRF.
 *
 * HKDF (libssl never fetches it; offered so that other callers can keep
 * an HKDF in T): a derivation marked with mpktls-out ("secret" or
 * "clear") and the key/salt token flags is one KS_OP_KDF with the key,
 * salt and the concatenated info; T gives a SECRET token whenever an
 * input is a token.  Unmarked ones go to the default HKDF.
 *
 * The markers are listed in each KDF's settable parameters (after the
 * default's own), so callers that check them, such as `openssl kdf
 * -kdfopt`, can pass them.
 */

#include "ksp_local.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KDF_IN_MAX      1024            /* as T's bound (ks_op_kdf.c) */
#define KDF_LABEL_MAX   255
#define KDF_DATA_MAX    1024
#define KDF_PREFIX_MAX  64
#define TLS13_PREFIX    "tls13 "

struct kdf_fns {
    OSSL_FUNC_kdf_newctx_fn                 *newctx;
    OSSL_FUNC_kdf_dupctx_fn                 *dupctx;
    OSSL_FUNC_kdf_freectx_fn                *freectx;
    OSSL_FUNC_kdf_reset_fn                  *reset;
    OSSL_FUNC_kdf_derive_fn                 *derive;
    OSSL_FUNC_kdf_set_ctx_params_fn         *set_ctx_params;
    OSSL_FUNC_kdf_get_ctx_params_fn         *get_ctx_params;
    OSSL_FUNC_kdf_settable_ctx_params_fn    *settable_ctx_params;
    OSSL_FUNC_kdf_gettable_ctx_params_fn    *gettable_ctx_params;
    OSSL_FUNC_kdf_get_params_fn             *get_params;
    OSSL_FUNC_kdf_gettable_params_fn        *gettable_params;
};

struct blob {
    unsigned char  *b;                  /* points into the context */
    size_t          len;
    int             set;
    int             big;                /* longer than we keep: not copied */
};

#define SETTABLE_MAX    32              /* the default's and our markers */

struct kdf_kind {
    struct ksp_fwd      fwd;
    uint32_t            kdf;            /* enum ks_kdf */
    int                 prf;            /* TLS1-PRF */
    /* the default's settable parameters and the markers (kind_settable) */
    const OSSL_PARAM   *settable_of;    /* the default's list it was made of */
    OSSL_PARAM         *settable;       /* SETTABLE_MAX entries */
};

static OSSL_PARAM settable_tls13[SETTABLE_MAX], settable_hkdf[SETTABLE_MAX],
                  settable_prf[SETTABLE_MAX];

static struct kdf_kind kind_tls13 = {
    { OSSL_OP_KDF, "TLS13-KDF", NULL, 0 }, KS_KDF_TLS13, 0, NULL,
    settable_tls13 };
static struct kdf_kind kind_hkdf = {
    { OSSL_OP_KDF, "HKDF", NULL, 0 }, KS_KDF_HKDF, 0, NULL, settable_hkdf };
static struct kdf_kind kind_prf = {
    { OSSL_OP_KDF, "TLS1-PRF", NULL, 0 }, KS_KDF_TLS1_PRF, 1, NULL,
    settable_prf };

struct kdf_ctx {
    struct ksp_provctx  *pc;
    struct kdf_kind     *kind;
    struct kdf_fns       fns;
    void                *inner;             /* the default's context */
    /* the parameters, as set so far */
    int                  mode;              /* -1: not set */
    uint32_t             md;
    unsigned char        keybuf[KDF_IN_MAX], saltbuf[KDF_IN_MAX];
    unsigned char        labelbuf[KDF_LABEL_MAX], databuf[KDF_DATA_MAX];
    unsigned char        prefixbuf[KDF_PREFIX_MAX];
    struct blob          key, salt, label, data, prefix;
    /* TLS1-PRF: key is the secret, data the concatenated seeds; HKDF:
     * label is the concatenated info */
    /* the markers */
    char                 out[16];           /* "" if absent */
    int                  key_token, salt_token;     /* -1 if absent */
    size_t               kb[3];             /* TLS1-PRF key-block layout */
    int                  kb_set[3];
};

static const char *const kb_markers[3] = {
    KSP_MARK_KB_MAC, KSP_MARK_KB_KEY, KSP_MARK_KB_IV
};

static void
kdf_clear(struct kdf_ctx *c)
{
    explicit_bzero(c->keybuf, sizeof(c->keybuf));
    explicit_bzero(c->saltbuf, sizeof(c->saltbuf));
    c->mode = -1;
    c->md = 0;
    c->key = (struct blob) { c->keybuf, 0, 0, 0 };
    c->salt = (struct blob) { c->saltbuf, 0, 0, 0 };
    c->label = (struct blob) { c->labelbuf, 0, 0, 0 };
    c->data = (struct blob) { c->databuf, 0, 0, 0 };
    c->prefix = (struct blob) { c->prefixbuf, 0, 0, 0 };
    c->out[0] = '\0';
    c->key_token = c->salt_token = -1;
    memset(c->kb, 0, sizeof(c->kb));
    memset(c->kb_set, 0, sizeof(c->kb_set));
}

static void
kdf_fns_load(struct kdf_fns *f, const OSSL_DISPATCH *d)
{
    f->newctx = (OSSL_FUNC_kdf_newctx_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_NEWCTX);
    f->dupctx = (OSSL_FUNC_kdf_dupctx_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_DUPCTX);
    f->freectx = (OSSL_FUNC_kdf_freectx_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_FREECTX);
    f->reset = (OSSL_FUNC_kdf_reset_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_RESET);
    f->derive = (OSSL_FUNC_kdf_derive_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_DERIVE);
    f->set_ctx_params = (OSSL_FUNC_kdf_set_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_SET_CTX_PARAMS);
    f->get_ctx_params = (OSSL_FUNC_kdf_get_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_GET_CTX_PARAMS);
    f->settable_ctx_params = (OSSL_FUNC_kdf_settable_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS);
    f->gettable_ctx_params = (OSSL_FUNC_kdf_gettable_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS);
    f->get_params = (OSSL_FUNC_kdf_get_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_GET_PARAMS);
    f->gettable_params = (OSSL_FUNC_kdf_gettable_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_GETTABLE_PARAMS);
}

static void *
kdf_newctx(struct ksp_provctx *pc, struct kdf_kind *kind)
{
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &kind->fwd);
    struct kdf_ctx *c;

    if (d == NULL || (c = calloc(1, sizeof(*c))) == NULL) {
        return NULL;
    }
    c->pc = pc;
    c->kind = kind;
    kdf_fns_load(&c->fns, d);
    kdf_clear(c);
    if (c->fns.newctx == NULL || c->fns.freectx == NULL || c->fns.derive == NULL
        || (c->inner = c->fns.newctx(pc->deflt.provctx)) == NULL)
    {
        free(c);
        return NULL;
    }
    return c;
}

static void
kdf_freectx(void *vctx)
{
    struct kdf_ctx *c = vctx;

    if (c == NULL) {
        return;
    }
    c->fns.freectx(c->inner);
    explicit_bzero(c, sizeof(*c));
    free(c);
}

static void *
kdf_dupctx(void *vctx)
{
    struct kdf_ctx *src = vctx, *c;

    if (src->fns.dupctx == NULL || (c = malloc(sizeof(*c))) == NULL) {
        return NULL;
    }
    *c = *src;
    /* the blobs point into their own context */
    c->key.b = c->keybuf;
    c->salt.b = c->saltbuf;
    c->label.b = c->labelbuf;
    c->data.b = c->databuf;
    c->prefix.b = c->prefixbuf;
    if ((c->inner = src->fns.dupctx(src->inner)) == NULL) {
        explicit_bzero(c, sizeof(*c));
        free(c);
        return NULL;
    }
    return c;
}

static void
kdf_reset(void *vctx)
{
    struct kdf_ctx *c = vctx;

    if (c->fns.reset != NULL) {
        c->fns.reset(c->inner);
    }
    kdf_clear(c);
}

/*
 * One octet-string parameter into a blob of at most max bytes; a longer
 * one is noted, not kept (an unmarked call may use it: the default gets
 * it; a marked one is refused).
 */
static int
take_blob(struct kdf_ctx *c, const OSSL_PARAM *p, struct blob *bl, size_t max)
{
    const void *d;
    size_t n;

    if (!ksp_param_get_octets(p, &d, &n)) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "%s", p->key);
        return 0;
    }
    bl->set = 1;
    bl->len = n;
    bl->big = n > max;
    if (!bl->big && n > 0) {
        memcpy(bl->b, d, n);
    }
    return 1;
}

/*
 * A TLS1-PRF seed: appended to the seeds so far, as OpenSSL's TLS1-PRF
 * does (empty ones are skipped there too).  Past the bound the seeds are
 * no longer kept (big), but counted.
 */
static int
add_seed(struct kdf_ctx *c, const OSSL_PARAM *p)
{
    const void *d;
    size_t n;

    if (p->data == NULL || p->data_size == 0) {
        return 1;
    }
    if (!ksp_param_get_octets(p, &d, &n)) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "%s", p->key);
        return 0;
    }
    c->data.set = 1;
    if (!c->data.big && n <= KDF_DATA_MAX - c->data.len) {
        memcpy(c->data.b + c->data.len, d, n);
    } else {
        c->data.big = 1;
    }
    c->data.len += n;
    return 1;
}

/*
 * An HKDF info parameter: the info parameters of one call concatenate and
 * replace those of earlier calls, as OpenSSL's HKDF does; first: the first
 * of this call.  Past the bound the info is counted, not kept (big).
 */
static int
add_info(struct kdf_ctx *c, const OSSL_PARAM *p, int first)
{
    const void *d;
    size_t n;

    if (!ksp_param_get_octets(p, &d, &n)) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "%s", p->key);
        return 0;
    }
    if (first) {
        c->label = (struct blob) { c->labelbuf, 0, 1, 0 };
    }
    if (!c->label.big && n <= KDF_LABEL_MAX - c->label.len) {
        if (n > 0) {
            memcpy(c->label.b + c->label.len, d, n);
        }
    } else {
        c->label.big = 1;
    }
    c->label.len += n;
    return 1;
}

/*
 * A marker (or any other parameter: 1, nothing to keep).  TLS13-KDF and
 * HKDF take mpktls-out and the token flags; TLS1-PRF mpktls-out, the
 * key-token flag and the key-block layout.
 */
static int
kdf_parse_marker(struct kdf_ctx *c, const OSSL_PARAM *p)
{
    const char *s;
    int v, i;

    if (strncmp(p->key, "mpktls-", 7) != 0) {
        return 1;                       /* not a marker: not ours to keep */
    }
    if (strcmp(p->key, KSP_MARK_OUT) == 0) {
        if (!ksp_param_get_utf8(p, &s) || strlen(s) >= sizeof(c->out)) {
            KSP_ERR(c->pc, KSP_R_BAD_MARKER, "%s", p->key);
            return 0;
        }
        strcpy(c->out, s);
        return 1;
    }
    if (strcmp(p->key, KSP_MARK_KEY_TOKEN) == 0
        || (!c->kind->prf && strcmp(p->key, KSP_MARK_SALT_TOKEN) == 0))
    {
        if (!ksp_param_get_int(p, &v) || (v != 0 && v != 1)) {
            KSP_ERR(c->pc, KSP_R_BAD_MARKER, "%s", p->key);
            return 0;
        }
        if (strcmp(p->key, KSP_MARK_KEY_TOKEN) == 0) {
            c->key_token = v;
        } else {
            c->salt_token = v;
        }
        return 1;
    }
    for (i = 0; c->kind->prf && i < 3; i++) {
        if (strcmp(p->key, kb_markers[i]) == 0) {
            if (!ksp_param_get_size_t(p, &c->kb[i]) || c->kb[i] > 64) {
                KSP_ERR(c->pc, KSP_R_BAD_MARKER, "%s", p->key);
                return 0;
            }
            c->kb_set[i] = 1;
            return 1;
        }
    }
    /* a marker this KDF never gets (a key-block layout on TLS13-KDF...) */
    KSP_ERR(c->pc, KSP_R_BAD_MARKER, "%s on %s", p->key, c->kind->fwd.name);
    return 0;
}

/* Our copy of the parameters that matter for a marked derivation. */
static int
kdf_parse(struct kdf_ctx *c, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p;
    const char *s;
    int infos = 0;

    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strcmp(p->key, OSSL_KDF_PARAM_MODE) == 0) {
            if (p->data_type == OSSL_PARAM_UTF8_STRING) {
                if (!ksp_param_get_utf8(p, &s)) {
                    return 0;
                }
                c->mode = strcasecmp(s, "EXTRACT_ONLY") == 0 ? 1
                          : strcasecmp(s, "EXPAND_ONLY") == 0 ? 2
                          : strcasecmp(s, "EXTRACT_AND_EXPAND") == 0 ? 0 : -2;
            } else if (!ksp_param_get_int(p, &c->mode)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_DIGEST) == 0) {
            if (!ksp_param_get_utf8(p, &s)) {
                return 0;
            }
            c->md = ksp_md_from_name(s);    /* 0: not one T serves */
        } else if (c->kind->prf) {
            if (strcmp(p->key, OSSL_KDF_PARAM_SECRET) == 0) {
                if (!take_blob(c, p, &c->key, KDF_IN_MAX)) {
                    return 0;
                }
            } else if (strcmp(p->key, OSSL_KDF_PARAM_SEED) == 0) {
                if (!add_seed(c, p)) {
                    return 0;
                }
            } else if (!kdf_parse_marker(c, p)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_KEY) == 0) {
            if (!take_blob(c, p, &c->key, KDF_IN_MAX)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_SALT) == 0) {
            if (!take_blob(c, p, &c->salt, KDF_IN_MAX)) {
                return 0;
            }
        } else if (c->kind->kdf == KS_KDF_HKDF
                   && strcmp(p->key, OSSL_KDF_PARAM_INFO) == 0) {
            if (!add_info(c, p, infos++ == 0)) {
                return 0;
            }
        } else if (c->kind->kdf == KS_KDF_HKDF) {
            if (!kdf_parse_marker(c, p)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_LABEL) == 0) {
            if (!take_blob(c, p, &c->label, KDF_LABEL_MAX)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_DATA) == 0) {
            if (!take_blob(c, p, &c->data, KDF_DATA_MAX)) {
                return 0;
            }
        } else if (strcmp(p->key, OSSL_KDF_PARAM_PREFIX) == 0) {
            if (!take_blob(c, p, &c->prefix, KDF_PREFIX_MAX)) {
                return 0;
            }
        } else if (!kdf_parse_marker(c, p)) {
            return 0;
        }
    }
    return 1;
}

static uint32_t
out_class(const char *s)
{
    if (strcmp(s, KSP_OUT_SECRET) == 0) {
        return KS_OUT_SECRET;
    }
    if (strcmp(s, KSP_OUT_RECORD_KEY) == 0) {
        return KS_OUT_RECORD_KEY;
    }
    if (strcmp(s, KSP_OUT_MAC_KEY) == 0) {
        return KS_OUT_MAC_KEY;
    }
    if (strcmp(s, KSP_OUT_CLEAR) == 0) {
        return KS_OUT_CLEAR;
    }
    if (strcmp(s, KSP_OUT_KEYBLOCK) == 0) {
        return KS_OUT_KEYBLOCK;
    }
    return 0;
}

/* KS_OP_KDF of TLS13-KDF or HKDF with the context's inputs (HKDF: the
 * label is the info, there is no data): one crossing. */
static int
kdf_cross(struct kdf_ctx *c, uint32_t kdf, int mode, uint32_t cls,
    unsigned char *out, size_t outlen)
{
    struct ks_args_kdf a;

    memset(&a, 0, sizeof(a));
    a.kdf = kdf;
    a.md = c->md;
    a.mode = (uint32_t) mode;
    a.key_is_token = c->key_token == 1;
    a.salt_is_token = c->salt_token == 1;
    a.out_class = cls;
    a.key = c->key.b;
    a.keylen = c->key.set ? c->key.len : 0;
    a.salt = c->salt.b;
    a.saltlen = c->salt.set ? c->salt.len : 0;
    a.label = c->label.b;
    a.labellen = c->label.set ? c->label.len : 0;
    a.data = c->data.b;
    a.datalen = c->data.set ? c->data.len : 0;
    a.out = out;
    a.outlen = outlen;
    return ksp_gate(c->pc, KS_OP_KDF, &a,
                    kdf == KS_KDF_HKDF ? "HKDF" : "TLS13-KDF") == 0;
}

/* A marked TLS13-KDF derivation: one crossing. */
static int
tls13_derive_marked(struct kdf_ctx *c, unsigned char *out, size_t outlen)
{
    uint32_t cls = out_class(c->out);

    if (cls == 0 || cls == KS_OUT_KEYBLOCK) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "mpktls-out \"%s\" on TLS13-KDF",
                c->out);
        return 0;
    }
    if (c->md == 0 || (c->mode != KS_KDF_EXTRACT_ONLY
                       && c->mode != KS_KDF_EXPAND_ONLY))
    {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "digest or mode");
        return 0;
    }
    if (c->key.big || c->salt.big || c->label.big || c->data.big
        || c->prefix.big)
    {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "input too long for the keystore");
        return 0;
    }
    /* T always uses libssl's prefix: refuse any other, never ignore it */
    if (!c->prefix.set || c->prefix.len != strlen(TLS13_PREFIX)
        || memcmp(c->prefix.b, TLS13_PREFIX, c->prefix.len) != 0)
    {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "prefix other than \"tls13 \"");
        return 0;
    }
    return kdf_cross(c, KS_KDF_TLS13, c->mode, cls, out, outlen);
}

/* A marked HKDF derivation: one crossing.  T makes the output a SECRET
 * token whenever an input is a token; only raw inputs can give clear. */
static int
hkdf_derive_marked(struct kdf_ctx *c, unsigned char *out, size_t outlen)
{
    uint32_t cls = out_class(c->out);
    int mode = c->mode == -1 ? KS_KDF_EXTRACT_AND_EXPAND : c->mode;

    if (cls != KS_OUT_SECRET && cls != KS_OUT_CLEAR) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "mpktls-out \"%s\" on HKDF", c->out);
        return 0;
    }
    if (c->md == 0 || mode < KS_KDF_EXTRACT_AND_EXPAND
        || mode > KS_KDF_EXPAND_ONLY)
    {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "digest or mode");
        return 0;
    }
    if (c->key.big || c->salt.big || c->label.big) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "input too long for the keystore");
        return 0;
    }
    return kdf_cross(c, KS_KDF_HKDF, mode, cls, out, outlen);
}

/* A marked TLS1-PRF derivation: one crossing. */
static int
prf_derive_marked(struct kdf_ctx *c, unsigned char *out, size_t outlen)
{
    struct ks_args_kdf a;
    uint32_t cls = out_class(c->out);
    int kb = cls == KS_OUT_KEYBLOCK;

    if (cls == 0 || cls == KS_OUT_RECORD_KEY || cls == KS_OUT_MAC_KEY) {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "mpktls-out \"%s\" on TLS1-PRF",
                c->out);
        return 0;
    }
    /* the layout comes with the key block, and only with it */
    if ((kb && !(c->kb_set[0] && c->kb_set[1] && c->kb_set[2]))
        || (!kb && (c->kb_set[0] || c->kb_set[1] || c->kb_set[2])))
    {
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "key-block layout");
        return 0;
    }
    if (c->md == 0) {
        /* MD5-SHA1 (TLS 1.0/1.1) or another digest T does not serve */
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "PRF digest");
        return 0;
    }
    if (c->key.big || c->data.big || !c->key.set || c->key.len == 0) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "secret missing or input too long "
                "for the keystore");
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.kdf = KS_KDF_TLS1_PRF;
    a.md = c->md;
    a.mode = 0;
    a.key_is_token = c->key_token == 1;
    a.out_class = cls;
    a.key = c->key.b;
    a.keylen = c->key.len;
    a.data = c->data.b;
    a.datalen = c->data.len;
    if (kb) {
        a.kb_mac_len = (uint32_t) c->kb[0];
        a.kb_key_len = (uint32_t) c->kb[1];
        a.kb_iv_len = (uint32_t) c->kb[2];
    }
    a.out = out;
    a.outlen = outlen;
    return ksp_gate(c->pc, KS_OP_KDF, &a, "TLS1-PRF") == 0;
}

static int
kdf_derive(void *vctx, unsigned char *out, size_t outlen,
    const OSSL_PARAM params[])
{
    struct kdf_ctx *c = vctx;

    if (!kdf_parse(c, params)) {
        return 0;
    }
    if (c->out[0] != '\0') {
        switch (c->kind->kdf) {
        case KS_KDF_TLS1_PRF:
            return prf_derive_marked(c, out, outlen);
        case KS_KDF_HKDF:
            return hkdf_derive_marked(c, out, outlen);
        default:
            return tls13_derive_marked(c, out, outlen);
        }
    }
    if (c->key_token == 1 || c->salt_token == 1) {
        /* a token input but no output class: nothing sensible to do */
        KSP_ERR(c->pc, KSP_R_BAD_MARKER, "token input without mpktls-out");
        return 0;
    }
    /* ordinary raw-key crypto: the default's KDF, same params */
    return c->fns.derive(c->inner, out, outlen, params);
}

static int
kdf_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct kdf_ctx *c = vctx;

    if (!kdf_parse(c, params)) {
        return 0;
    }
    return c->fns.set_ctx_params == NULL
           || c->fns.set_ctx_params(c->inner, params);
}

static int
kdf_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    struct kdf_ctx *c = vctx;

    return c->fns.get_ctx_params != NULL
           && c->fns.get_ctx_params(c->inner, params);
}

/* The markers a kind takes, as settable parameters (types as passed) */
static const OSSL_PARAM marker_params[] = {
    { KSP_MARK_OUT, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { KSP_MARK_KEY_TOKEN, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { KSP_MARK_SALT_TOKEN, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { KSP_MARK_KB_MAC, OSSL_PARAM_UNSIGNED_INTEGER, NULL, sizeof(size_t), 0 },
    { KSP_MARK_KB_KEY, OSSL_PARAM_UNSIGNED_INTEGER, NULL, sizeof(size_t), 0 },
    { KSP_MARK_KB_IV, OSSL_PARAM_UNSIGNED_INTEGER, NULL, sizeof(size_t), 0 },
};

static int
kind_takes(const struct kdf_kind *kind, const char *marker)
{
    if (strcmp(marker, KSP_MARK_SALT_TOKEN) == 0) {
        return !kind->prf;
    }
    return kind->prf || strncmp(marker, "mpktls-kb-", 10) != 0;
}

/*
 * The default's settable parameters followed by our markers, made once
 * (the default's list is static); the default's alone if it is too long.
 */
static const OSSL_PARAM *
kind_settable(struct kdf_kind *kind, const OSSL_PARAM *deflt)
{
    size_t n = 0, i;

    if (deflt == NULL || kind->settable_of == deflt) {
        return deflt == NULL ? NULL : kind->settable;
    }
    while (deflt[n].key != NULL) {
        n++;
    }
    if (n + sizeof(marker_params) / sizeof(marker_params[0]) >= SETTABLE_MAX) {
        return deflt;
    }
    memcpy(kind->settable, deflt, n * sizeof(*deflt));
    for (i = 0; i < sizeof(marker_params) / sizeof(marker_params[0]); i++) {
        if (kind_takes(kind, marker_params[i].key)) {
            kind->settable[n++] = marker_params[i];
        }
    }
    kind->settable[n] = (OSSL_PARAM) { NULL, 0, NULL, 0, 0 };
    kind->settable_of = deflt;
    return kind->settable;
}

static const OSSL_PARAM *
kind_settable_ctx_params(void *vctx, void *provctx, struct kdf_kind *kind)
{
    struct ksp_provctx *pc = provctx;
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &kind->fwd);
    OSSL_FUNC_kdf_settable_ctx_params_fn *fn = (OSSL_FUNC_kdf_settable_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS);
    struct kdf_ctx *c = vctx;

    return fn == NULL ? NULL
           : kind_settable(kind, fn(c != NULL ? c->inner : NULL,
                                    pc->deflt.provctx));
}

static const OSSL_PARAM *
kind_gettable_ctx_params(void *vctx, void *provctx, struct kdf_kind *kind)
{
    struct ksp_provctx *pc = provctx;
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, &kind->fwd);
    OSSL_FUNC_kdf_gettable_ctx_params_fn *fn = (OSSL_FUNC_kdf_gettable_ctx_params_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS);
    struct kdf_ctx *c = vctx;

    return fn == NULL ? NULL : fn(c != NULL ? c->inner : NULL, pc->deflt.provctx);
}

#define KDF_FNS(tag, kind)                                                  \
static void *tag##_newctx(void *provctx)                                    \
{ return kdf_newctx(provctx, &kind); }                                      \
static const OSSL_PARAM *tag##_settable_ctx_params(void *c, void *provctx)  \
{ return kind_settable_ctx_params(c, provctx, &kind); }                     \
static const OSSL_PARAM *tag##_gettable_ctx_params(void *c, void *provctx)  \
{ return kind_gettable_ctx_params(c, provctx, &kind); }                     \
static const OSSL_DISPATCH tag##_kdf_functions[] = {                        \
    { OSSL_FUNC_KDF_NEWCTX, (ksp_fn) tag##_newctx },                        \
    { OSSL_FUNC_KDF_DUPCTX, (ksp_fn) kdf_dupctx },                          \
    { OSSL_FUNC_KDF_FREECTX, (ksp_fn) kdf_freectx },                        \
    { OSSL_FUNC_KDF_RESET, (ksp_fn) kdf_reset },                            \
    { OSSL_FUNC_KDF_DERIVE, (ksp_fn) kdf_derive },                          \
    { OSSL_FUNC_KDF_SET_CTX_PARAMS, (ksp_fn) kdf_set_ctx_params },          \
    { OSSL_FUNC_KDF_GET_CTX_PARAMS, (ksp_fn) kdf_get_ctx_params },          \
    { OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS,                                    \
      (ksp_fn) tag##_settable_ctx_params },                                 \
    { OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS,                                    \
      (ksp_fn) tag##_gettable_ctx_params },                                 \
    OSSL_DISPATCH_END                                                       \
};

KDF_FNS(tls13, kind_tls13)
KDF_FNS(hkdf, kind_hkdf)
KDF_FNS(prf, kind_prf)

const OSSL_ALGORITHM ksp_kdfs[] = {
    { "TLS13-KDF", KSP_PROPS, tls13_kdf_functions,
      "TLS 1.3 KDF over sealed tokens (mpk-tls keystore)" },
    { "HKDF", KSP_PROPS, hkdf_kdf_functions,
      "HKDF over sealed tokens (mpk-tls keystore)" },
    { "TLS1-PRF", KSP_PROPS, prf_kdf_functions,
      "TLS 1.2 PRF over sealed tokens, key blocks (mpk-tls keystore)" },
    { NULL, NULL, NULL, NULL }
};
