/*
 * ks_ops: the gate's operation table — numbers and argument blocks shared
 * by the U stubs (ks_api.c) and T (ks_dispatch.c).
 *
 * An argument block lives in U memory; T checks that the whole block lies
 * outside T and copies it into T before looking at any field, so U cannot
 * change a pointer or a length after it was checked.  Pointers inside a
 * block are checked again, each with its length, before T uses them.
 */

#ifndef KS_OPS_H
#define KS_OPS_H

#include <stddef.h>
#include <stdint.h>

enum ks_op {
    KS_OP_NOP = 0,                          /* no arguments */
    KS_OP_STATS,                            /* struct ks_args_stats */
    KS_OP_SELFTEST_SHA256,                  /* struct ks_args_digest */
    KS_OP_RANGES,                           /* struct ks_args_ranges */
    KS_OP_FREE,                             /* struct ks_args_free */
    KS_OP_AEAD_NEW,                         /* ks_op_aead.h */
    KS_OP_AEAD_RECORD,
    KS_OP_KDF,                              /* ks_op_kdf.h */
    KS_OP_MAC,
    KS_OP_KEX_KEYGEN,                       /* ks_op_pkey.h */
    KS_OP_KEX_DERIVE,
    KS_OP_KEM_ENCAP,
    KS_OP_KEM_DECAP,
    KS_OP_PKEY_LOAD,
    KS_OP_SIGN,
    KS_OP_SEAL_KEY_LOAD,                    /* struct ks_args_seal_key_load */
#ifdef KS_TEST_OPS
    KS_OP_TEST_PEEK,                        /* struct ks_args_test_mem */
    KS_OP_TEST_POKE,                        /* struct ks_args_test_mem */
    KS_OP_TEST_AES128,                      /* struct ks_args_test_aes */
    KS_OP_TEST_SLEEP,                       /* no arguments: 200 ms in T */
    KS_OP_TEST_SEAL,                        /* struct ks_args_test_seal */
    KS_OP_TEST_SEAL_IDENTITY,               /* struct ks_args_test_identity */
#endif
    KS_OP_COUNT
};

#define KS_OP_ARGS_MAX  256                 /* largest argument block */

/* Objects in T are named by handles (ks_handle.h); their types: */
enum ks_handle_type {
    KS_HT_AEAD = 1,                         /* a record cipher context */
    KS_HT_KEX,                              /* an ephemeral (EC)DH/KEM key */
    KS_HT_PKEY,                             /* a long-term private key */
};

/* Algorithms, as small numbers: T parses no names. */
enum ks_aead_alg {
    KS_AEAD_AES_128_GCM = 1,
    KS_AEAD_AES_256_GCM,
    KS_AEAD_CHACHA20_POLY1305,
};

enum ks_md {
    KS_MD_SHA256 = 1,
    KS_MD_SHA384,
    KS_MD_SHA512,
};

enum ks_group {
    KS_GROUP_X25519 = 1,
    KS_GROUP_X448,
    KS_GROUP_P256,
    KS_GROUP_P384,
    KS_GROUP_P521,
    KS_GROUP_X25519MLKEM768,                /* a KEM: one unit, 64-byte secret */
};

/* Results of ks_gate_call(): >= 0 success, < 0 one of these. */
#define KS_ERR_OP     (-1)                  /* unknown operation */
#define KS_ERR_ARG    (-2)                  /* a pointer or length refused */
#define KS_ERR_STATE  (-3)                  /* a handle or key not usable */
#define KS_ERR_CRYPTO (-4)                  /* the crypto operation failed */

struct ks_stats_out {
    uint64_t  gate_crossings;
    uint64_t  t_heap_bytes;
    uint64_t  t_heap_peak_bytes;
    int32_t   pkey;
};

struct ks_args_stats {
    struct ks_stats_out  *out;
};

struct ks_args_digest {
    const void     *in;
    size_t          inlen;
    unsigned char  *out;                    /* 32 bytes */
};

/* End any handle (its type is in the handle); the object is wiped. */
struct ks_args_free {
    uint64_t  handle;
};

/*
 * Read the sealing key from a file (ks_seal_key_load, ks_seal.h): T opens
 * and reads the file itself; the path is copied into T with its length
 * and NUL-terminated there.  The message (one line, "" on success) comes
 * back through err, a U buffer checked with its length (errlen may be 0).
 * 0, KS_ERR_ARG (a pointer or length refused) or KS_ERR_STATE (the file
 * was refused: see err).
 */
struct ks_args_seal_key_load {
    const char  *path;
    size_t       pathlen;                   /* without a NUL */
    char        *err;                       /* out: NUL-terminated message */
    size_t       errlen;
};

#include "ks_op_aead.h"
#include "ks_op_kdf.h"
#include "ks_op_pkey.h"

/*
 * Where T is: not a secret (/proc/self/maps shows it, smaps names the key),
 * but the tests and the status page want it without parsing.
 */
struct ks_range_out {
    uint64_t  start;
    uint64_t  len;
};

struct ks_args_ranges {
    struct ks_range_out  *out;              /* KS_RANGE_MAX entries */
    uint32_t             *count;
};

#ifdef KS_TEST_OPS
/*
 * Test builds only (libkeystore-test.so): copy bytes between any T address
 * and U without checks, so that the tests can show an access that faults
 * in U works inside a gate.  Never in the library that is shipped.
 */
struct ks_args_test_mem {
    uint64_t        t_addr;
    unsigned char  *u_buf;
    size_t          len;
};

/* Seal (or unseal) len bytes with class cls: how the tests make tokens of
 * known secrets and look at what T produced. */
struct ks_args_test_seal {
    uint32_t              unseal;
    uint32_t              cls;              /* enum ks_seal_class */
    const unsigned char  *in;
    unsigned char        *out;
    size_t                len;
};

/* Sealing off (tokens are the secrets themselves), to compare with
 * OpenSSL's test vectors; on = 0 turns it back on. */
struct ks_args_test_identity {
    uint32_t  on;
};

/* One AES-128 block inside T with the key passed in, leaving the key in
 * xmm8-15 as careless T code would (test only: the register test). */
struct ks_args_test_aes {
    unsigned char  key[16];
    unsigned char  in[16];
    unsigned char *out;
};
#endif

/* The gate (ks_gate.S).  Returns the operation's result. */
long ks_gate_call(unsigned op, void *args);

/* T's side of the gate (ks_dispatch.c): called on the T stack only. */
long ks_dispatch(unsigned op, void *args);

#endif /* KS_OPS_H */
