/*
 * Key exchange of the keystore provider (U): key management for X25519,
 * X448, EC (P-256, P-384, P-521) and X25519MLKEM768; key exchange for
 * X25519, X448 and ECDH; the X25519MLKEM768 KEM (one unit: the 64-byte
 * ML-KEM || X25519 secret is made and sealed in T).
 *
 * A key of ours is a public key (the encoded key share, in U), its group
 * (EC: a domain parameter; the others have one group each) and, if it
 * was generated here, a KS_HT_KEX handle: the private key exists only in
 * T (KS_OP_KEX_KEYGEN).  Private keys can be neither exported nor
 * imported; public keys and EC group names can, as the default provider
 * encodes them (X25519/X448: the raw key; EC: the uncompressed point;
 * the hybrid: ML-KEM || X25519).  libssl's calls, and the crossings:
 *   TLS 1.3 client:  keygen (KS_OP_KEX_KEYGEN)  ->  derive
 *            (KS_OP_KEX_DERIVE) or hybrid decapsulate (KS_OP_KEM_DECAP)
 *   TLS 1.3 server:  (EC)DH: peer key (U only: group, then the encoded
 *            key), keygen from it as template, derive;
 *            hybrid: peer key (U only), encapsulate (KS_OP_KEM_ENCAP)
 *   TLS 1.2 server (ECDHE): keygen by group; the client's key: a copy of
 *            the parameters of ours, then its encoded point; derive
 *   TLS 1.2 client: peer key by group, keygen from it, derive
 *   and one KS_OP_FREE when a generated key is freed.
 * The shared secret leaves T only as a token: a derive or (en|de)capsulate
 * needs libssl's mpktls-out=secret on its init (openssl-patch/patches/
 * 0001); an unmarked one is refused, since a raw secret of a key held in
 * T cannot be had (so every key of these groups generated while this
 * provider is preferred is a TLS key share; see README).
 *
 * Keys made elsewhere are never ours: a key decoded from a file (the
 * certificate's) is made by the default provider's decoder with the
 * default provider's key management, and an EVP_PKEY_derive with a
 * default key falls back to the default provider's exchange (EVP tries
 * the key's own provider when ours refuses to import its private key).
 */

#include "ksp_local.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PUB_MAX     1216
#define SECRET_MAX  66
#define POINT_UNCOMPRESSED 0x04

struct group {
    const char  *name;                  /* as the default reports it */
    const char  *alias[3];              /* other names it answers to */
    uint32_t     ks_group;              /* enum ks_group */
    size_t       publen;                /* encoded public key (key share) */
    size_t       secretlen;             /* shared secret = token */
    size_t       ctlen;                 /* KEM ciphertext, 0 for DH */
    int          bits, secbits, maxsize;    /* as the default provider's */
};

/*
 * bits/security bits/max size, as the default provider answers them:
 * ecx_kmgmt.c (X25519, X448), ec_kmgmt.c (order bits, SP 800-57 security
 * bits, ECDSA_size), mlx_kmgmt.c (the hybrid).  test_provider compares.
 */
static const struct group g_x25519 = {
    "X25519", { NULL }, KS_GROUP_X25519, 32, 32, 0, 253, 128, 32 };
static const struct group g_x448 = {
    "X448", { NULL }, KS_GROUP_X448, 56, 56, 0, 448, 224, 56 };
static const struct group g_p256 = {
    "prime256v1", { "P-256", "secp256r1", NULL }, KS_GROUP_P256,
    65, 32, 0, 256, 128, 72 };
static const struct group g_p384 = {
    "secp384r1", { "P-384", NULL }, KS_GROUP_P384, 97, 48, 0, 384, 192, 104 };
static const struct group g_p521 = {
    "secp521r1", { "P-521", NULL }, KS_GROUP_P521,
    133, 66, 0, 521, 256, 139 };
static const struct group g_x25519mlkem768 = {
    "X25519MLKEM768", { NULL }, KS_GROUP_X25519MLKEM768, 1216, 64, 1120,
    768, 192, 1088 + 32 };

/*
 * A key type (one key management): X25519, X448 and the hybrid have one
 * group each; EC keys carry theirs as a domain parameter (group name).
 */
struct family {
    const char          *name;
    const struct group  *fixed;             /* NULL: EC */
};

static const struct family f_x25519 = { "X25519", &g_x25519 };
static const struct family f_x448 = { "X448", &g_x448 };
static const struct family f_ec = { "EC", NULL };
static const struct family f_x25519mlkem768 = {
    "X25519MLKEM768", &g_x25519mlkem768 };

static const struct group *const ec_groups[] = { &g_p256, &g_p384, &g_p521 };

