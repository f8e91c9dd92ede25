/*
 * KDF and MAC operations in T.  See ks_op_kdf.h for the API and the
 * output-class table; this file is its implementation.
 *
 * Every request is handled in the same order, so that a refused request
 * has done nothing: check the numbers, check every U pointer, copy every
 * input into T (U may change its memory while we run: the label and seeds
 * the policy looks at must be the bytes we derive from), decide the output
 * class, unseal the token inputs, derive into a T buffer, seal, and only
 * then write to U.  All T copies are cleansed on the way out.
 *
 * The derivations are OpenSSL's own KDFs (TLS13-KDF, HKDF, TLS1-PRF) and
 * HMAC from the private libcrypto, called with the parameters libssl uses
 * (tls13_enc.c, t1_enc.c), so results match libssl's byte for byte.
 */

#include "ks_ops.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "ks_range.h"
#include "ks_seal.h"

/*
 * Bounds.  Labels go into a one-byte length (HkdfLabel), and libssl
 * refuses TLS 1.3 labels longer than 249 so that "tls13 " fits in front.
 * A TLS 1.3 context is a one-byte-length vector.  The rest are generous
 * for TLS (a TLS 1.2 exporter seed is label + 64 + 2 + context) and keep
 * every copy on the T stack.
 */
#define LABEL_MAX        255
#define TLS13_LABEL_MAX  249
#define TLS13_DATA_MAX   255
#define DATA_MAX         1024               /* TLS1-PRF seeds */
#define IN_MAX           1024               /* raw keys and salts */
#define OUT_MAX          1024               /* clear outputs (exporters) */

#define TLS13_PREFIX     "tls13 "
#define TLS13_DERIVED    "derived"

struct md_info {
    const char  *name;                      /* the private libcrypto's name */
    size_t       len;
};

static const struct md_info  mds[] = {
    [KS_MD_SHA256] = { "SHA2-256", 32 },
    [KS_MD_SHA384] = { "SHA2-384", 48 },
    [KS_MD_SHA512] = { "SHA2-512", 64 },
};

static const char *const  kdf_names[] = {
    [KS_KDF_TLS13] = "TLS13-KDF",
    [KS_KDF_HKDF] = "HKDF",
    [KS_KDF_TLS1_PRF] = "TLS1-PRF",
};

_Static_assert(KS_KDF_EXTRACT_AND_EXPAND == EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND
               && KS_KDF_EXTRACT_ONLY == EVP_KDF_HKDF_MODE_EXTRACT_ONLY
               && KS_KDF_EXPAND_ONLY == EVP_KDF_HKDF_MODE_EXPAND_ONLY,
               "ks_kdf_mode must be OpenSSL's HKDF mode numbers");

/* Fetched once, on first use (fetching walks the provider's tables and
 * allocates); T data, so U cannot swap them. */
static EVP_KDF  *kdf_cache[sizeof(kdf_names) / sizeof(kdf_names[0])];
static EVP_MAC  *hmac_cache;

static const struct md_info *
md_get(uint32_t md)
{
    if (md >= sizeof(mds) / sizeof(mds[0]) || mds[md].name == NULL) {
        return NULL;
    }
    return &mds[md];
}

static EVP_KDF *
kdf_get(uint32_t kdf)
{
    if (kdf_cache[kdf] == NULL) {
        kdf_cache[kdf] = EVP_KDF_fetch(NULL, kdf_names[kdf], NULL);
    }
    return kdf_cache[kdf];
}

static EVP_MAC *
hmac_get(void)
{
    if (hmac_cache == NULL) {
        hmac_cache = EVP_MAC_fetch(NULL, "HMAC", NULL);
    }
    return hmac_cache;
}

