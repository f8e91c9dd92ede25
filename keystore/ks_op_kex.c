/*
 * Key exchange and KEM in T: KS_OP_KEX_KEYGEN, KS_OP_KEX_DERIVE,
 * KS_OP_KEM_ENCAP, KS_OP_KEM_DECAP.  See ks_op_pkey.h.
 *
 * The private libcrypto does the work with the very calls libssl makes
 * (s3_lib.c: ssl_generate_pkey_group, ssl_generate_param_group, ssl_derive,
 * ssl_encapsulate, ssl_decapsulate) and the same algorithm names, so that
 * T computes exactly what libssl would.  Its allocator is the T heap: the
 * EVP_PKEYs and every intermediate live there.  Secrets are computed into
 * T stack buffers, sealed in place as KS_SEAL_SECRET and only then copied
 * to U; the buffers are cleansed on every path.
 *
 * Every operation checks all of its U pointers and sizes before it does
 * any work, and writes to U only after everything succeeded, so a refused
 * or failed call leaves U's buffers as they were.
 */

#include "ks_ops.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "ks_handle.h"
#include "ks_heap.h"
#include "ks_range.h"
#include "ks_seal.h"

/* The largest encoded key share, ciphertext and secret of any group. */
#define KEX_PUB_MAX     1216
#define KEX_CT_MAX      1120
#define KEX_SECRET_MAX  66

struct kex_group {
    const char  *alg;           /* keymgmt name, as libssl's TLS_GROUP_INFO */
    const char  *realname;      /* group name ("" for the hybrid, as libssl) */
    size_t       publen;        /* encoded public key (key share) */
    size_t       secretlen;     /* shared secret = token length */
    size_t       ctlen;         /* KEM ciphertext, 0 for (EC)DH */
};

/* Indexed by enum ks_group; names from providers/common/capabilities.c. */
static const struct kex_group kex_groups[] = {
    [KS_GROUP_X25519]         = { "X25519", "X25519", 32, 32, 0 },
    [KS_GROUP_X448]           = { "X448", "X448", 56, 56, 0 },
    [KS_GROUP_P256]           = { "EC", "prime256v1", 65, 32, 0 },
    [KS_GROUP_P384]           = { "EC", "secp384r1", 97, 48, 0 },
    [KS_GROUP_P521]           = { "EC", "secp521r1", 133, 66, 0 },
    [KS_GROUP_X25519MLKEM768] = { "X25519MLKEM768", "", 1216, 64, 1120 },
};

/* What a KS_HT_KEX handle names. */
struct kex_key {
    EVP_PKEY                *pkey;
    const struct kex_group  *group;
};

static const struct kex_group *
kex_group_get(uint32_t group)
{
    if (group == 0 || group >= sizeof(kex_groups) / sizeof(kex_groups[0])) {
        return NULL;
    }
    return &kex_groups[group];
}

/*
 * Errors of the private libcrypto stay in its queue (T heap) until
 * cleared; nobody reads them, so clear them after every operation rather
 * than let a peer's bad key shares grow the queue.
 */
static long
kex_done(long rc)
{
    ERR_clear_error();
    return rc;
}

/* A fresh key pair of the group, as ssl_generate_pkey_group() makes it. */
static EVP_PKEY *
kex_generate(const struct kex_group *g)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, g->alg, NULL);
    EVP_PKEY *pkey = NULL;

    if (pctx == NULL || EVP_PKEY_keygen_init(pctx) <= 0
        || EVP_PKEY_CTX_set_group_name(pctx, g->realname) <= 0
        || EVP_PKEY_keygen(pctx, &pkey) <= 0)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(pctx);
    return pkey;
}

/*
 * The peer's public key from its encoding (already copied into T): group
 * parameters as ssl_generate_param_group() makes them, then the encoded
 * key as tls13_set_encoded_pub_key() sets it.  EC points are checked to
 * lie on the curve by the import and again by EVP_PKEY_derive_set_peer().
 */
