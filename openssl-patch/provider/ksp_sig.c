/*
 * Long-term signing keys of the keystore provider (U): the "keystore:"
 * OSSL_STORE loader, key management for RSA and Ed25519 keys held in T,
 * and the signatures ECDSA, RSA (PKCS#1 v1.5, PSS) and Ed25519.
 *
 * OSSL_STORE_open("keystore:/path/key.pem") makes T read and decode the
 * PEM file itself (KS_OP_PKEY_LOAD): the private key never exists in U.
 * U gets a KS_HT_PKEY handle and the SubjectPublicKeyInfo, which it parses
 * here (a few DER tags, no libcrypto) into a key of ours:
 *   EC (P-256, P-384)  ksp_kex.c's EC key, with the handle as its private
 *                      half (T refuses it for ECDH);
 *   RSA, Ed25519       a key of this file: the public part is an "inner"
 *                      key of the default provider (imported from n, e /
 *                      the raw key), which answers bits, security bits,
 *                      max size, default digest, export (public only) and
 *                      match; the private part is the handle.
 * Signing (EVP_DigestSign*, as libssl does) buffers the message in U (it
 * is public) and is one KS_OP_SIGN: T hashes and signs.  Verification
 * with any key (EVP offers public keys of the default provider to our key
 * management first) is forwarded to the default provider's signature with
 * a default key of the same public key.
 */

#include "ksp_local.h"

#include <openssl/core_object.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPKI_MAX    2600            /* RSA-16384's SPKI is about 2.1 KB */
#define RSA_N_MAX   2048

#define RSA_PKCS1_PADDING_NUM      1        /* rsa.h's RSA_PKCS1_PADDING */
#define RSA_PKCS1_PSS_PADDING_NUM  6
#define RSA_PSS_SALTLEN_DIGEST_NUM (-1)

enum skind {
    SK_RSA = 1,
    SK_EC,
    SK_ED25519,
};

/* ---- the default provider's algorithms ---------------------------------- */

static struct ksp_fwd fwd_km_rsa = { OSSL_OP_KEYMGMT, "RSA", NULL, 0 };
static struct ksp_fwd fwd_km_ec = { OSSL_OP_KEYMGMT, "EC", NULL, 0 };
static struct ksp_fwd fwd_km_ed = { OSSL_OP_KEYMGMT, "ED25519", NULL, 0 };
static struct ksp_fwd fwd_sig_rsa = { OSSL_OP_SIGNATURE, "RSA", NULL, 0 };
static struct ksp_fwd fwd_sig_ec = { OSSL_OP_SIGNATURE, "ECDSA", NULL, 0 };
static struct ksp_fwd fwd_sig_ed = { OSSL_OP_SIGNATURE, "ED25519", NULL, 0 };

static struct ksp_fwd *
fwd_km(enum skind kind)
{
    return kind == SK_RSA ? &fwd_km_rsa
           : kind == SK_EC ? &fwd_km_ec : &fwd_km_ed;
}

static struct ksp_fwd *
fwd_sig(enum skind kind)
{
    return kind == SK_RSA ? &fwd_sig_rsa
           : kind == SK_EC ? &fwd_sig_ec : &fwd_sig_ed;
}

#define DFN(d, id, type) ((type) ksp_dispatch_fn((d), (id)))

/* ---- RSA and Ed25519 keys ------------------------------------------------ */

struct thandle {
    int                  refs;
    uint64_t             handle;            /* KS_HT_PKEY */
    struct ksp_provctx  *pc;
};

struct skey {
    int                  refs;
    struct ksp_provctx  *pc;
    enum skind           kind;
    const OSSL_DISPATCH *dkm;               /* the default's key management */
    void                *inner;             /* its key: the public part */
    struct thandle      *priv;              /* NULL: public only */
};

static void
thandle_free(struct thandle *t)
{
    if (t != NULL && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        ksp_free_handle(t->pc, t->handle);
        free(t);
    }
}

static struct skey *
skey_new(struct ksp_provctx *pc, enum skind kind)
{
    struct skey *k = calloc(1, sizeof(*k));

    if (k == NULL) {
        return NULL;
    }
    k->refs = 1;
    k->pc = pc;
    k->kind = kind;
    k->dkm = ksp_fwd_impl(pc, fwd_km(kind));
    if (k->dkm == NULL) {
        free(k);
        return NULL;
    }
    return k;
}

static void
skey_free(void *vkey)
{
    struct skey *k = vkey;

    if (k != NULL && __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        if (k->inner != NULL) {
            DFN(k->dkm, OSSL_FUNC_KEYMGMT_FREE, OSSL_FUNC_keymgmt_free_fn *)
                (k->inner);
        }
        thandle_free(k->priv);
        free(k);
    }
}

static void *rsa_new(void *provctx) { return skey_new(provctx, SK_RSA); }
static void *ed_new(void *provctx) { return skey_new(provctx, SK_ED25519); }

static int
skey_has(const void *vkey, int selection)
{
    const struct skey *k = vkey;
    int ok = k != NULL;

    if (ok && (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
        ok = k->inner != NULL;
    }
    if (ok && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
        ok = k->priv != NULL;
    }
    return ok;
}

static int
skey_validate(const void *vkey, int selection, int checktype)
{
    (void) checktype;
    return skey_has(vkey, selection);
}

/* public selections only: the inner key has no private part */
static int
pub_selection(int selection)
{
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0) {
        selection |= OSSL_KEYMGMT_SELECT_PUBLIC_KEY;
    }
    return selection & ~OSSL_KEYMGMT_SELECT_PRIVATE_KEY;
}