/* The EC group of that name (any of its names), or NULL. */
static const struct group *
ec_group(const char *name)
{
    size_t i, j;

    for (i = 0; i < sizeof(ec_groups) / sizeof(ec_groups[0]); i++) {
        const struct group *g = ec_groups[i];

        if (strcasecmp(name, g->name) == 0) {
            return g;
        }
        for (j = 0; j < 3 && g->alias[j] != NULL; j++) {
            if (strcasecmp(name, g->alias[j]) == 0) {
                return g;
            }
        }
    }
    return NULL;
}

/* The private half, in T: shared by duplicates of a key. */
struct tkey {
    int                  refs;
    uint64_t             handle;            /* KS_HT_KEX */
    struct ksp_provctx  *pc;
};

struct key {
    int                  refs;
    struct ksp_provctx  *pc;
    const struct family *fam;
    const struct group  *g;                 /* NULL: EC, no group yet */
    int                  has_pub;
    unsigned char        pub[PUB_MAX];
    struct tkey         *priv;              /* NULL: public only, or empty */
};

static void
tkey_free(struct tkey *t)
{
    if (t != NULL && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        ksp_free_handle(t->pc, t->handle);
        free(t);
    }
}

static struct key *
key_new(struct ksp_provctx *pc, const struct family *fam)
{
    struct key *k = calloc(1, sizeof(*k));

    if (k != NULL) {
        k->refs = 1;
        k->pc = pc;
        k->fam = fam;
        k->g = fam->fixed;
    }
    return k;
}

static struct key *
key_up(struct key *k)
{
    __atomic_add_fetch(&k->refs, 1, __ATOMIC_ACQ_REL);
    return k;
}

static void
key_free(void *vkey)
{
    struct key *k = vkey;

    if (k != NULL && __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        tkey_free(k->priv);
        free(k);
    }
}

/* ---- key management ------------------------------------------------------ */