/* 1 if the n bytes at p (a copy in T) are exactly the string s. */
static int
is(const unsigned char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* 1 if the n bytes at p start with the string s. */
static int
starts(const unsigned char *p, size_t n, const char *s)
{
    return n >= strlen(s) && memcmp(p, s, strlen(s)) == 0;
}

/* memcpy, but n == 0 may come with a NULL pointer from U */
static void
copy_in(unsigned char *t, const unsigned char *u, size_t n)
{
    if (n > 0) {
        memcpy(t, u, n);
    }
}

/* ---- the request, copied into T ------------------------------------------- */

struct kdf_req {
    const struct md_info  *md;
    unsigned char          key[IN_MAX];
    unsigned char          salt[IN_MAX];
    unsigned char          label[LABEL_MAX];
    unsigned char          data[DATA_MAX];
    unsigned char          out[OUT_MAX];
};

/*
 * The shape of a request, independent of sealing: modes, which inputs each
 * KDF takes, lengths.  0 or KS_ERR_ARG.  Inputs a KDF does not use must be
 * absent, so that no caller believes T looked at them.
 */
static long
check_shape(const struct ks_args_kdf *a, const struct md_info *md)
{
    if (a->key_is_token > 1 || a->salt_is_token > 1
        || (a->key_is_token && a->keylen == 0)
        || (a->salt_is_token && a->saltlen == 0)
        || a->keylen > IN_MAX || a->saltlen > IN_MAX
        || a->labellen > LABEL_MAX || a->datalen > DATA_MAX
        || a->outlen == 0 || a->outlen > OUT_MAX)
    {
        return KS_ERR_ARG;
    }
    if (a->out_class != KS_OUT_KEYBLOCK
        && (a->kb_mac_len | a->kb_key_len | a->kb_iv_len) != 0)
    {
        return KS_ERR_ARG;
    }

    switch (a->kdf) {
    case KS_KDF_TLS13:
        if (a->labellen > TLS13_LABEL_MAX) {
            return KS_ERR_ARG;
        }
        if (a->mode == KS_KDF_EXTRACT_ONLY) {
            /* libssl's tls13_generate_secret: key optional (absent: the
             * zero key), salt optional (the previous secret, hash length),
             * label "derived", no data, hash-length output */
            return a->datalen == 0 && a->outlen == md->len
                   && (a->saltlen == 0 || a->saltlen == md->len)
                   ? 0 : KS_ERR_ARG;
        }
        if (a->mode == KS_KDF_EXPAND_ONLY) {
            /* tls13_hkdf_expand_ex: key = a secret of hash length */
            return a->labellen > 0 && a->keylen == md->len
                   && a->saltlen == 0 && a->datalen <= TLS13_DATA_MAX
                   ? 0 : KS_ERR_ARG;
        }
        return KS_ERR_ARG;          /* OpenSSL's TLS13-KDF has no mode 0 */

    case KS_KDF_HKDF:
        if (a->keylen == 0 || a->datalen != 0) {
            return KS_ERR_ARG;
        }
        switch (a->mode) {
        case KS_KDF_EXTRACT_ONLY:
            return a->labellen == 0 && a->outlen == md->len ? 0 : KS_ERR_ARG;
        case KS_KDF_EXPAND_ONLY:
            return a->saltlen == 0 ? 0 : KS_ERR_ARG;
        case KS_KDF_EXTRACT_AND_EXPAND:
            return 0;
        default:
            return KS_ERR_ARG;
        }

    case KS_KDF_TLS1_PRF:
        /* secret = key, seed = data (label first); no mode, salt, label */
        return a->mode == 0 && a->keylen > 0 && a->saltlen == 0
               && a->labellen == 0 && a->datalen > 0 ? 0 : KS_ERR_ARG;

    default:
        return KS_ERR_ARG;
    }
}

/* 1 if the TLS 1.2 key-block layout is one the keystore serves: AEAD
 * suites only (no MAC key), AES-128/256 or ChaCha20 keys, 4-byte (GCM)
 * or 12-byte (ChaCha20-Poly1305) fixed IVs, and outlen matches it. */
static int
keyblock_ok(const struct ks_args_kdf *a)
{
    return a->kb_mac_len == 0
           && (a->kb_key_len == 16 || a->kb_key_len == 32)
           && (a->kb_iv_len == 4 || a->kb_iv_len == 12)
           && a->outlen == 2 * ((size_t) a->kb_mac_len + a->kb_key_len
                                + a->kb_iv_len);
}

/*
 * The class T gives the output when an input is a token: the table of
 * ks_op_kdf.h.  -1 where the table has no entry (a "key" or "finished"
 * output of an odd length, a "key expansion" block asked for as anything
 * but a key block, a secret of a length that cannot be sealed).  label
 * and data are the T copies.
 */
static int
token_class(const struct ks_args_kdf *a, const struct md_info *md,
    const unsigned char *label, const unsigned char *data)
{
    size_t n = a->outlen, dn = a->datalen;

    switch (a->kdf) {
    case KS_KDF_TLS13:
        if (a->mode == KS_KDF_EXTRACT_ONLY) {
            return KS_OUT_SECRET;
        }
        if (is(label, a->labellen, "key")) {
            return n == 16 || n == 32 ? KS_OUT_RECORD_KEY : -1;
        }
        if (is(label, a->labellen, "finished")) {
            return n == md->len ? KS_OUT_MAC_KEY : -1;
        }
        if (is(label, a->labellen, "iv") && n == 12) {
            return KS_OUT_CLEAR;
        }
        if (is(label, a->labellen, "exporter")) {
            return KS_OUT_CLEAR;
        }
        /* every other label, "iv" at another length included: a secret,
         * and TLS 1.3 secrets have the hash length.  (So an application's
         * exporter label "iv" gives a secret, as libssl asks; the labels
         * "key", "finished" and "exporter" fail as exporter labels, since
         * libssl asks for a secret and T decides otherwise: fail closed.) */
        return n == md->len ? KS_OUT_SECRET : -1;

    case KS_KDF_HKDF:
        return ks_seal_len_ok(n) ? KS_OUT_SECRET : -1;

    case KS_KDF_TLS1_PRF:
        /* On the concatenation of all seeds, so that splitting a reserved
         * label across seeds changes nothing. */
        if (starts(data, dn, "key expansion")) {
            return KS_OUT_KEYBLOCK;
        }
        if (starts(data, dn, "client finished")
            || starts(data, dn, "server finished"))
        {
            return n == 12 ? KS_OUT_CLEAR : KS_OUT_SECRET;
        }
        if (starts(data, dn, "master secret")
            || starts(data, dn, "extended master secret"))
        {
            return KS_OUT_SECRET;
        }
        return KS_OUT_CLEAR;        /* exporters */

    default:
        return -1;
    }
}

/* Whether out_class can be served at this length at all (raw inputs too):
 * sealed classes need a token length, key blocks a known layout. */
static int
class_len_ok(const struct ks_args_kdf *a)
{
    switch (a->out_class) {
    case KS_OUT_SECRET:
    case KS_OUT_RECORD_KEY:
    case KS_OUT_MAC_KEY:
        return ks_seal_len_ok(a->outlen);
    case KS_OUT_CLEAR:
        return 1;
    case KS_OUT_KEYBLOCK:
        return keyblock_ok(a);
    default:
        return 0;
    }
}

/* Copy a U input into T and, if it is a token, unseal it as a SECRET (the
 * only class a KDF takes).  0, KS_ERR_ARG (not a token length) or
 * KS_ERR_STATE (no sealing key). */
static long
take_input(unsigned char *t, const unsigned char *u, size_t len, int token)
{
    copy_in(t, u, len);
    if (len == 0 || !token) {
        return 0;
    }
    if (!ks_seal_len_ok(len)) {
        return KS_ERR_ARG;
    }
    return ks_unseal(t, t, len, KS_SEAL_SECRET) == 0 ? 0 : KS_ERR_STATE;
}

/* Run the KDF with libssl's parameters.  0 or KS_ERR_CRYPTO. */
static long
derive(const struct ks_args_kdf *a, struct kdf_req *r)
{
    static const char prefix[] = TLS13_PREFIX;
    static const char derived[] = TLS13_DERIVED;
    OSSL_PARAM params[8], *p = params;
    EVP_KDF *kdf = kdf_get(a->kdf);
    EVP_KDF_CTX *ctx;
    int mode = (int) a->mode, ok;

    if (kdf == NULL) {
        return KS_ERR_CRYPTO;
    }
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                            (char *) r->md->name, 0);
    if (a->kdf == KS_KDF_TLS1_PRF) {
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
                                                 r->key, a->keylen);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
                                                 r->data, a->datalen);
    } else {
        *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
        /* absent key: TLS13-KDF uses the zero key of hash length itself,
         * as for libssl's early secret without a PSK */
        if (a->keylen > 0) {
            *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                     r->key, a->keylen);
        }
        if (a->saltlen > 0) {
            *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                     r->salt, a->saltlen);
        }
    }
    if (a->kdf == KS_KDF_TLS13) {
        /* T's prefix and, for extract, T's "derived": never the caller's */
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX,
                                                 (char *) prefix,
                                                 sizeof(prefix) - 1);
        if (a->mode == KS_KDF_EXTRACT_ONLY) {
            *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL,
                                                     (char *) derived,
                                                     sizeof(derived) - 1);
        } else {
            *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL,
                                                     r->label, a->labellen);
            if (a->datalen > 0) {           /* as libssl: data if any */
                *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA,
                                                         r->data, a->datalen);
            }
        }
    } else if (a->kdf == KS_KDF_HKDF && a->labellen > 0) {
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                 r->label, a->labellen);
    }
    *p = OSSL_PARAM_construct_end();

    ctx = EVP_KDF_CTX_new(kdf);
    ok = ctx != NULL && EVP_KDF_derive(ctx, r->out, a->outlen, params) > 0;
    EVP_KDF_CTX_free(ctx);          /* cleanses the key and data copies */
    return ok ? 0 : KS_ERR_CRYPTO;
}