static EVP_PKEY *
kex_peer(const struct kex_group *g, const unsigned char *enc, size_t len)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, g->alg, NULL);
    EVP_PKEY *pkey = NULL;

    if (pctx == NULL || EVP_PKEY_paramgen_init(pctx) <= 0
        || EVP_PKEY_CTX_set_group_name(pctx, g->realname) <= 0
        || EVP_PKEY_paramgen(pctx, &pkey) <= 0
        || EVP_PKEY_set1_encoded_public_key(pkey, enc, len) <= 0)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(pctx);
    return pkey;
}

long
ks_op_kex_keygen(void *args)
{
    struct ks_args_kex_keygen *a = args;
    const struct kex_group *g = kex_group_get(a->group);
    struct kex_key *k = NULL;
    unsigned char *pub = NULL;
    size_t publen = 0;
    ks_handle_t h = 0;

    if (g == NULL || a->publen < g->publen
        || !ks_range_u_ok(a->handle, sizeof(*a->handle))
        || !ks_range_u_ok(a->pub, a->publen)
        || !ks_range_u_ok(a->pub_written, sizeof(*a->pub_written)))
    {
        return KS_ERR_ARG;
    }
    k = ks_heap_alloc(sizeof(*k));
    if (k == NULL) {
        return kex_done(KS_ERR_CRYPTO);
    }
    k->group = g;
    k->pkey = kex_generate(g);
    if (k->pkey != NULL) {
        publen = EVP_PKEY_get1_encoded_public_key(k->pkey, &pub);
    }
    if (pub == NULL || publen != g->publen) {
        OPENSSL_free(pub);
        ks_op_kex_destroy(k);
        return kex_done(KS_ERR_CRYPTO);
    }
    h = ks_handle_new(KS_HT_KEX, k);
    if (h == 0) {                           /* every slot in use */
        OPENSSL_free(pub);
        ks_op_kex_destroy(k);
        return kex_done(KS_ERR_STATE);
    }
    /* the public key share is public: it goes to U as it is */
    memcpy(a->pub, pub, publen);
    memcpy(a->pub_written, &publen, sizeof(publen));
    memcpy(a->handle, &h, sizeof(h));
    OPENSSL_free(pub);
    return kex_done(0);
}

long
ks_op_kex_derive(void *args)
{
    struct ks_args_kex_derive *a = args;
    unsigned char peer[KEX_PUB_MAX], ss[KEX_SECRET_MAX];
    const struct kex_key *k = ks_handle_get(a->handle, KS_HT_KEX);
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pub = NULL;
    size_t sslen = 0;
    long rc = KS_ERR_CRYPTO;

    /* a KEM key share has no derive: ENCAP/DECAP are its operations */
    if (k == NULL || k->group->ctlen != 0) {
        return KS_ERR_STATE;
    }
    if (a->peerlen != k->group->publen || a->secretlen != k->group->secretlen
        || !ks_range_u_ok(a->peer, a->peerlen)
        || !ks_range_u_ok(a->secret, a->secretlen))
    {
        return KS_ERR_ARG;
    }
    /* parse a T copy: U cannot change the key share while T reads it */
    memcpy(peer, a->peer, a->peerlen);
    pub = kex_peer(k->group, peer, a->peerlen);
    pctx = pub == NULL ? NULL : EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (pctx == NULL || EVP_PKEY_derive_init(pctx) <= 0
        || EVP_PKEY_derive_set_peer(pctx, pub) <= 0
        || EVP_PKEY_derive(pctx, NULL, &sslen) <= 0
        || sslen != a->secretlen)
    {
        goto done;
    }
    /* X25519/X448 refuse an all-zero result (a small-order peer point) */
    if (EVP_PKEY_derive(pctx, ss, &sslen) <= 0 || sslen != a->secretlen
        || ks_seal(ss, ss, sslen, KS_SEAL_SECRET) != 0)
    {
        goto done;
    }
    memcpy(a->secret, ss, sslen);
    rc = 0;
done:
    OPENSSL_cleanse(ss, sizeof(ss));
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pub);
    return kex_done(rc);
}