static int
skey_match(const void *v1, const void *v2, int selection)
{
    const struct skey *a = v1, *b = v2;

    if (a->kind != b->kind) {
        return 0;
    }
    if (a->inner == NULL || b->inner == NULL) {
        /* no public keys: only the same key in T matches */
        return a->priv != NULL && a->priv == b->priv;
    }
    return DFN(a->dkm, OSSL_FUNC_KEYMGMT_MATCH, OSSL_FUNC_keymgmt_match_fn *)
        (a->inner, b->inner, pub_selection(selection));
}

static int
skey_set_inner(struct skey *k, int selection, const OSSL_PARAM params[])
{
    OSSL_FUNC_keymgmt_new_fn *nw = DFN(k->dkm, OSSL_FUNC_KEYMGMT_NEW,
                                       OSSL_FUNC_keymgmt_new_fn *);
    OSSL_FUNC_keymgmt_import_fn *im = DFN(k->dkm, OSSL_FUNC_KEYMGMT_IMPORT,
                                          OSSL_FUNC_keymgmt_import_fn *);
    void *inner;

    if (k->inner != NULL) {
        KSP_ERR(k->pc, KSP_R_NOT_SUPPORTED, "keys cannot be changed");
        return 0;
    }
    if (nw == NULL || im == NULL) {
        return 0;
    }
    inner = nw(k->pc->deflt.provctx);
    if (inner == NULL || !im(inner, pub_selection(selection), params)) {
        if (inner != NULL) {
            DFN(k->dkm, OSSL_FUNC_KEYMGMT_FREE, OSSL_FUNC_keymgmt_free_fn *)
                (inner);
        }
        return 0;
    }
    k->inner = inner;
    return 1;
}

/* Public keys only: a private key given here would be a key in U. */
static int
skey_import(void *vkey, int selection, const OSSL_PARAM params[])
{
    struct skey *k = vkey;

    if (ksp_param_find(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL
        || ksp_param_find(params, OSSL_PKEY_PARAM_RSA_D) != NULL)
    {
        if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
            KSP_ERR(k->pc, KSP_R_PRIVATE_KEY, "cannot import a private %s key",
                    k->kind == SK_RSA ? "RSA" : "Ed25519");
            return 0;
        }
    }
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0) {
        return 1;
    }
    return skey_set_inner(k, selection, params);
}

static int
skey_export(void *vkey, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    struct skey *k = vkey;

    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0
        && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
    {
        KSP_ERR(k->pc, KSP_R_PRIVATE_KEY, "private keys stay in T");
        return 0;
    }
    if (k->inner == NULL) {
        return 0;
    }
    return DFN(k->dkm, OSSL_FUNC_KEYMGMT_EXPORT, OSSL_FUNC_keymgmt_export_fn *)
        (k->inner, pub_selection(selection), cb, cbarg);
}

#define IMEXPORT_TYPES(tag, kind, id, fn_t)                                 \
static const OSSL_PARAM *tag(int selection)                                 \
{                                                                           \
    static const OSSL_PARAM none[] = { OSSL_PARAM_END };                    \
    const OSSL_DISPATCH *d = fwd_km(kind)->impl;                            \
    fn_t *f = d != NULL ? DFN(d, id, fn_t *) : NULL;                        \
                                                                            \
    return f != NULL ? f(pub_selection(selection)) : none;                  \
}
IMEXPORT_TYPES(rsa_import_types, SK_RSA, OSSL_FUNC_KEYMGMT_IMPORT_TYPES,
               OSSL_FUNC_keymgmt_import_types_fn)
IMEXPORT_TYPES(rsa_export_types, SK_RSA, OSSL_FUNC_KEYMGMT_EXPORT_TYPES,
               OSSL_FUNC_keymgmt_export_types_fn)
IMEXPORT_TYPES(ed_import_types, SK_ED25519, OSSL_FUNC_KEYMGMT_IMPORT_TYPES,
               OSSL_FUNC_keymgmt_import_types_fn)
IMEXPORT_TYPES(ed_export_types, SK_ED25519, OSSL_FUNC_KEYMGMT_EXPORT_TYPES,
               OSSL_FUNC_keymgmt_export_types_fn)

/* bits, security bits, max size, default digest...: the default's values
 * of the same public key; private parameters are never answered */
static int
skey_get_params(void *vkey, OSSL_PARAM params[])
{
    struct skey *k = vkey;

    if (k->inner == NULL) {
        return 1;
    }
    return DFN(k->dkm, OSSL_FUNC_KEYMGMT_GET_PARAMS,
               OSSL_FUNC_keymgmt_get_params_fn *)(k->inner, params);
}

static const OSSL_PARAM *
skey_gettable(struct ksp_provctx *pc, enum skind kind)
{
    static const OSSL_PARAM none[] = { OSSL_PARAM_END };
    const OSSL_DISPATCH *d = ksp_fwd_impl(pc, fwd_km(kind));
    OSSL_FUNC_keymgmt_gettable_params_fn *f = d == NULL ? NULL
        : DFN(d, OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS,
              OSSL_FUNC_keymgmt_gettable_params_fn *);

    return f != NULL ? f(pc->deflt.provctx) : none;
}