/* Seal r->out in place as class cls says.  0 or KS_ERR_STATE. */
static long
seal_output(const struct ks_args_kdf *a, unsigned cls, unsigned char *out)
{
    size_t k = a->kb_key_len, m = a->kb_mac_len;
    int rc;

    switch (cls) {
    case KS_OUT_SECRET:
        rc = ks_seal(out, out, a->outlen, KS_SEAL_SECRET);
        break;
    case KS_OUT_RECORD_KEY:
        rc = ks_seal(out, out, a->outlen, KS_SEAL_RECORD_KEY);
        break;
    case KS_OUT_MAC_KEY:
        rc = ks_seal(out, out, a->outlen, KS_SEAL_MAC_KEY);
        break;
    case KS_OUT_KEYBLOCK:
        /* client MAC, server MAC (none), client key, server key, client
         * IV, server IV: the keys become record-key tokens in place, the
         * fixed IVs stay clear */
        rc = ks_seal(out + 2 * m, out + 2 * m, k, KS_SEAL_RECORD_KEY) != 0
             || ks_seal(out + 2 * m + k, out + 2 * m + k, k,
                        KS_SEAL_RECORD_KEY) != 0 ? -1 : 0;
        break;
    default:                        /* KS_OUT_CLEAR */
        rc = 0;
        break;
    }
    return rc == 0 ? 0 : KS_ERR_STATE;
}