static int
key_has(const void *vkey, int selection)
{
    const struct key *k = vkey;
    int ok = k != NULL;

    if (ok && (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
        ok = k->has_pub;
    }
    if (ok && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
        ok = k->priv != NULL;
    }
    if (ok && (selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0) {
        ok = k->g != NULL;          /* EC: the group; the others have it */
    }
    return ok;
}

static int
key_match(const void *v1, const void *v2, int selection)
{
    const struct key *a = v1, *b = v2;

    if (a->fam != b->fam || a->g != b->g) {
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0) {
        /* the public key names the pair (as the default's match) */
        if (a->has_pub && b->has_pub) {
            return memcmp(a->pub, b->pub, a->g->publen) == 0;
        }
        if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0
            && a->priv != NULL)
        {
            return a->priv == b->priv;
        }
        return 0;
    }
    return 1;
}

/*
 * The full check of a public key (an EC point on the curve) is T's: the
 * peer key is imported there and checked again by the derive.  U checks
 * what it can see: presence, length, the uncompressed-point form.
 */
static int
key_validate(const void *vkey, int selection, int checktype)
{
    (void) checktype;
    return key_has(vkey, selection);
}

static const OSSL_PARAM pub_types[] = {
    { OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};
static const OSSL_PARAM ec_types[] = {
    { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};
static const OSSL_PARAM ec_param_types[] = {
    { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};
static const OSSL_PARAM no_types[] = { OSSL_PARAM_END };

static const OSSL_PARAM *
key_imexport_types(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 ? pub_types
                                                              : no_types;
}

static const OSSL_PARAM *
ec_imexport_types(int selection)
{
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
        return ec_types;
    }
    return (selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0
           ? ec_param_types : no_types;
}

static int
key_set_group(struct key *k, const char *name)
{
    const struct group *g = k->fam->fixed != NULL ? NULL : ec_group(name);

    if (k->fam->fixed != NULL) {
        /* "" (libssl's hybrid) or the key's own name */
        if (name[0] == '\0' || strcasecmp(name, k->g->name) == 0) {
            return 1;
        }
    } else if (g != NULL && (k->g == NULL || k->g == g)) {
        k->g = g;
        return 1;
    }
    KSP_ERR(k->pc, KSP_R_NOT_SUPPORTED, "group \"%s\" for %s%s", name,
            k->fam->name, k->g != NULL && g != NULL ? " (has another)" : "");
    return 0;
}

static int
key_set_pub(struct key *k, const void *pub, size_t len)
{
    if (k->has_pub) {
        KSP_ERR(k->pc, KSP_R_NOT_SUPPORTED, "keys cannot be changed");
        return 0;
    }
    if (k->g == NULL) {
        KSP_ERR(k->pc, KSP_R_BAD_PARAM, "EC public key without a group");
        return 0;
    }
    /* EC: uncompressed points only (TLS 1.3 and libssl's TLS 1.2 send
     * nothing else, and T takes nothing else) */
    if (len != k->g->publen || pub == NULL
        || (k->fam == &f_ec
            && ((const unsigned char *) pub)[0] != POINT_UNCOMPRESSED))
    {
        KSP_ERR(k->pc, KSP_R_BAD_PARAM, "%s public key of %zu bytes",
                k->g->name, len);
        return 0;
    }
    memcpy(k->pub, pub, len);
    k->has_pub = 1;
    return 1;
}

/*
 * Public keys and group names only: a private key given here would be a
 * key in U.  Other parameters (EC point format, encoding, cofactor flag)
 * are the defaults or do not matter for a public key; explicit curve
 * parameters come without a group name and fail.
 */
static int
key_import(void *vkey, int selection, const OSSL_PARAM params[])
{
    struct key *k = vkey;
    const OSSL_PARAM *p;
    const char *s;
    const void *d;
    size_t n;

    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0
        && ksp_param_find(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL)
    {
        KSP_ERR(k->pc, KSP_R_PRIVATE_KEY, "cannot import a private %s key",
                k->fam->name);
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) != 0
        && (p = ksp_param_find(params, OSSL_PKEY_PARAM_GROUP_NAME)) != NULL)
    {
        if (!ksp_param_get_utf8(p, &s) || !key_set_group(k, s)) {
            return 0;
        }
    }
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0
        && k->g == NULL)
    {
        KSP_ERR(k->pc, KSP_R_NOT_SUPPORTED, "EC key without a named group");
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0) {
        return 1;                   /* nothing else to import */
    }
    p = ksp_param_find(params, OSSL_PKEY_PARAM_PUB_KEY);
    if (p == NULL) {
        p = ksp_param_find(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
    }
    if (p == NULL || !ksp_param_get_octets(p, &d, &n)) {
        return 0;
    }
    return key_set_pub(k, d, n);
}

/* Public keys (and EC group names) only, never the private one. */
static int
key_export(void *vkey, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    struct key *k = vkey;
    OSSL_PARAM params[3] = { OSSL_PARAM_END, OSSL_PARAM_END, OSSL_PARAM_END };
    OSSL_PARAM *p = params;

    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0
        && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
    {
        KSP_ERR(k->pc, KSP_R_PRIVATE_KEY, "private keys stay in T");
        return 0;
    }
    if (k->fam == &f_ec
        && (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) != 0)
    {
        if (k->g == NULL) {
            return 0;
        }
        *p++ = (OSSL_PARAM) { OSSL_PKEY_PARAM_GROUP_NAME,
                              OSSL_PARAM_UTF8_STRING, (char *) k->g->name,
                              strlen(k->g->name), OSSL_PARAM_UNMODIFIED };
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0) {
        if (!k->has_pub) {
            return 0;
        }
        *p++ = (OSSL_PARAM) { OSSL_PKEY_PARAM_PUB_KEY,
                              OSSL_PARAM_OCTET_STRING, k->pub, k->g->publen,
                              OSSL_PARAM_UNMODIFIED };
    }
    return cb(params, cbarg);
}

static const OSSL_PARAM key_gettable[] = {
    { OSSL_PKEY_PARAM_BITS, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { OSSL_PKEY_PARAM_SECURITY_BITS, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { OSSL_PKEY_PARAM_MAX_SIZE, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM ec_gettable[] = {
    { OSSL_PKEY_PARAM_BITS, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { OSSL_PKEY_PARAM_SECURITY_BITS, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { OSSL_PKEY_PARAM_MAX_SIZE, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    { OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_PUB_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, OSSL_PARAM_UTF8_STRING,
      NULL, 0, 0 },
    { OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM *
key_gettable_params(void *provctx)
{
    (void) provctx;
    return key_gettable;
}

static const OSSL_PARAM *
ec_gettable_params(void *provctx)
{
    (void) provctx;
    return ec_gettable;
}

static int
key_get_params(void *vkey, OSSL_PARAM params[])
{
    struct key *k = vkey;
    OSSL_PARAM *p;

    if (k->g == NULL) {
        return 1;                   /* an EC key without a group: nothing */
    }
    if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_BITS)) != NULL
        && !ksp_param_set_int(p, k->g->bits))
    {
        return 0;
    }
    if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_SECURITY_BITS)) != NULL
        && !ksp_param_set_int(p, k->g->secbits))
    {
        return 0;
    }
    if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL
        && !ksp_param_set_int(p, k->g->maxsize))
    {
        return 0;
    }
    if (k->fam == &f_ec) {
        if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_GROUP_NAME)) != NULL
            && !ksp_param_set_utf8(p, k->g->name))
        {
            return 0;
        }
        if ((p = ksp_param_find_rw(params,
                                   OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT))
            != NULL && !ksp_param_set_utf8(p, "uncompressed"))
        {
            return 0;
        }
        if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_EC_ENCODING)) != NULL
            && !ksp_param_set_utf8(p, "named_curve"))
        {
            return 0;
        }
    }
    if (k->has_pub) {
        if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY))
            != NULL && !ksp_param_set_octets(p, k->pub, k->g->publen))
        {
            return 0;
        }
        if ((p = ksp_param_find_rw(params, OSSL_PKEY_PARAM_PUB_KEY)) != NULL
            && !ksp_param_set_octets(p, k->pub, k->g->publen))
        {
            return 0;
        }
    }
    /* OSSL_PKEY_PARAM_PRIV_KEY is never answered: left unmodified */
    return 1;
}

