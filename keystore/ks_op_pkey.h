/*
 * Key exchange, KEM and signature operations (T).
 *
 * Ephemeral private keys are generated in T and named by KS_HT_KEX
 * handles; only the encoded public key leaves T.  Every shared secret
 * (ECDH/X25519/X448 derive, X25519MLKEM768 encapsulation and
 * decapsulation, as one unit) leaves T only as a KS_SEAL_SECRET token of
 * its own length (32, 48, 56, 64, 66 bytes).  Long-term private keys are
 * read from their file by T itself (KS_OP_PKEY_LOAD) and named by
 * KS_HT_PKEY handles; they sign in T and are never exported.
 */

#ifndef KS_OP_PKEY_H
#define KS_OP_PKEY_H

#include <stddef.h>
#include <stdint.h>

struct ks_args_kex_keygen {
    uint32_t              group;            /* enum ks_group */
    uint64_t             *handle;           /* out: KS_HT_KEX */
    unsigned char        *pub;              /* out: encoded public key */
    size_t                publen;           /* room in pub */
    size_t               *pub_written;      /* out */
};

struct ks_args_kex_derive {
    uint64_t              handle;           /* KS_HT_KEX */
    const unsigned char  *peer;             /* the peer's encoded public key */
    size_t                peerlen;
    unsigned char        *secret;           /* out: SECRET token */
    size_t                secretlen;        /* must be the group's length */
};

struct ks_args_kem_encap {
    uint32_t              group;            /* KS_GROUP_X25519MLKEM768 */
    const unsigned char  *peer;             /* the client's key share */
    size_t                peerlen;
    unsigned char        *ct;               /* out: ciphertext (key share) */
    size_t                ctlen;            /* room in ct */
    size_t               *ct_written;       /* out */
    unsigned char        *secret;           /* out: SECRET token, 64 bytes */
    size_t                secretlen;
};

struct ks_args_kem_decap {
    uint64_t              handle;           /* KS_HT_KEX of that group */
    const unsigned char  *ct;
    size_t                ctlen;
    unsigned char        *secret;           /* out: SECRET token */
    size_t                secretlen;
};

struct ks_args_pkey_load {
    const char           *path;             /* PEM private key, read by T */
    size_t                pathlen;          /* without a NUL */
    uint64_t             *handle;           /* out: KS_HT_PKEY */
    unsigned char        *pub;              /* out: SubjectPublicKeyInfo DER */
    size_t                publen;
    size_t               *pub_written;
};

enum ks_sig_padding {
    KS_SIG_DEFAULT = 0,                     /* ECDSA, Ed25519 */
    KS_SIG_RSA_PKCS1,
    KS_SIG_RSA_PSS,                         /* salt length = digest length */
};

struct ks_args_sign {
    uint64_t              handle;           /* KS_HT_PKEY */
    uint32_t              md;               /* enum ks_md; 0 for Ed25519 */
    uint32_t              padding;          /* enum ks_sig_padding */
    const unsigned char  *tbs;              /* the message (hashed in T) */
    size_t                tbslen;
    unsigned char        *sig;              /* out */
    size_t                siglen;           /* room in sig */
    size_t               *sig_written;
};

long ks_op_kex_keygen(void *args);
long ks_op_kex_derive(void *args);
long ks_op_kem_encap(void *args);
long ks_op_kem_decap(void *args);
long ks_op_pkey_load(void *args);
long ks_op_sign(void *args);
void ks_op_kex_destroy(void *obj);          /* for KS_OP_FREE */
void ks_op_pkey_destroy(void *obj);

#endif /* KS_OP_PKEY_H */
