/*
 * Long-term private keys in T: KS_OP_PKEY_LOAD and KS_OP_SIGN.  See
 * ks_op_pkey.h.
 *
 * T reads the PEM file itself with open/read into a T heap buffer and
 * decodes it from there with the private libcrypto (a memory BIO), so the
 * file's bytes and the decoded key exist only in T.  Not BIO_new_file():
 * that reads through stdio, whose buffer libc allocates in U and does not
 * wipe — the whole PEM would be left in U's heap.  Only the public key
 * leaves T (as SubjectPublicKeyInfo DER, for U to match the certificate),
 * and signatures.
 */

#include "ks_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ks_handle.h"
#include "ks_heap.h"
#include "ks_range.h"

/* A key file with a certificate chain in it is still far below this. */
#define SIGN_PEM_MAX  (256u * 1024)

enum sign_kind {
    SIGN_RSA = 1,
    SIGN_EC,                    /* P-256, P-384 */
    SIGN_ED25519,
};

/* What a KS_HT_PKEY handle names. */
struct sign_key {
    EVP_PKEY        *pkey;
    enum sign_kind   kind;
};

static long
sign_done(long rc)
{
    ERR_clear_error();          /* as in ks_op_kex.c: nobody reads them */
    return rc;
}

/*
 * An encrypted key must fail, not prompt: without a callback the PEM code
 * would ask for a passphrase on the terminal, from inside T.
 */
static int
sign_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void) buf; (void) size; (void) rwflag; (void) u;
    return -1;
}

/*
 * The whole regular file path into a new T heap buffer: 0, or KS_ERR_ARG
 * (missing, unreadable, not a regular file, empty or too large).
 * O_NONBLOCK: opening a FIFO must not hang T; symlinks are followed, as
 * NGINX does for ssl_certificate_key (certbot's live/ links).
 */
static long
sign_read_file(const char *path, unsigned char **buf, size_t *len)
{
    struct stat st;
    unsigned char *p = NULL;
    size_t n = 0, size;
    ssize_t r;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return KS_ERR_ARG;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0
        || (unsigned long long) st.st_size > SIGN_PEM_MAX)
    {
        close(fd);
        return KS_ERR_ARG;
    }
    size = (size_t) st.st_size;
    p = ks_heap_alloc(size);
    if (p == NULL) {                    /* the T heap is full: not U's fault */
        close(fd);
        return KS_ERR_CRYPTO;
    }
    while (n < size) {
        r = read(fd, p + n, size - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;              /* an error, or it shrank: keep what is read */
        }
        n += (size_t) r;
    }
    close(fd);
    if (n == 0) {
        ks_heap_free(p);
        return KS_ERR_ARG;
    }
    *buf = p;
    *len = n;
    return 0;
}

/* The kinds of key this keystore signs with, and only those. */
static enum sign_kind
sign_kind_of(EVP_PKEY *pkey)
{
    char group[32];
    size_t glen = 0;

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        return SIGN_RSA;
    }
    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        return SIGN_ED25519;
    }
    if (EVP_PKEY_is_a(pkey, "EC")
        && EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1
        && (strcmp(group, "prime256v1") == 0
            || strcmp(group, "secp384r1") == 0))
    {
        return SIGN_EC;
    }
    return 0;
}

long
ks_op_pkey_load(void *args)
{
    struct ks_args_pkey_load *a = args;
    char path[PATH_MAX];
    unsigned char *pem = NULL, *der = NULL;
    size_t pemlen = 0, derlen;
    struct sign_key *k = NULL;
    BIO *bio = NULL;
    ks_handle_t h;
    long rc;
    int n;

    /* the path is copied into T with its length: no NUL hunting in U */
    if (a->pathlen == 0 || a->pathlen >= sizeof(path)
        || !ks_range_u_ok(a->path, a->pathlen)
        || !ks_range_u_ok(a->handle, sizeof(*a->handle))
        || !ks_range_u_ok(a->pub, a->publen)
        || !ks_range_u_ok(a->pub_written, sizeof(*a->pub_written)))
    {
        return KS_ERR_ARG;
    }
    memcpy(path, a->path, a->pathlen);
    path[a->pathlen] = '\0';
    if (memchr(path, '\0', a->pathlen) != NULL) {   /* "key.pem\0../x" */
        return KS_ERR_ARG;
    }
    rc = sign_read_file(path, &pem, &pemlen);
    if (rc != 0) {
        return rc;
    }
    rc = KS_ERR_CRYPTO;
    k = ks_heap_alloc(sizeof(*k));
    bio = pemlen <= INT_MAX ? BIO_new_mem_buf(pem, (int) pemlen) : NULL;
    if (k == NULL || bio == NULL) {
        goto fail;
    }
    k->pkey = PEM_read_bio_PrivateKey(bio, NULL, sign_no_passphrase, NULL);
    if (k->pkey == NULL) {
        goto fail;                          /* not a (clear) private key */
    }
    k->kind = sign_kind_of(k->pkey);
    if (k->kind == 0) {
        rc = KS_ERR_STATE;              /* a key, but not one we sign with */
        goto fail;
    }
    n = i2d_PUBKEY(k->pkey, &der);          /* public only, into the T heap */
    if (n <= 0) {
        goto fail;
    }
    derlen = (size_t) n;
    if (derlen > a->publen) {
        rc = KS_ERR_ARG;
        goto fail;
    }
    h = ks_handle_new(KS_HT_PKEY, k);
    if (h == 0) {
        rc = KS_ERR_STATE;
        goto fail;
    }
    memcpy(a->pub, der, derlen);
    memcpy(a->pub_written, &derlen, sizeof(derlen));
    memcpy(a->handle, &h, sizeof(h));
    rc = 0;
    k = NULL;                               /* the handle owns it now */
fail:
    OPENSSL_free(der);
    BIO_free(bio);
    OPENSSL_cleanse(pem, pemlen);
    ks_heap_free(pem);
    ks_op_pkey_destroy(k);
    return sign_done(rc);
}