static const OSSL_PARAM key_settable[] = {
    { OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, OSSL_PARAM_OCTET_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM *
key_settable_params(void *provctx)
{
    (void) provctx;
    return key_settable;
}

static int
key_set_params(void *vkey, const OSSL_PARAM params[])
{
    struct key *k = vkey;
    const OSSL_PARAM *p = ksp_param_find(params,
                                         OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
    const void *d;
    size_t n;

    if (p == NULL) {
        return 1;
    }
    if (!ksp_param_get_octets(p, &d, &n)) {
        return 0;
    }
    return key_set_pub(k, d, n);
}

static void *
key_dup(const void *vsrc, int selection)
{
    const struct key *src = vsrc;
    struct key *k = key_new(src->pc, src->fam);

    if (k == NULL) {
        return NULL;
    }
    k->g = src->g;                  /* the group always comes along */
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && src->has_pub) {
        memcpy(k->pub, src->pub, src->g->publen);
        k->has_pub = 1;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && src->priv != NULL) {
        /* the same key in T: a duplicate shares the handle */
        __atomic_add_fetch(&src->priv->refs, 1, __ATOMIC_ACQ_REL);
        k->priv = src->priv;
    }
    return k;
}

/* The operation an EC key serves, by the default provider's names */
static const char *
ec_query_operation_name(int operation_id)
{
    switch (operation_id) {
    case OSSL_OP_KEYEXCH:
        return "ECDH";
    case OSSL_OP_SIGNATURE:
        return "ECDSA";             /* keys from the keystore: store sign */
    default:
        return NULL;
    }
}

/* Key generation */
struct gen_ctx {
    struct ksp_provctx  *pc;
    const struct family *fam;
    const struct group  *g;                 /* NULL: EC, not named yet */
    int                  selection;
};

static int
gen_set_params(void *vgen, const OSSL_PARAM params[])
{
    struct gen_ctx *gc = vgen;
    const OSSL_PARAM *p;
    const char *s;

    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strcmp(p->key, OSSL_PKEY_PARAM_GROUP_NAME) == 0) {
            /* libssl names the group: "X25519", "prime256v1", ..., or ""
             * for the hybrid */
            const struct group *g = NULL;

            if (!ksp_param_get_utf8(p, &s)) {
                return 0;
            }
            if (gc->fam->fixed != NULL) {
                g = s[0] == '\0' || strcasecmp(s, gc->fam->fixed->name) == 0
                    ? gc->fam->fixed : NULL;
            } else {
                g = ec_group(s);
            }
            if (g == NULL) {
                KSP_ERR(gc->pc, KSP_R_NOT_SUPPORTED, "group \"%s\" for %s",
                        s, gc->fam->name);
                return 0;
            }
            gc->g = g;
        } else if (strcmp(p->key, OSSL_PKEY_PARAM_DHKEM_IKM) == 0) {
            /* a private key from caller-chosen bytes would be a key in U */
            KSP_ERR(gc->pc, KSP_R_PRIVATE_KEY, "%s", p->key);
            return 0;
        }
        /* properties, point format, encoding and the rest: not ours */
    }
    return 1;
}