static const OSSL_PARAM *
rsa_gettable(void *provctx) { return skey_gettable(provctx, SK_RSA); }
static const OSSL_PARAM *
ed_gettable(void *provctx) { return skey_gettable(provctx, SK_ED25519); }

static void *
skey_dup(const void *vsrc, int selection)
{
    const struct skey *src = vsrc;
    struct skey *k = skey_new(src->pc, src->kind);

    if (k == NULL) {
        return NULL;
    }
    if (src->inner != NULL) {
        k->inner = DFN(src->dkm, OSSL_FUNC_KEYMGMT_DUP,
                       OSSL_FUNC_keymgmt_dup_fn *)
            (src->inner, pub_selection(selection | OSSL_KEYMGMT_SELECT_ALL));
        if (k->inner == NULL) {
            skey_free(k);
            return NULL;
        }
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && src->priv != NULL) {
        __atomic_add_fetch(&src->priv->refs, 1, __ATOMIC_ACQ_REL);
        k->priv = src->priv;        /* the same key in T */
    }
    return k;
}

static const char *
rsa_query_operation_name(int op)
{
    return op == OSSL_OP_SIGNATURE ? "RSA" : NULL;
}

static const char *
ed_query_operation_name(int op)
{
    return op == OSSL_OP_SIGNATURE ? "ED25519" : NULL;
}

/* The store's reference: a pointer to a key, taken over. */
static void *
skey_load(const void *reference, size_t reference_sz)
{
    struct skey *k;

    if (reference == NULL || reference_sz != sizeof(k)) {
        return NULL;
    }
    k = *(struct skey **) reference;
    *(struct skey **) reference = NULL;
    return k;
}

#define SKEY_KEYMGMT(tag, newfn, imt, ext, gettable, qname)                 \
const OSSL_DISPATCH tag[] = {                                               \
    { OSSL_FUNC_KEYMGMT_NEW, (ksp_fn) newfn },                              \
    { OSSL_FUNC_KEYMGMT_FREE, (ksp_fn) skey_free },                         \
    { OSSL_FUNC_KEYMGMT_GET_PARAMS, (ksp_fn) skey_get_params },             \
    { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (ksp_fn) gettable },               \
    { OSSL_FUNC_KEYMGMT_HAS, (ksp_fn) skey_has },                           \
    { OSSL_FUNC_KEYMGMT_MATCH, (ksp_fn) skey_match },                       \
    { OSSL_FUNC_KEYMGMT_VALIDATE, (ksp_fn) skey_validate },                 \
    { OSSL_FUNC_KEYMGMT_IMPORT, (ksp_fn) skey_import },                     \
    { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (ksp_fn) imt },                       \
    { OSSL_FUNC_KEYMGMT_EXPORT, (ksp_fn) skey_export },                     \
    { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (ksp_fn) ext },                       \
    { OSSL_FUNC_KEYMGMT_DUP, (ksp_fn) skey_dup },                           \
    { OSSL_FUNC_KEYMGMT_LOAD, (ksp_fn) skey_load },                         \
    { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (ksp_fn) qname },             \
    OSSL_DISPATCH_END                                                       \
};
SKEY_KEYMGMT(ksp_rsa_keymgmt_functions, rsa_new, rsa_import_types,
             rsa_export_types, rsa_gettable, rsa_query_operation_name)
SKEY_KEYMGMT(ksp_ed25519_keymgmt_functions, ed_new, ed_import_types,
             ed_export_types, ed_gettable, ed_query_operation_name)

/* ---- SubjectPublicKeyInfo, as T returns it ------------------------------- */

static int
der_get(const unsigned char **p, const unsigned char *end, unsigned tag,
    const unsigned char **c, size_t *n)
{
    const unsigned char *q = *p;
    size_t len, k;

    if (end - q < 2 || q[0] != tag) {
        return 0;
    }
    len = q[1];
    q += 2;
    if ((len & 0x80) != 0) {
        k = len & 0x7f;
        if (k == 0 || k > 3 || (size_t) (end - q) < k) {
            return 0;
        }
        for (len = 0; k > 0; k--) {
            len = (len << 8) | *q++;
        }
    }
    if ((size_t) (end - q) < len) {
        return 0;
    }
    *c = q;
    *n = len;
    *p = q + len;
    return 1;
}