/* libcrypto's digest name for an enum ks_md, NULL for none or unknown. */
static const char *
sign_md_name(uint32_t md)
{
    switch (md) {
    case KS_MD_SHA256: return "SHA2-256";
    case KS_MD_SHA384: return "SHA2-384";
    case KS_MD_SHA512: return "SHA2-512";
    default:           return NULL;
    }
}

/* 1 if (md, padding) is a scheme of this kind of key (TLS's list). */
static int
sign_scheme_ok(enum sign_kind kind, uint32_t md, uint32_t padding)
{
    switch (kind) {
    case SIGN_ED25519:
        return md == 0 && padding == KS_SIG_DEFAULT;    /* PureEdDSA */
    case SIGN_EC:
        return sign_md_name(md) != NULL && padding == KS_SIG_DEFAULT;
    case SIGN_RSA:
        return sign_md_name(md) != NULL
               && (padding == KS_SIG_RSA_PKCS1 || padding == KS_SIG_RSA_PSS);
    }
    return 0;
}

long
ks_op_sign(void *args)
{
    struct ks_args_sign *a = args;
    const struct sign_key *k = ks_handle_get(a->handle, KS_HT_PKEY);
    const char *mdname = sign_md_name(a->md);
    unsigned char *tbs = NULL, *sig = NULL;
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t max, siglen;
    long rc = KS_ERR_CRYPTO;
    int size;

    if (k == NULL) {
        return KS_ERR_STATE;
    }
    size = EVP_PKEY_get_size(k->pkey);      /* the longest signature */
    if (!sign_scheme_ok(k->kind, a->md, a->padding) || size <= 0
        || a->siglen < (size_t) size
        || !ks_range_u_ok(a->tbs, a->tbslen)
        || !ks_range_u_ok(a->sig, a->siglen)
        || !ks_range_u_ok(a->sig_written, sizeof(*a->sig_written)))
    {
        return KS_ERR_ARG;
    }
    max = (size_t) size;
    /*
     * Sign a T copy of the message.  Ed25519 reads it twice (r = H(prefix
     * || M), then k = H(R || A || M)): if another U thread changed M in
     * between, two signatures with the same r and different k would give
     * away the private key.  ECDSA and RSA would only sign garbage, but
     * one rule for all is simpler to check.
     */
    tbs = ks_heap_alloc(a->tbslen > 0 ? a->tbslen : 1);
    sig = ks_heap_alloc(max);
    mctx = EVP_MD_CTX_new();
    if (tbs == NULL || sig == NULL || mctx == NULL) {
        goto done;
    }
    memcpy(tbs, a->tbs, a->tbslen);
    if (EVP_DigestSignInit_ex(mctx, &pctx, k->kind == SIGN_ED25519 ? NULL
                              : mdname, NULL, NULL, k->pkey, NULL) <= 0)
    {
        goto done;
    }
    if (k->kind == SIGN_RSA && a->padding == KS_SIG_RSA_PKCS1
        && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
    {
        goto done;
    }
    /* RFC 8446 4.2.3: salt as long as the digest, MGF1 with the same md */
    if (k->kind == SIGN_RSA && a->padding == KS_SIG_RSA_PSS
        && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                RSA_PSS_SALTLEN_DIGEST) <= 0
            || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, mdname, NULL) <= 0))
    {
        goto done;
    }
    siglen = max;
    if (EVP_DigestSign(mctx, sig, &siglen, tbs, a->tbslen) <= 0
        || siglen == 0 || siglen > max)
    {
        goto done;
    }
    memcpy(a->sig, sig, siglen);
    memcpy(a->sig_written, &siglen, sizeof(siglen));
    rc = 0;
done:
    EVP_MD_CTX_free(mctx);                  /* frees pctx too */
    ks_heap_free(sig);
    ks_heap_free(tbs);
    return sign_done(rc);
}

void
ks_op_pkey_destroy(void *obj)
{
    struct sign_key *k = obj;

    if (k != NULL) {
        EVP_PKEY_free(k->pkey);
        ks_heap_free(k);
    }
}