static const OSSL_PARAM gen_settable[] = {
    { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_PROPERTIES, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM ec_gen_settable[] = {
    { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PARAM_UTF8_STRING, NULL, 0, 0 },
    { OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, OSSL_PARAM_UTF8_STRING,
      NULL, 0, 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM *
gen_settable_params(void *vgen, void *provctx)
{
    (void) vgen;
    (void) provctx;
    return gen_settable;
}

static const OSSL_PARAM *
ec_gen_settable_params(void *vgen, void *provctx)
{
    (void) vgen;
    (void) provctx;
    return ec_gen_settable;
}

static void *
gen_init(struct ksp_provctx *pc, const struct family *fam, int selection,
    const OSSL_PARAM params[])
{
    struct gen_ctx *gc = calloc(1, sizeof(*gc));

    if (gc == NULL) {
        return NULL;
    }
    gc->pc = pc;
    gc->fam = fam;
    gc->g = fam->fixed;
    gc->selection = selection;
    if (!gen_set_params(gc, params)) {
        free(gc);
        return NULL;
    }
    return gc;
}

/* A template (EVP_PKEY_CTX_new_from_pkey + keygen): its group */
static int
gen_set_template(void *vgen, void *templ)
{
    struct gen_ctx *gc = vgen;
    const struct key *t = templ;

    if (t == NULL || t->fam != gc->fam || t->g == NULL) {
        KSP_ERR(gc->pc, KSP_R_BAD_PARAM, "template key");
        return 0;
    }
    gc->g = t->g;
    return 1;
}

static void *
gen(void *vgen, OSSL_CALLBACK *cb, void *cbarg)
{
    struct gen_ctx *gc = vgen;
    struct ks_args_kex_keygen a;
    struct key *k;
    uint64_t h = 0;
    size_t written = 0;

    (void) cb;
    (void) cbarg;
    if ((gc->selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
        == OSSL_KEYMGMT_SELECT_PUBLIC_KEY)
    {
        return NULL;                /* a public key alone cannot be made */
    }
    if (gc->g == NULL) {
        KSP_ERR(gc->pc, KSP_R_BAD_PARAM, "%s key without a group",
                gc->fam->name);
        return NULL;
    }
    if ((k = key_new(gc->pc, gc->fam)) == NULL) {
        return NULL;
    }
    k->g = gc->g;
    if ((gc->selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0) {
        return k;                   /* "parameters": the group alone */
    }
    if ((k->priv = calloc(1, sizeof(*k->priv))) == NULL) {
        key_free(k);
        return NULL;
    }
    k->priv->refs = 1;
    k->priv->pc = gc->pc;
    memset(&a, 0, sizeof(a));
    a.group = k->g->ks_group;
    a.handle = &h;
    a.pub = k->pub;
    a.publen = sizeof(k->pub);
    a.pub_written = &written;
    if (ksp_gate(gc->pc, KS_OP_KEX_KEYGEN, &a, "keygen") != 0
        || written != k->g->publen)
    {
        k->priv->handle = h;        /* 0 if none was made */
        key_free(k);
        return NULL;
    }
    k->priv->handle = h;
    k->has_pub = 1;
    return k;
}

static void
gen_cleanup(void *vgen)
{
    free(vgen);
}

#define KEYMGMT_FNS(tag, fam, types, gettable, gen_settable, extra)         \
static void *tag##_new(void *provctx)                                       \
{ return key_new(provctx, &fam); }                                          \
static void *tag##_gen_init(void *provctx, int selection,                   \
    const OSSL_PARAM params[])                                              \
{ return gen_init(provctx, &fam, selection, params); }                      \
static const OSSL_DISPATCH tag##_keymgmt_functions[] = {                    \
    { OSSL_FUNC_KEYMGMT_NEW, (ksp_fn) tag##_new },                          \
    { OSSL_FUNC_KEYMGMT_FREE, (ksp_fn) key_free },                          \
    { OSSL_FUNC_KEYMGMT_GET_PARAMS, (ksp_fn) key_get_params },              \
    { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (ksp_fn) gettable },               \
    { OSSL_FUNC_KEYMGMT_SET_PARAMS, (ksp_fn) key_set_params },              \
    { OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, (ksp_fn) key_settable_params },    \
    { OSSL_FUNC_KEYMGMT_HAS, (ksp_fn) key_has },                            \
    { OSSL_FUNC_KEYMGMT_MATCH, (ksp_fn) key_match },                        \
    { OSSL_FUNC_KEYMGMT_VALIDATE, (ksp_fn) key_validate },                  \
    { OSSL_FUNC_KEYMGMT_IMPORT, (ksp_fn) key_import },                      \
    { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (ksp_fn) types },                     \
    { OSSL_FUNC_KEYMGMT_EXPORT, (ksp_fn) key_export },                      \
    { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (ksp_fn) types },                     \
    { OSSL_FUNC_KEYMGMT_GEN_INIT, (ksp_fn) tag##_gen_init },                \
    { OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE, (ksp_fn) gen_set_template },      \
    { OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (ksp_fn) gen_set_params },          \
    { OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, (ksp_fn) gen_settable },       \
    { OSSL_FUNC_KEYMGMT_GEN, (ksp_fn) gen },                                \
    { OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (ksp_fn) gen_cleanup },                \
    { OSSL_FUNC_KEYMGMT_DUP, (ksp_fn) key_dup },                            \
    extra                                                                   \
    OSSL_DISPATCH_END                                                       \
};

/* ---- EC signing keys (ksp_sig.c): a KS_HT_PKEY handle in tkey -------- */

void *
ksp_ec_key_new_signing(struct ksp_provctx *pc, const char *group,
    const unsigned char *pub, size_t publen, uint64_t handle)
{
    struct key *k = key_new(pc, &f_ec);

    if (k == NULL) {
        return NULL;
    }
    k->priv = calloc(1, sizeof(*k->priv));
    if (k->priv == NULL || !key_set_group(k, group)
        || !key_set_pub(k, pub, publen))
    {
        if (k->priv == NULL) {
            ksp_free_handle(pc, handle);
        } else {
            k->priv->refs = 1;
            k->priv->pc = pc;
            k->priv->handle = handle;
        }
        key_free(k);
        return NULL;
    }
    k->priv->refs = 1;
    k->priv->pc = pc;
    k->priv->handle = handle;       /* KS_HT_PKEY: T refuses it for ECDH */
    return k;
}

int
ksp_ec_key_info(const void *vkey, uint64_t *handle, const char **group,
    const unsigned char **pub, size_t *publen, int *maxsize)
{
    const struct key *k = vkey;

    if (k == NULL || k->fam != &f_ec || k->g == NULL || !k->has_pub) {
        return 0;
    }
    *handle = k->priv != NULL ? k->priv->handle : 0;
    *group = k->g->name;
    *pub = k->pub;
    *publen = k->g->publen;
    *maxsize = k->g->maxsize;
    return 1;
}

/* The store's reference (ksp_sig.c): a pointer to a key, taken over. */
static void *
ec_load(const void *reference, size_t reference_sz)
{
    struct key *k;

    if (reference == NULL || reference_sz != sizeof(k)) {
        return NULL;
    }
    k = *(struct key **) reference;
    *(struct key **) reference = NULL;
    return k;
}

#define NO_EXTRA
#define EC_EXTRA                                                            \
    { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,                               \
      (ksp_fn) ec_query_operation_name },                                   \
    { OSSL_FUNC_KEYMGMT_LOAD, (ksp_fn) ec_load },

KEYMGMT_FNS(x25519, f_x25519, key_imexport_types, key_gettable_params,
            gen_settable_params, NO_EXTRA)
KEYMGMT_FNS(x448, f_x448, key_imexport_types, key_gettable_params,
            gen_settable_params, NO_EXTRA)
KEYMGMT_FNS(ec, f_ec, ec_imexport_types, ec_gettable_params,
            ec_gen_settable_params, EC_EXTRA)
KEYMGMT_FNS(x25519mlkem768, f_x25519mlkem768, key_imexport_types,
            key_gettable_params, gen_settable_params, NO_EXTRA)

const OSSL_ALGORITHM ksp_keymgmts[] = {
    { "X25519:1.3.101.110", KSP_PROPS, x25519_keymgmt_functions,
      "X25519 with the private key in T (mpk-tls keystore)" },
    { "X448:1.3.101.111", KSP_PROPS, x448_keymgmt_functions,
      "X448 with the private key in T (mpk-tls keystore)" },
    { "EC:id-ecPublicKey:1.2.840.10045.2.1", KSP_PROPS, ec_keymgmt_functions,
      "EC P-256/P-384/P-521 with the private key in T (mpk-tls keystore)" },
    { "X25519MLKEM768", KSP_PROPS, x25519mlkem768_keymgmt_functions,
      "X25519MLKEM768 with the private key in T (mpk-tls keystore)" },
    { "RSA:rsaEncryption:1.2.840.113549.1.1.1", KSP_PROPS,
      ksp_rsa_keymgmt_functions,
      "RSA signing keys loaded by T (keystore: store; mpk-tls keystore)" },
    { "ED25519:1.3.101.112", KSP_PROPS, ksp_ed25519_keymgmt_functions,
      "Ed25519 signing keys loaded by T (keystore: store; mpk-tls keystore)" },
    { NULL, NULL, NULL, NULL }
};

/* ---- the init markers ---------------------------------------------------- */

/* 1 if params carry mpktls-out=secret, 0 if no mpktls-out, -1 if another */
static int
marked_secret(struct ksp_provctx *pc, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p = ksp_param_find(params, KSP_MARK_OUT);
    const char *s;

    if (p == NULL) {
        return 0;
    }
    if (!ksp_param_get_utf8(p, &s) || strcmp(s, KSP_OUT_SECRET) != 0) {
        KSP_ERR(pc, KSP_R_BAD_MARKER, "key exchange output other than a secret");
        return -1;
    }
    return 1;
}

/* ---- X25519, X448 and ECDH key exchange ---------------------------------- */

/*
 * The context of a key exchange or a KEM operation: the key (ours) and,
 * for a key exchange, the peer's.  newctx/freectx/dupctx serve both.
 */
struct op_ctx {
    struct ksp_provctx  *pc;
    const struct family *fam;               /* the keys it takes */
    struct key          *key, *peer;        /* peer: key exchange only */
    int                  marked;
};

static void *
op_newctx(struct ksp_provctx *pc, const struct family *fam)
{
    struct op_ctx *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->pc = pc;
        c->fam = fam;
    }
    return c;
}

static void
op_freectx(void *vctx)
{
    struct op_ctx *c = vctx;

    if (c != NULL) {
        key_free(c->key);
        key_free(c->peer);
        free(c);
    }
}

static void *
op_dupctx(void *vctx)
{
    struct op_ctx *src = vctx, *c = malloc(sizeof(*c));

    if (c != NULL) {
        *c = *src;
        if (c->key != NULL) {
            key_up(c->key);
        }
        if (c->peer != NULL) {
            key_up(c->peer);
        }
    }
    return c;
}

/*
 * ECDH parameters that would change the output (cofactor mode on these
 * curves does not: their cofactor is 1; a KDF after the exchange does):
 * refused rather than ignored.
 */
static int
exch_params_ok(struct op_ctx *c, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p = ksp_param_find(params, OSSL_EXCHANGE_PARAM_KDF_TYPE);
    const char *s;

    if (p != NULL && (!ksp_param_get_utf8(p, &s) || s[0] != '\0')) {
        KSP_ERR(c->pc, KSP_R_NOT_SUPPORTED, "%s", p->key);
        return 0;
    }
    return 1;
}

static int
exch_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    struct op_ctx *c = vctx;
    struct key *k = vkey;
    int m = marked_secret(c->pc, params);

    if (m < 0 || k == NULL || k->fam != c->fam || k->g == NULL) {
        return 0;
    }
    if (!exch_params_ok(c, params)) {
        return 0;
    }
    key_free(c->key);
    c->key = key_up(k);
    c->marked = m;
    return 1;
}

static int
exch_set_peer(void *vctx, void *vpeer)
{
    struct op_ctx *c = vctx;
    struct key *p = vpeer;

    if (p == NULL || p->fam != c->fam || !p->has_pub
        || (c->key != NULL && p->g != c->key->g))
    {
        KSP_ERR(c->pc, KSP_R_BAD_PARAM, "peer key of another group");
        return 0;
    }
    key_free(c->peer);
    c->peer = key_up(p);
    return 1;
}

static int
exch_derive(void *vctx, unsigned char *secret, size_t *secretlen,
    size_t outlen)
{
    struct op_ctx *c = vctx;
    struct ks_args_kex_derive a;
    size_t n;

    if (c->key == NULL) {
        return 0;
    }
    n = c->key->g->secretlen;
    if (secret == NULL) {
        *secretlen = n;
        return 1;
    }
    if (!c->marked) {
        KSP_ERR(c->pc, KSP_R_PRIVATE_KEY,
                "unmarked derive: a raw secret of a key in T cannot be had");
        return 0;
    }
    if (c->key->priv == NULL || c->peer == NULL || outlen < n
        || c->peer->g != c->key->g)
    {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.handle = c->key->priv->handle;
    a.peer = c->peer->pub;
    a.peerlen = c->peer->g->publen;
    a.secret = secret;
    a.secretlen = n;
    if (ksp_gate(c->pc, KS_OP_KEX_DERIVE, &a, "derive") != 0) {
        return 0;
    }
    *secretlen = n;
    return 1;
}

#define EXCH_FNS(tag, fam)                                                  \
static void *tag##_exch_newctx(void *provctx)                               \
{ return op_newctx(provctx, &fam); }                                        \
static const OSSL_DISPATCH tag##_exch_functions[] = {                       \
    { OSSL_FUNC_KEYEXCH_NEWCTX, (ksp_fn) tag##_exch_newctx },               \
    { OSSL_FUNC_KEYEXCH_INIT, (ksp_fn) exch_init },                         \
    { OSSL_FUNC_KEYEXCH_SET_PEER, (ksp_fn) exch_set_peer },                 \
    { OSSL_FUNC_KEYEXCH_DERIVE, (ksp_fn) exch_derive },                     \
    { OSSL_FUNC_KEYEXCH_FREECTX, (ksp_fn) op_freectx },                     \
    { OSSL_FUNC_KEYEXCH_DUPCTX, (ksp_fn) op_dupctx },                       \
    OSSL_DISPATCH_END                                                       \
};

EXCH_FNS(x25519, f_x25519)
EXCH_FNS(x448, f_x448)
EXCH_FNS(ecdh, f_ec)

const OSSL_ALGORITHM ksp_keyexchs[] = {
    { "X25519:1.3.101.110", KSP_PROPS, x25519_exch_functions,
      "X25519 with sealed shared secrets (mpk-tls keystore)" },
    { "X448:1.3.101.111", KSP_PROPS, x448_exch_functions,
      "X448 with sealed shared secrets (mpk-tls keystore)" },
    { "ECDH", KSP_PROPS, ecdh_exch_functions,
      "ECDH (P-256/P-384/P-521), sealed shared secrets (mpk-tls keystore)" },
    { NULL, NULL, NULL, NULL }
};

/* ---- X25519MLKEM768 KEM -------------------------------------------------- */

static int
kem_init(void *vctx, void *vkey, const OSSL_PARAM params[])
{
    struct op_ctx *c = vctx;
    struct key *k = vkey;
    int m = marked_secret(c->pc, params);

    if (m < 0 || k == NULL || k->fam != c->fam || k->g->ctlen == 0) {
        return 0;
    }
    key_free(c->key);
    c->key = key_up(k);
    c->marked = m;
    return 1;
}

static int
kem_encapsulate(void *vctx, unsigned char *out, size_t *outlen,
    unsigned char *secret, size_t *secretlen)
{
    struct op_ctx *c = vctx;
    const struct group *g;
    struct ks_args_kem_encap a;
    size_t written = 0;

    if (c->key == NULL || !c->key->has_pub) {
        return 0;
    }
    g = c->key->g;
    if (out == NULL) {
        if (outlen == NULL && secretlen == NULL) {
            return 0;
        }
        if (outlen != NULL) {
            *outlen = g->ctlen;
        }
        if (secretlen != NULL) {
            *secretlen = g->secretlen;
        }
        return 1;
    }
    if (!c->marked) {
        KSP_ERR(c->pc, KSP_R_PRIVATE_KEY,
                "unmarked encapsulate: the secret would be raw");
        return 0;
    }
    if (secret == NULL || outlen == NULL || secretlen == NULL
        || *outlen < g->ctlen || *secretlen < g->secretlen)
    {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.group = g->ks_group;
    a.peer = c->key->pub;
    a.peerlen = g->publen;
    a.ct = out;
    a.ctlen = *outlen;
    a.ct_written = &written;
    a.secret = secret;
    a.secretlen = g->secretlen;
    if (ksp_gate(c->pc, KS_OP_KEM_ENCAP, &a, "encapsulate") != 0
        || written != g->ctlen)
    {
        return 0;
    }
    *outlen = written;
    *secretlen = g->secretlen;
    return 1;
}

static int
kem_decapsulate(void *vctx, unsigned char *out, size_t *outlen,
    const unsigned char *in, size_t inlen)
{
    struct op_ctx *c = vctx;
    const struct group *g;
    struct ks_args_kem_decap a;

    if (c->key == NULL || c->key->priv == NULL) {
        return 0;
    }
    g = c->key->g;
    if (out == NULL) {
        if (outlen == NULL) {
            return 0;
        }
        *outlen = g->secretlen;
        return 1;
    }
    if (!c->marked) {
        KSP_ERR(c->pc, KSP_R_PRIVATE_KEY,
                "unmarked decapsulate: a raw secret of a key in T cannot be had");
        return 0;
    }
    if ((outlen != NULL && *outlen < g->secretlen) || inlen != g->ctlen) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.handle = c->key->priv->handle;
    a.ct = in;
    a.ctlen = inlen;
    a.secret = out;
    a.secretlen = g->secretlen;
    if (ksp_gate(c->pc, KS_OP_KEM_DECAP, &a, "decapsulate") != 0) {
        return 0;
    }
    if (outlen != NULL) {
        *outlen = g->secretlen;
    }
    return 1;
}

static int
kem_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    (void) vctx;
    (void) params;
    return 1;                       /* as the default's hybrid: none used */
}

static const OSSL_PARAM *
kem_settable_ctx_params(void *vctx, void *provctx)
{
    (void) vctx;
    (void) provctx;
    return no_types;
}

static void *
x25519mlkem768_kem_newctx(void *provctx)
{
    return op_newctx(provctx, &f_x25519mlkem768);
}

static const OSSL_DISPATCH x25519mlkem768_kem_functions[] = {
    { OSSL_FUNC_KEM_NEWCTX, (ksp_fn) x25519mlkem768_kem_newctx },
    { OSSL_FUNC_KEM_ENCAPSULATE_INIT, (ksp_fn) kem_init },
    { OSSL_FUNC_KEM_ENCAPSULATE, (ksp_fn) kem_encapsulate },
    { OSSL_FUNC_KEM_DECAPSULATE_INIT, (ksp_fn) kem_init },
    { OSSL_FUNC_KEM_DECAPSULATE, (ksp_fn) kem_decapsulate },
    { OSSL_FUNC_KEM_FREECTX, (ksp_fn) op_freectx },
    { OSSL_FUNC_KEM_DUPCTX, (ksp_fn) op_dupctx },
    { OSSL_FUNC_KEM_SET_CTX_PARAMS, (ksp_fn) kem_set_ctx_params },
    { OSSL_FUNC_KEM_SETTABLE_CTX_PARAMS, (ksp_fn) kem_settable_ctx_params },
    OSSL_DISPATCH_END
};

const OSSL_ALGORITHM ksp_kems[] = {
    { "X25519MLKEM768", KSP_PROPS, x25519mlkem768_kem_functions,
      "X25519MLKEM768 as one unit, sealed 64-byte secret (mpk-tls keystore)" },
    { NULL, NULL, NULL, NULL }
};
