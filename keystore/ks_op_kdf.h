/*
 * KDF and MAC operations (T): TLS13-KDF, HKDF and TLS1-PRF over tokens,
 * and HMAC with a MAC-key token (TLS 1.3 Finished and binders).
 *
 * T decides the class of every output itself, from the KDF, the label and
 * the length; the caller's out_class is libssl's intent and must agree,
 * else the call fails (KS_ERR_ARG).  With a token input:
 *   TLS13-KDF expand (T always uses the prefix "tls13 "):
 *     "key"      -> KS_SEAL_RECORD_KEY token (16 or 32 bytes)
 *     "finished" -> KS_SEAL_MAC_KEY token (hash length)
 *     "iv"       -> clear, at 12 bytes only
 *     "exporter" -> clear (exporter stage 2)
 *     any other  -> KS_SEAL_SECRET token (hash length)
 *   TLS13-KDF extract, HKDF -> KS_SEAL_SECRET token
 *   TLS1-PRF over the concatenated seeds S:
 *     S starts with "client finished"/"server finished", 12 bytes -> clear
 *     S starts with "key expansion" -> KS_OUT_KEYBLOCK only: the layout
 *       gives the MAC key, key and fixed IV lengths; keys become
 *       KS_SEAL_RECORD_KEY tokens, fixed IVs stay clear, MAC keys must be 0
 *     S starts with "master secret"/"extended master secret" -> SECRET
 *     S starts with none of these (exporters) -> clear
 * With raw inputs (key_is_token == 0: external PSKs, the zero early-secret
 * input) the outputs follow out_class: a token of a known value gives
 * nothing away.  Tokens are unsealed with the class their use implies, so
 * a token of another class yields unrelated bytes.
 */

#ifndef KS_OP_KDF_H
#define KS_OP_KDF_H

#include <stddef.h>
#include <stdint.h>

enum ks_kdf {
    KS_KDF_TLS13 = 1,                       /* OpenSSL's TLS13-KDF */
    KS_KDF_HKDF,
    KS_KDF_TLS1_PRF,
};

enum ks_kdf_mode {                          /* TLS13-KDF and HKDF */
    KS_KDF_EXTRACT_AND_EXPAND = 0,
    KS_KDF_EXTRACT_ONLY = 1,
    KS_KDF_EXPAND_ONLY = 2,
};

enum ks_out_class {
    KS_OUT_SECRET = 1,                      /* a KS_SEAL_SECRET token */
    KS_OUT_RECORD_KEY,
    KS_OUT_MAC_KEY,
    KS_OUT_CLEAR,
    KS_OUT_KEYBLOCK,                        /* TLS 1.2 key block */
};

struct ks_args_kdf {
    uint32_t              kdf;              /* enum ks_kdf */
    uint32_t              md;               /* enum ks_md */
    uint32_t              mode;             /* enum ks_kdf_mode */
    uint32_t              key_is_token;     /* key: SECRET token, or raw */
    uint32_t              salt_is_token;    /* salt: SECRET token, or raw */
    uint32_t              out_class;        /* enum ks_out_class */
    const unsigned char  *key;              /* TLS1-PRF: the secret */
    size_t                keylen;
    const unsigned char  *salt;
    size_t                saltlen;
    const unsigned char  *label;            /* TLS13-KDF; HKDF: info */
    size_t                labellen;
    const unsigned char  *data;             /* TLS13: context; PRF: seeds */
    size_t                datalen;
    uint32_t              kb_mac_len;       /* KS_OUT_KEYBLOCK layout */
    uint32_t              kb_key_len;
    uint32_t              kb_iv_len;
    unsigned char        *out;
    size_t                outlen;
};

struct ks_args_mac {
    uint32_t              md;               /* enum ks_md: HMAC */
    uint32_t              key_is_token;     /* 1: KS_SEAL_MAC_KEY token */
    const unsigned char  *key;
    size_t                keylen;
    const unsigned char  *data;
    size_t                datalen;
    unsigned char        *out;              /* the MAC: clear */
    size_t                outlen;           /* the digest length */
};

long ks_op_kdf(void *args);
long ks_op_mac(void *args);

#endif /* KS_OP_KDF_H */
