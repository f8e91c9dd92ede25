/*
 * AEAD record operations (T): one gate crossing per TLS record.
 *
 * KS_OP_AEAD_NEW turns a record-key token (class KS_SEAL_RECORD_KEY) into
 * a cipher context in T and returns its handle; the key is unsealed only
 * in T.  KS_OP_AEAD_RECORD encrypts or decrypts one record: U computes the
 * per-record nonce (the static IV, which is public, XOR the sequence
 * number; or TLS 1.2's fixed IV and explicit nonce) and the AAD, T does
 * the cipher and the tag in one call.  Decryption with a wrong tag fails
 * with KS_ERR_CRYPTO and writes zeros to out.  in and out may be the same.
 */

#ifndef KS_OP_AEAD_H
#define KS_OP_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define KS_AEAD_NONCE_LEN  12
#define KS_AEAD_TAG_LEN    16

struct ks_args_aead_new {
    uint32_t              alg;              /* enum ks_aead_alg */
    uint32_t              enc;              /* 1 encrypt, 0 decrypt */
    const unsigned char  *key;              /* token, 16 or 32 bytes */
    size_t                keylen;
    uint64_t             *handle;           /* out: KS_HT_AEAD */
};

struct ks_args_aead_record {
    uint64_t              handle;
    const unsigned char  *nonce;            /* KS_AEAD_NONCE_LEN bytes */
    const unsigned char  *aad;
    size_t                aadlen;
    const unsigned char  *in;
    size_t                inlen;
    unsigned char        *out;              /* inlen bytes */
    unsigned char        *tag;              /* KS_AEAD_TAG_LEN: out (enc), in (dec) */
};

long ks_op_aead_new(void *args);
long ks_op_aead_record(void *args);
void ks_op_aead_destroy(void *obj);         /* for KS_OP_FREE */

#endif /* KS_OP_AEAD_H */