long
ks_op_kem_encap(void *args)
{
    struct ks_args_kem_encap *a = args;
    const struct kex_group *g = kex_group_get(a->group);
    unsigned char peer[KEX_PUB_MAX], ct[KEX_CT_MAX], ss[KEX_SECRET_MAX];
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pub = NULL;
    size_t ctlen = 0, sslen = 0;
    long rc = KS_ERR_CRYPTO;

    if (g == NULL || g->ctlen == 0 || a->peerlen != g->publen
        || a->ctlen < g->ctlen || a->secretlen != g->secretlen
        || !ks_range_u_ok(a->peer, a->peerlen)
        || !ks_range_u_ok(a->ct, a->ctlen)
        || !ks_range_u_ok(a->ct_written, sizeof(*a->ct_written))
        || !ks_range_u_ok(a->secret, a->secretlen))
    {
        return KS_ERR_ARG;
    }
    memcpy(peer, a->peer, a->peerlen);
    /*
     * As ssl_encapsulate(): the hybrid encapsulates to both components
     * (ML-KEM-768 encapsulation, X25519 with a fresh ephemeral key) and
     * returns ct and the 64-byte ML-KEM ss || X25519 ss as one unit, so
     * no half of the secret ever exists outside T.
     */
    pub = kex_peer(g, peer, a->peerlen);
    pctx = pub == NULL ? NULL : EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
    if (pctx == NULL || EVP_PKEY_encapsulate_init(pctx, NULL) <= 0
        || EVP_PKEY_encapsulate(pctx, NULL, &ctlen, NULL, &sslen) <= 0
        || ctlen != g->ctlen || sslen != g->secretlen)
    {
        goto done;
    }
    if (EVP_PKEY_encapsulate(pctx, ct, &ctlen, ss, &sslen) <= 0
        || ctlen != g->ctlen || sslen != g->secretlen
        || ks_seal(ss, ss, sslen, KS_SEAL_SECRET) != 0)
    {
        goto done;
    }
    memcpy(a->ct, ct, ctlen);
    memcpy(a->ct_written, &ctlen, sizeof(ctlen));
    memcpy(a->secret, ss, sslen);
    rc = 0;
done:
    OPENSSL_cleanse(ss, sizeof(ss));
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pub);
    return kex_done(rc);
}

long
ks_op_kem_decap(void *args)
{
    struct ks_args_kem_decap *a = args;
    unsigned char ct[KEX_CT_MAX], ss[KEX_SECRET_MAX];
    const struct kex_key *k = ks_handle_get(a->handle, KS_HT_KEX);
    EVP_PKEY_CTX *pctx = NULL;
    size_t sslen = 0;
    long rc = KS_ERR_CRYPTO;

    if (k == NULL || k->group->ctlen == 0) {    /* an (EC)DH key: derive */
        return KS_ERR_STATE;
    }
    if (a->ctlen != k->group->ctlen || a->secretlen != k->group->secretlen
        || !ks_range_u_ok(a->ct, a->ctlen)
        || !ks_range_u_ok(a->secret, a->secretlen))
    {
        return KS_ERR_ARG;
    }
    memcpy(ct, a->ct, a->ctlen);
    /* as ssl_decapsulate(); a bad ML-KEM ciphertext gives ML-KEM's
     * implicit-rejection secret, not an error, exactly as in libssl */
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (pctx == NULL || EVP_PKEY_decapsulate_init(pctx, NULL) <= 0
        || EVP_PKEY_decapsulate(pctx, NULL, &sslen, ct, a->ctlen) <= 0
        || sslen != a->secretlen)
    {
        goto done;
    }
    if (EVP_PKEY_decapsulate(pctx, ss, &sslen, ct, a->ctlen) <= 0
        || sslen != a->secretlen
        || ks_seal(ss, ss, sslen, KS_SEAL_SECRET) != 0)
    {
        goto done;
    }
    memcpy(a->secret, ss, sslen);
    rc = 0;
done:
    OPENSSL_cleanse(ss, sizeof(ss));
    EVP_PKEY_CTX_free(pctx);
    return kex_done(rc);
}

void
ks_op_kex_destroy(void *obj)
{
    struct kex_key *k = obj;

    if (k != NULL) {
        EVP_PKEY_free(k->pkey);         /* OpenSSL cleanses private keys */
        ks_heap_free(k);                /* and the T heap zeroes blocks */
    }
}