static const unsigned char oid_ec[] = {
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char oid_p256[] = {
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const unsigned char oid_p384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const unsigned char oid_rsa[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const unsigned char oid_ed25519[] = { 0x2b, 0x65, 0x70 };

#define OID_IS(c, n, oid) ((n) == sizeof(oid) && memcmp((c), (oid), (n)) == 0)

/* big-endian DER INTEGER content -> native (little-endian) unsigned bytes */
static size_t
int_to_native(const unsigned char *c, size_t n, unsigned char *out, size_t max)
{
    size_t i;

    while (n > 0 && c[0] == 0) {
        c++;
        n--;
    }
    if (n == 0 || n > max) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        out[i] = c[n - 1 - i];
    }
    return n;
}

/*
 * A key of ours from the SPKI and the handle (taken over: freed on
 * failure); *type is its key management's name.
 */
static void *
key_from_spki(struct ksp_provctx *pc, const unsigned char *der, size_t len,
    uint64_t handle, const char **type)
{
    const unsigned char *p = der, *end = der + len, *spki, *alg, *oid,
                        *par = NULL, *bits, *q, *rk, *n, *e;
    size_t spkil, algl, oidl, parl = 0, bitsl, rkl, nl, el;
    struct skey *k = NULL;
    unsigned char *nb = NULL, eb[16];
    size_t nbl, ebl;

    if (!der_get(&p, end, 0x30, &spki, &spkil)) {
        goto bad;
    }
    p = spki;
    end = spki + spkil;
    if (!der_get(&p, end, 0x30, &alg, &algl)
        || !der_get(&p, end, 0x03, &bits, &bitsl) || bitsl < 2
        || bits[0] != 0)
    {
        goto bad;
    }
    q = alg;
    if (!der_get(&q, alg + algl, 0x06, &oid, &oidl)) {
        goto bad;
    }
    if (q < alg + algl && q[0] == 0x06
        && !der_get(&q, alg + algl, 0x06, &par, &parl))
    {
        goto bad;
    }
    bits++;
    bitsl--;
    if (OID_IS(oid, oidl, oid_ec) && par != NULL) {
        const char *group = OID_IS(par, parl, oid_p256) ? "prime256v1"
                            : OID_IS(par, parl, oid_p384) ? "secp384r1" : NULL;

        if (group == NULL) {
            goto bad;
        }
        *type = "EC";
        return ksp_ec_key_new_signing(pc, group, bits, bitsl, handle);
    }
    if (OID_IS(oid, oidl, oid_ed25519) && bitsl == 32) {
        OSSL_PARAM params[] = {
            { OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING,
              (void *) bits, bitsl, 0 },
            OSSL_PARAM_END
        };

        *type = "ED25519";
        k = skey_new(pc, SK_ED25519);
        if (k == NULL || !skey_set_inner(k, OSSL_KEYMGMT_SELECT_PUBLIC_KEY,
                                         params))
        {
            goto fail;
        }
    } else if (OID_IS(oid, oidl, oid_rsa)) {
        q = bits;
        if (!der_get(&q, bits + bitsl, 0x30, &rk, &rkl)) {
            goto bad;
        }
        q = rk;
        if (!der_get(&q, rk + rkl, 0x02, &n, &nl)
            || !der_get(&q, rk + rkl, 0x02, &e, &el))
        {
            goto bad;
        }
        nb = malloc(RSA_N_MAX);
        if (nb == NULL) {
            goto fail;
        }
        nbl = int_to_native(n, nl, nb, RSA_N_MAX);
        ebl = int_to_native(e, el, eb, sizeof(eb));
        if (nbl == 0 || ebl == 0) {
            goto bad;
        }
        {
            OSSL_PARAM params[] = {
                { OSSL_PKEY_PARAM_RSA_N, OSSL_PARAM_UNSIGNED_INTEGER, nb, nbl,
                  0 },
                { OSSL_PKEY_PARAM_RSA_E, OSSL_PARAM_UNSIGNED_INTEGER, eb, ebl,
                  0 },
                OSSL_PARAM_END
            };

            *type = "RSA";
            k = skey_new(pc, SK_RSA);
            if (k == NULL || !skey_set_inner(k, OSSL_KEYMGMT_SELECT_PUBLIC_KEY,
                                             params))
            {
                goto fail;
            }
        }
        free(nb);
        nb = NULL;
    } else {
        goto bad;
    }
    k->priv = calloc(1, sizeof(*k->priv));
    if (k->priv == NULL) {
        goto fail;
    }
    k->priv->refs = 1;
    k->priv->pc = pc;
    k->priv->handle = handle;
    return k;
bad:
    KSP_ERR(pc, KSP_R_NOT_SUPPORTED, "a public key the keystore cannot use");
fail:
    free(nb);
    skey_free(k);
    ksp_free_handle(pc, handle);
    return NULL;
}

/* ---- the "keystore:" store ---------------------------------------------- */

#define STORE_SCHEME "keystore:"

struct store_ctx {
    struct ksp_provctx  *pc;
    char                *path;
    int                  done;
};

static void *
store_open(void *provctx, const char *uri)
{
    struct ksp_provctx *pc = provctx;
    struct store_ctx *sc;
    const char *path;

    if (uri == NULL
        || strncasecmp(uri, STORE_SCHEME, sizeof(STORE_SCHEME) - 1) != 0)
    {
        return NULL;
    }
    path = uri + sizeof(STORE_SCHEME) - 1;
    if (strncmp(path, "//", 2) == 0 && path[2] == '/') {
        path += 2;                  /* keystore:///abs/path */
    }
    if (path[0] == '\0') {
        KSP_ERR(pc, KSP_R_BAD_PARAM, "keystore: URI without a file name");
        return NULL;
    }
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL || (sc->path = strdup(path)) == NULL) {
        free(sc);
        return NULL;
    }
    sc->pc = pc;
    return sc;
}

static const OSSL_PARAM *
store_settable(void *provctx)
{
    static const OSSL_PARAM none[] = { OSSL_PARAM_END };

    (void) provctx;
    return none;
}

static int
store_set_params(void *vsc, const OSSL_PARAM params[])
{
    (void) vsc;
    (void) params;
    return 1;                       /* expectations: it is a private key */
}

static int
store_load(void *vsc, OSSL_CALLBACK *object_cb, void *object_cbarg,
    OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    struct store_ctx *sc = vsc;
    unsigned char *spki;
    uint64_t handle = 0;
    size_t written = 0;
    const char *type = NULL;
    void *key;
    int objtype = OSSL_OBJECT_PKEY, ok;
    struct ks_args_pkey_load a;

    (void) pw_cb;
    (void) pw_cbarg;               /* encrypted keys are refused by T */
    if (sc->done) {
        return 0;
    }
    sc->done = 1;
    spki = malloc(SPKI_MAX);
    if (spki == NULL) {
        return 0;
    }
    a.path = sc->path;
    a.pathlen = strlen(sc->path);
    a.handle = &handle;
    a.pub = spki;
    a.publen = SPKI_MAX;
    a.pub_written = &written;
    if (ksp_gate(sc->pc, KS_OP_PKEY_LOAD, &a, sc->path) < 0) {
        free(spki);
        return 0;
    }
    key = key_from_spki(sc->pc, spki, written, handle, &type);
    free(spki);
    if (key == NULL) {
        return 0;
    }
    {
        OSSL_PARAM params[] = {
            { OSSL_OBJECT_PARAM_TYPE, OSSL_PARAM_INTEGER, &objtype,
              sizeof(objtype), 0 },
            { OSSL_OBJECT_PARAM_DATA_TYPE, OSSL_PARAM_UTF8_STRING,
              (char *) type, strlen(type), 0 },
            { OSSL_OBJECT_PARAM_REFERENCE, OSSL_PARAM_OCTET_STRING, &key,
              sizeof(key), 0 },
            OSSL_PARAM_END
        };

        ok = object_cb(params, object_cbarg);
    }
    if (key != NULL) {              /* not taken by a key management load */
        if (strcmp(type, "EC") == 0) {
            const OSSL_DISPATCH *d = NULL;
            const OSSL_ALGORITHM *alg;

            for (alg = ksp_keymgmts; alg->algorithm_names != NULL; alg++) {
                if (strncmp(alg->algorithm_names, "EC:", 3) == 0) {
                    d = alg->implementation;
                }
            }
            if (d != NULL) {
                DFN(d, OSSL_FUNC_KEYMGMT_FREE, OSSL_FUNC_keymgmt_free_fn *)
                    (key);
            }
        } else {
            skey_free(key);
        }
    }
    return ok;
}

static int
store_eof(void *vsc)
{
    return ((struct store_ctx *) vsc)->done;
}

static int
store_close(void *vsc)
{
    struct store_ctx *sc = vsc;

    if (sc != NULL) {
        free(sc->path);
        free(sc);
    }
    return 1;
}

static const OSSL_DISPATCH store_functions[] = {
    { OSSL_FUNC_STORE_OPEN, (ksp_fn) store_open },
    { OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (ksp_fn) store_settable },
    { OSSL_FUNC_STORE_SET_CTX_PARAMS, (ksp_fn) store_set_params },
    { OSSL_FUNC_STORE_LOAD, (ksp_fn) store_load },
    { OSSL_FUNC_STORE_EOF, (ksp_fn) store_eof },
    { OSSL_FUNC_STORE_CLOSE, (ksp_fn) store_close },
    OSSL_DISPATCH_END
};

const OSSL_ALGORITHM ksp_stores[] = {
    { "keystore", KSP_PROPS, store_functions,
      "private keys read and held by T: keystore:/path/key.pem" },
    { NULL, NULL, NULL, NULL }
};

/* ---- signatures ------------------------------------------------------- */

struct sctx {
    struct ksp_provctx  *pc;
    enum skind           kind;
    char                *propq;
    /* signing with a key in T */
    uint64_t             handle;
    size_t               maxsize;
    uint32_t             md;                /* enum ks_md; 0: Ed25519 */
    uint32_t             mgf1;              /* 0: as md */
    uint32_t             padding;           /* enum ks_sig_padding */
    int                  saltlen_ok;
    unsigned char       *buf;               /* the message (public) */
    size_t               len, cap;
    int                  signing;
    /* verifying: the default's signature */
    const OSSL_DISPATCH *dsig;
    void                *inner;
};

static void *
sctx_new(struct ksp_provctx *pc, enum skind kind, const char *propq)
{
    struct sctx *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->pc = pc;
    c->kind = kind;
    c->saltlen_ok = 1;
    if (propq != NULL && (c->propq = strdup(propq)) == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void *rsa_sig_new(void *pc, const char *q) { return sctx_new(pc, SK_RSA, q); }
static void *ec_sig_new(void *pc, const char *q) { return sctx_new(pc, SK_EC, q); }
static void *ed_sig_new(void *pc, const char *q) { return sctx_new(pc, SK_ED25519, q); }

static void
sctx_reset(struct sctx *c)
{
    if (c->inner != NULL) {
        DFN(c->dsig, OSSL_FUNC_SIGNATURE_FREECTX,
            OSSL_FUNC_signature_freectx_fn *)(c->inner);
        c->inner = NULL;
    }
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    c->signing = 0;
    c->handle = 0;
}

static void
sctx_free(void *vc)
{
    struct sctx *c = vc;

    if (c != NULL) {
        sctx_reset(c);
        free(c->propq);
        free(c);
    }
}

static void *
sctx_dup(void *vc)
{
    struct sctx *src = vc, *c;

    if (src->inner != NULL) {
        void *in = DFN(src->dsig, OSSL_FUNC_SIGNATURE_DUPCTX,
                       OSSL_FUNC_signature_dupctx_fn *) == NULL ? NULL
                   : DFN(src->dsig, OSSL_FUNC_SIGNATURE_DUPCTX,
                         OSSL_FUNC_signature_dupctx_fn *)(src->inner);

        if (in == NULL) {
            return NULL;
        }
        c = sctx_new(src->pc, src->kind, src->propq);
        if (c == NULL) {
            DFN(src->dsig, OSSL_FUNC_SIGNATURE_FREECTX,
                OSSL_FUNC_signature_freectx_fn *)(in);
            return NULL;
        }
        c->dsig = src->dsig;
        c->inner = in;
        return c;
    }
    c = sctx_new(src->pc, src->kind, src->propq);
    if (c == NULL) {
        return NULL;
    }
    c->handle = src->handle;
    c->maxsize = src->maxsize;
    c->md = src->md;
    c->mgf1 = src->mgf1;
    c->padding = src->padding;
    c->saltlen_ok = src->saltlen_ok;
    c->signing = src->signing;
    if (src->len > 0) {
        c->buf = malloc(src->len);
        if (c->buf == NULL) {
            sctx_free(c);
            return NULL;
        }
        memcpy(c->buf, src->buf, src->len);
        c->len = c->cap = src->len;
    }
    return c;
}

static int
sctx_set_params(void *vc, const OSSL_PARAM params[])
{
    struct sctx *c = vc;
    const OSSL_PARAM *p;
    const char *s;
    int v;

    if (c->inner != NULL) {
        OSSL_FUNC_signature_set_ctx_params_fn *f =
            DFN(c->dsig, OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,
                OSSL_FUNC_signature_set_ctx_params_fn *);

        return f == NULL || f(c->inner, params);
    }
    if (params == NULL) {
        return 1;
    }
    if ((p = ksp_param_find(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL) {
        if (c->kind == SK_ED25519 || !ksp_param_get_utf8(p, &s)
            || (c->md = ksp_md_from_name(s)) == 0)
        {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "signature digest");
            return 0;
        }
    }
    if ((p = ksp_param_find(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        if (c->kind != SK_RSA) {
            return 0;
        }
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (!ksp_param_get_utf8(p, &s)) {
                return 0;
            }
            v = strcmp(s, "pkcs1") == 0 ? RSA_PKCS1_PADDING_NUM
                : strcmp(s, "pss") == 0 ? RSA_PKCS1_PSS_PADDING_NUM : 0;
        } else if (!ksp_param_get_int(p, &v)) {
            return 0;
        }
        if (v == RSA_PKCS1_PADDING_NUM) {
            c->padding = KS_SIG_RSA_PKCS1;
        } else if (v == RSA_PKCS1_PSS_PADDING_NUM) {
            c->padding = KS_SIG_RSA_PSS;
        } else {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "RSA padding mode");
            return 0;
        }
    }
    if ((p = ksp_param_find(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
        /* T's PSS salt is the digest's length (TLS); nothing else */
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (!ksp_param_get_utf8(p, &s)) {
                return 0;
            }
            c->saltlen_ok = strcmp(s, "digest") == 0
                            || (c->md != 0
                                && (size_t) atoi(s) == ksp_md_len(c->md));
        } else {
            if (!ksp_param_get_int(p, &v)) {
                return 0;
            }
            c->saltlen_ok = v == RSA_PSS_SALTLEN_DIGEST_NUM
                            || (c->md != 0 && v >= 0
                                && (size_t) v == ksp_md_len(c->md));
        }
    }
    if ((p = ksp_param_find(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        if (!ksp_param_get_utf8(p, &s) || (c->mgf1 = ksp_md_from_name(s)) == 0)
        {
            return 0;
        }
    }
    return 1;
}

static const OSSL_PARAM sig_settable[] = {
    { OSSL_SIGNATURE_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_SIGNATURE_PARAM_PAD_MODE, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_SIGNATURE_PARAM_PSS_SALTLEN, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_SIGNATURE_PARAM_MGF1_DIGEST, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM *
sctx_settable(void *vc, void *provctx)
{
    struct sctx *c = vc;

    (void) provctx;
    if (c != NULL && c->inner != NULL) {
        OSSL_FUNC_signature_settable_ctx_params_fn *f =
            DFN(c->dsig, OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
                OSSL_FUNC_signature_settable_ctx_params_fn *);

        if (f != NULL) {
            return f(c->inner, c->pc->deflt.provctx);
        }
    }
    return sig_settable;
}

static int
sctx_get_params(void *vc, OSSL_PARAM params[])
{
    struct sctx *c = vc;

    if (c->inner != NULL) {
        OSSL_FUNC_signature_get_ctx_params_fn *f =
            DFN(c->dsig, OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,
                OSSL_FUNC_signature_get_ctx_params_fn *);

        return f != NULL && f(c->inner, params);
    }
    return 1;                       /* nothing answered (no AlgorithmId) */
}

static const OSSL_PARAM *
sctx_gettable(void *vc, void *provctx)
{
    static const OSSL_PARAM none[] = { OSSL_PARAM_END };
    struct sctx *c = vc;

    (void) provctx;
    if (c != NULL && c->inner != NULL) {
        OSSL_FUNC_signature_gettable_ctx_params_fn *f =
            DFN(c->dsig, OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
                OSSL_FUNC_signature_gettable_ctx_params_fn *);

        if (f != NULL) {
            return f(c->inner, c->pc->deflt.provctx);
        }
    }
    return none;
}

static int
sctx_sign_init(void *vc, const char *mdname, void *keydata,
    const OSSL_PARAM params[])
{
    struct sctx *c = vc;

    sctx_reset(c);
    c->md = 0;
    c->mgf1 = 0;
    c->saltlen_ok = 1;
    c->padding = c->kind == SK_RSA ? KS_SIG_RSA_PKCS1 : KS_SIG_DEFAULT;
    if (c->kind == SK_EC) {
        const char *group;
        const unsigned char *pub;
        size_t publen;
        int maxsize;

        if (!ksp_ec_key_info(keydata, &c->handle, &group, &pub, &publen,
                             &maxsize))
        {
            return 0;
        }
        c->maxsize = (size_t) maxsize;
    } else {
        struct skey *k = keydata;
        size_t ms = 0;
        OSSL_PARAM gp[] = {
            { OSSL_PKEY_PARAM_MAX_SIZE, OSSL_PARAM_UNSIGNED_INTEGER, &ms,
              sizeof(ms), 0 },
            OSSL_PARAM_END
        };

        if (k == NULL || k->kind != c->kind) {
            return 0;
        }
        c->handle = k->priv != NULL ? k->priv->handle : 0;
        if (!skey_get_params(k, gp) || ms == 0) {
            return 0;
        }
        c->maxsize = ms;
    }
    if (c->handle == 0) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED,
                "this key cannot sign (not loaded by the keystore: store)");
        return 0;
    }
    if (c->kind == SK_ED25519) {
        if (mdname != NULL && mdname[0] != '\0') {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "Ed25519 with a digest");
            return 0;
        }
    } else {
        c->md = ksp_md_from_name(mdname != NULL && mdname[0] != '\0'
                                 ? mdname : "SHA2-256");
        if (c->md == 0) {
            KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "signature digest %s",
                    mdname);
            return 0;
        }
    }
    c->signing = 1;
    return sctx_set_params(c, params);
}

static int
sctx_update(void *vc, const unsigned char *data, size_t n)
{
    struct sctx *c = vc;
    unsigned char *b;
    size_t cap;

    if (c->inner != NULL) {
        OSSL_FUNC_signature_digest_verify_update_fn *f =
            DFN(c->dsig, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,
                OSSL_FUNC_signature_digest_verify_update_fn *);

        return f != NULL && f(c->inner, data, n);
    }
    if (!c->signing) {
        return 0;
    }
    if (n > SIZE_MAX / 2 - c->len) {
        return 0;
    }
    if (c->len + n > c->cap) {
        cap = (c->len + n) * 2;
        b = realloc(c->buf, cap);
        if (b == NULL) {
            return 0;
        }
        c->buf = b;
        c->cap = cap;
    }
    if (n > 0) {
        memcpy(c->buf + c->len, data, n);
        c->len += n;
    }
    return 1;
}

/* One KS_OP_SIGN over tbs: T hashes and signs. */
static int
sctx_sign_now(struct sctx *c, unsigned char *sig, size_t *siglen,
    size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    struct ks_args_sign a;
    size_t written = 0;

    if (!c->signing) {
        return 0;
    }
    if (sig == NULL) {
        *siglen = c->maxsize;
        return 1;
    }
    if (c->padding == KS_SIG_RSA_PSS
        && (!c->saltlen_ok || (c->mgf1 != 0 && c->mgf1 != c->md)))
    {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED,
                "RSA-PSS other than salt = digest length, MGF1 = digest");
        return 0;
    }
    if (sigsize < c->maxsize) {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "signature buffer of %zu bytes",
                sigsize);
        return 0;
    }
    a.handle = c->handle;
    a.md = c->md;
    a.padding = c->padding;
    a.tbs = tbs;
    a.tbslen = tbslen;
    a.sig = sig;
    a.siglen = sigsize;
    a.sig_written = &written;
    if (ksp_gate(c->pc, KS_OP_SIGN, &a, "sign") < 0) {
        return 0;
    }
    *siglen = written;
    return 1;
}

static int
sctx_sign_final(void *vc, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    struct sctx *c = vc;

    return sctx_sign_now(c, sig, siglen, sigsize, c->buf, c->len);
}

static int
sctx_digest_sign(void *vc, unsigned char *sig, size_t *siglen, size_t sigsize,
    const unsigned char *tbs, size_t tbslen)
{
    struct sctx *c = vc;
    static const unsigned char empty[1];

    return sctx_sign_now(c, sig, siglen, sigsize,
                         tbs != NULL ? tbs : empty, tbslen);
}

/* Verification: the default's signature over a default key with the same
 * public key. */
static int
sctx_verify_init(void *vc, const char *mdname, void *keydata,
    const OSSL_PARAM params[])
{
    struct sctx *c = vc;
    const OSSL_DISPATCH *dkm = ksp_fwd_impl(c->pc, fwd_km(c->kind));
    OSSL_FUNC_signature_digest_verify_init_fn *vi;
    OSSL_FUNC_signature_newctx_fn *nw;
    void *dkey = NULL, *own = NULL;
    int ok = 0;

    sctx_reset(c);
    c->dsig = ksp_fwd_impl(c->pc, fwd_sig(c->kind));
    if (c->dsig == NULL || dkm == NULL) {
        return 0;
    }
    if (c->kind == SK_EC) {
        const char *group;
        const unsigned char *pub;
        size_t publen;
        uint64_t h;
        int ms;

        if (!ksp_ec_key_info(keydata, &h, &group, &pub, &publen, &ms)) {
            return 0;
        }
        {
            OSSL_PARAM ip[] = {
                { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING,
                  (char *) group, strlen(group), 0 },
                { OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING,
                  (void *) pub, publen, 0 },
                OSSL_PARAM_END
            };

            own = DFN(dkm, OSSL_FUNC_KEYMGMT_NEW, OSSL_FUNC_keymgmt_new_fn *)
                (c->pc->deflt.provctx);
            if (own == NULL
                || !DFN(dkm, OSSL_FUNC_KEYMGMT_IMPORT,
                        OSSL_FUNC_keymgmt_import_fn *)
                       (own, OSSL_KEYMGMT_SELECT_PUBLIC_KEY
                             | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS, ip))
            {
                goto done;
            }
            dkey = own;
        }
    } else {
        struct skey *k = keydata;

        if (k == NULL || k->kind != c->kind || k->inner == NULL) {
            return 0;
        }
        dkey = k->inner;
    }
    nw = DFN(c->dsig, OSSL_FUNC_SIGNATURE_NEWCTX,
             OSSL_FUNC_signature_newctx_fn *);
    vi = DFN(c->dsig, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
             OSSL_FUNC_signature_digest_verify_init_fn *);
    if (nw == NULL || vi == NULL) {
        goto done;
    }
    c->inner = nw(c->pc->deflt.provctx, c->propq);
    /* the default's context takes its own reference to the key */
    ok = c->inner != NULL && vi(c->inner, mdname, dkey, params);
done:
    if (own != NULL) {
        DFN(dkm, OSSL_FUNC_KEYMGMT_FREE, OSSL_FUNC_keymgmt_free_fn *)(own);
    }
    return ok;
}

static int
sctx_verify_final(void *vc, const unsigned char *sig, size_t siglen)
{
    struct sctx *c = vc;
    OSSL_FUNC_signature_digest_verify_final_fn *f = c->inner == NULL ? NULL
        : DFN(c->dsig, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,
              OSSL_FUNC_signature_digest_verify_final_fn *);

    return f != NULL && f(c->inner, sig, siglen);
}

static int
sctx_digest_verify(void *vc, const unsigned char *sig, size_t siglen,
    const unsigned char *tbs, size_t tbslen)
{
    struct sctx *c = vc;
    OSSL_FUNC_signature_digest_verify_fn *f;

    if (c->inner == NULL) {
        return 0;
    }
    f = DFN(c->dsig, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY,
            OSSL_FUNC_signature_digest_verify_fn *);
    if (f != NULL) {
        return f(c->inner, sig, siglen, tbs, tbslen);
    }
    return sctx_update(c, tbs, tbslen) && sctx_verify_final(c, sig, siglen);
}

#define SIG_FNS(tag, newfn)                                                 \
static const OSSL_DISPATCH tag[] = {                                        \
    { OSSL_FUNC_SIGNATURE_NEWCTX, (ksp_fn) newfn },                         \
    { OSSL_FUNC_SIGNATURE_FREECTX, (ksp_fn) sctx_free },                    \
    { OSSL_FUNC_SIGNATURE_DUPCTX, (ksp_fn) sctx_dup },                      \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (ksp_fn) sctx_sign_init },      \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (ksp_fn) sctx_update },       \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (ksp_fn) sctx_sign_final },    \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (ksp_fn) sctx_digest_sign },         \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (ksp_fn) sctx_verify_init },  \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (ksp_fn) sctx_update },     \
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (ksp_fn) sctx_verify_final },\
    { OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, (ksp_fn) sctx_digest_verify },     \
    { OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (ksp_fn) sctx_set_params },       \
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (ksp_fn) sctx_settable },    \
    { OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (ksp_fn) sctx_get_params },       \
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (ksp_fn) sctx_gettable },    \
    OSSL_DISPATCH_END                                                       \
};
SIG_FNS(rsa_sig_functions, rsa_sig_new)
SIG_FNS(ec_sig_functions, ec_sig_new)
SIG_FNS(ed_sig_functions, ed_sig_new)

const OSSL_ALGORITHM ksp_signatures[] = {
    { "RSA:rsaEncryption:1.2.840.113549.1.1.1", KSP_PROPS, rsa_sig_functions,
      "RSA PKCS#1 v1.5 / PSS signing in T (mpk-tls keystore)" },
    { "ECDSA", KSP_PROPS, ec_sig_functions,
      "ECDSA P-256/P-384 signing in T (mpk-tls keystore)" },
    { "ED25519:1.3.101.112", KSP_PROPS, ed_sig_functions,
      "Ed25519 signing in T (mpk-tls keystore)" },
    { NULL, NULL, NULL, NULL }
};