long
ks_op_kdf(void *args)
{
    const struct ks_args_kdf *a = args;
    const struct md_info *md = md_get(a->md);
    struct kdf_req r;
    long rc;
    int cls;

    if (md == NULL || a->kdf >= sizeof(kdf_names) / sizeof(kdf_names[0])
        || kdf_names[a->kdf] == NULL || check_shape(a, md) != 0
        || !class_len_ok(a))
    {
        return KS_ERR_ARG;
    }
    if (!ks_range_u_ok(a->key, a->keylen) || !ks_range_u_ok(a->salt, a->saltlen)
        || !ks_range_u_ok(a->label, a->labellen)
        || !ks_range_u_ok(a->data, a->datalen)
        || !ks_range_u_ok(a->out, a->outlen))
    {
        return KS_ERR_ARG;
    }

    /* the policy reads the T copies only */
    r.md = md;
    copy_in(r.label, a->label, a->labellen);
    copy_in(r.data, a->data, a->datalen);
    if (a->kdf == KS_KDF_TLS13 && a->mode == KS_KDF_EXTRACT_ONLY
        && !is(r.label, a->labellen, TLS13_DERIVED))
    {
        return KS_ERR_ARG;          /* libssl always sends "derived" */
    }
    if (a->key_is_token || a->salt_is_token) {
        /* T decides; the caller's out_class must agree, else nothing */
        cls = token_class(a, md, r.label, r.data);
        if (cls < 0 || (unsigned) cls != a->out_class) {
            return KS_ERR_ARG;
        }
    } else {
        /* raw inputs (external PSKs, the zero early-secret input): the
         * caller knows them, so any class gives nothing away */
        cls = (int) a->out_class;
    }

    rc = take_input(r.key, a->key, a->keylen, a->key_is_token);
    if (rc == 0) {
        rc = take_input(r.salt, a->salt, a->saltlen, a->salt_is_token);
    }
    if (rc == 0) {
        rc = derive(a, &r);
    }
    if (rc == 0) {
        rc = seal_output(a, (unsigned) cls, r.out);
    }
    if (rc == 0) {
        memcpy(a->out, r.out, a->outlen);
    }
    OPENSSL_cleanse(r.key, a->keylen);
    OPENSSL_cleanse(r.salt, a->saltlen);
    OPENSSL_cleanse(r.out, a->outlen);
    return rc;
}

