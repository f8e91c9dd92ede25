/*
 * AEAD record operations in T.  See ks_op_aead.h.
 *
 * A KS_HT_AEAD object is one EVP_CIPHER_CTX of the private libcrypto,
 * keyed once at KS_OP_AEAD_NEW and reused for every record: the per-record
 * path only sets the nonce (which resets GCM/Poly1305 state, as libssl's
 * tls13_cipher does), feeds AAD and data, and produces or checks the tag.
 * No allocation, no fetch, one gate crossing per record.
 *
 * Everything read from U that matters after a check (nonce, received tag,
 * the key token) is first copied into T, so a second thread in U cannot
 * change it between the check and the use.
 */

#include "ks_ops.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "ks_handle.h"
#include "ks_range.h"
#include "ks_seal.h"

/* lengths go to EVP as int */
_Static_assert(KS_ARG_LEN_MAX <= INT_MAX, "record length must fit an int");

/* The object behind a KS_HT_AEAD handle (T heap). */
struct ks_aead {
    EVP_CIPHER_CTX  *ctx;                   /* keyed; direction fixed */
    int              enc;                   /* 1 encrypt, 0 decrypt */
};

/* Algorithm number -> OpenSSL name and the one key length it takes. */
static const struct {
    const char  *name;
    size_t       keylen;
} algs[] = {
    [KS_AEAD_AES_128_GCM]       = { "AES-128-GCM", 16 },
    [KS_AEAD_AES_256_GCM]       = { "AES-256-GCM", 32 },
    [KS_AEAD_CHACHA20_POLY1305] = { "ChaCha20-Poly1305", 32 },
};

#define NALGS  (sizeof(algs) / sizeof(algs[0]))

/*
 * Ciphers fetched once from the private libcrypto and kept for the life
 * of the process (T data): an implicit fetch in every EVP_CipherInit_ex
 * would walk the method store for each new context.
 */
static EVP_CIPHER  *fetched[NALGS];

static EVP_CIPHER *
cipher_for(unsigned alg)
{
    if (fetched[alg] == NULL) {
        fetched[alg] = EVP_CIPHER_fetch(NULL, algs[alg].name, NULL);
    }
    return fetched[alg];
}

static void
aead_free(struct ks_aead *st)
{
    if (st != NULL) {
        EVP_CIPHER_CTX_free(st->ctx);       /* cleanses the key schedule */
        OPENSSL_clear_free(st, sizeof(*st));
    }
}

long
ks_op_aead_new(void *args)
{
    struct ks_args_aead_new *a = args;
    unsigned char key[32];
    struct ks_aead *st = NULL;
    EVP_CIPHER *cipher;
    ks_handle_t h;
    long rc;

    /* Every check before anything is made, so that writing the handle to
     * U cannot fail once the object exists. */
    if (a->alg == 0 || a->alg >= NALGS || a->enc > 1
        || a->keylen != algs[a->alg].keylen
        || !ks_range_u_ok(a->key, a->keylen)
        || !ks_range_u_ok(a->handle, sizeof(*a->handle)))
    {
        return KS_ERR_ARG;
    }
    cipher = cipher_for(a->alg);
    if (cipher == NULL) {
        ERR_clear_error();
        return KS_ERR_CRYPTO;
    }

    /* The token becomes the key only here, on the T stack; the class is
     * ours to choose: a SECRET or MAC_KEY token unseals to an unrelated
     * key, so a traffic secret cannot be used as a record key. */
    memcpy(key, a->key, a->keylen);
    if (ks_unseal(key, key, a->keylen, KS_SEAL_RECORD_KEY) != 0) {
        rc = KS_ERR_STATE;                  /* no sealing key */
        goto done;
    }

    rc = KS_ERR_CRYPTO;
    st = OPENSSL_zalloc(sizeof(*st));
    if (st == NULL) {
        goto done;
    }
    st->enc = (int) a->enc;
    st->ctx = EVP_CIPHER_CTX_new();
    /* key now, nonce per record; the default IV length of all three is
     * the 12 bytes of KS_AEAD_NONCE_LEN */
    if (st->ctx == NULL
        || !EVP_CipherInit_ex2(st->ctx, cipher, key, NULL, st->enc, NULL)
        || EVP_CIPHER_CTX_get_iv_length(st->ctx) != KS_AEAD_NONCE_LEN)
    {
        goto done;
    }
    h = ks_handle_new(KS_HT_AEAD, st);
    if (h == 0) {
        rc = KS_ERR_STATE;                  /* all handle slots in use */
        goto done;
    }
    memcpy(a->handle, &h, sizeof(h));       /* checked above */
    st = NULL;                              /* owned by the handle now */
    rc = 0;

done:
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != 0) {
        aead_free(st);
        ERR_clear_error();                  /* the error queue is T heap */
    }
    return rc;
}

long
ks_op_aead_record(void *args)
{
    struct ks_args_aead_record *a = args;
    unsigned char nonce[KS_AEAD_NONCE_LEN], tag[KS_AEAD_TAG_LEN];
    unsigned char fin[32];                  /* for Final, never U memory */
    struct ks_aead *st;
    EVP_CIPHER_CTX *ctx;
    int n = 0, fl = 0, ok;

    /* ks_range_u_ok also bounds aadlen and inlen by KS_ARG_LEN_MAX */
    if (!ks_range_u_ok(a->nonce, KS_AEAD_NONCE_LEN)
        || !ks_range_u_ok(a->aad, a->aadlen)
        || !ks_range_u_ok(a->in, a->inlen)
        || !ks_range_u_ok(a->out, a->inlen)
        || !ks_range_u_ok(a->tag, KS_AEAD_TAG_LEN))
    {
        return KS_ERR_ARG;
    }
    /* in == out is fine; a partial overlap would make the cipher read
     * its own output */
    if (a->in != a->out && a->inlen > 0
        && (uintptr_t) a->in < (uintptr_t) a->out + a->inlen
        && (uintptr_t) a->out < (uintptr_t) a->in + a->inlen)
    {
        return KS_ERR_ARG;
    }
    st = ks_handle_get(a->handle, KS_HT_AEAD);
    if (st == NULL) {
        return KS_ERR_STATE;                /* forged, stale, other type */
    }
    ctx = st->ctx;

    memcpy(nonce, a->nonce, sizeof(nonce));
    if (!st->enc) {
        memcpy(tag, a->tag, sizeof(tag));
    }
    /* a new nonce restarts the AEAD state, also after a failed record */
    ok = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, st->enc)
         && (a->aadlen == 0
             || EVP_CipherUpdate(ctx, NULL, &n, a->aad, (int) a->aadlen))
         && (a->inlen == 0
             || (EVP_CipherUpdate(ctx, a->out, &n, a->in, (int) a->inlen)
                 && (size_t) n == a->inlen))
         && (st->enc
             || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
                                    KS_AEAD_TAG_LEN, tag) > 0)
         /* AEAD Final writes no bytes: it computes or checks the tag */
         && EVP_CipherFinal_ex(ctx, fin, &fl) && fl == 0
         && (!st->enc
             || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG,
                                    KS_AEAD_TAG_LEN, tag) > 0);
    if (!ok) {
        /* decryption wrote unauthenticated plaintext: take it back (and a
         * failed encryption's output is not a record either) */
        if (a->inlen > 0) {
            memset(a->out, 0, a->inlen);
        }
        ERR_clear_error();
        return KS_ERR_CRYPTO;
    }
    if (st->enc) {
        memcpy(a->tag, tag, sizeof(tag));
    }
    return 0;
}

void
ks_op_aead_destroy(void *obj)
{
    aead_free(obj);
}