/*
 * HMAC: TLS 1.3 Finished and binders with a MAC-key token, or any HMAC with
 * a raw key.  A token is unsealed as KS_SEAL_MAC_KEY only: a secret's token
 * (a traffic secret) gives an unrelated key here, so HMAC(S, HkdfLabel ||
 * 0x01), which is HKDF-Expand-Label(S, "key"), cannot be asked for.  The
 * MAC is public (verify data), so it leaves T clear.
 */
long
ks_op_mac(void *args)
{
    const struct ks_args_mac *a = args;
    const struct md_info *md = md_get(a->md);
    unsigned char key[IN_MAX], out[EVP_MAX_MD_SIZE];
    OSSL_PARAM params[2];
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx = NULL;
    size_t n = 0;
    long rc = KS_ERR_CRYPTO;

    /* a finished key is a hash-length token */
    if (md == NULL || a->key_is_token > 1 || a->outlen != md->len
        || a->keylen == 0 || a->keylen > IN_MAX
        || (a->key_is_token && a->keylen != md->len))
    {
        return KS_ERR_ARG;
    }
    if (!ks_range_u_ok(a->key, a->keylen) || !ks_range_u_ok(a->data, a->datalen)
        || !ks_range_u_ok(a->out, a->outlen))
    {
        return KS_ERR_ARG;
    }
    memcpy(key, a->key, a->keylen);
    if (a->key_is_token && ks_unseal(key, key, a->keylen, KS_SEAL_MAC_KEY) != 0) {
        rc = KS_ERR_STATE;
        goto done;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) md->name, 0);
    params[1] = OSSL_PARAM_construct_end();
    mac = hmac_get();
    ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    /* the data is public and read in place: nothing depends on it */
    if (ctx != NULL && EVP_MAC_init(ctx, key, a->keylen, params)
        && EVP_MAC_update(ctx, a->data, a->datalen)
        && EVP_MAC_final(ctx, out, &n, sizeof(out)) && n == a->outlen)
    {
        memcpy(a->out, out, n);
        rc = 0;
    }
done:
    EVP_MAC_CTX_free(ctx);          /* cleanses the HMAC key schedule */
    OPENSSL_cleanse(key, a->keylen);
    OPENSSL_cleanse(out, sizeof(out));
    return rc;
}
