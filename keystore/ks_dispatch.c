/*
 * ks_dispatch: T's side of the gate.  Runs on the T stack with T open,
 * called only from ks_gate.S.  It counts the crossing, checks the
 * operation number, copies the argument block from U into T (after
 * checking it lies outside T) and runs the operation, which checks each
 * pointer it uses.  Results go back to U only through checked pointers.
 */

#include "ks_ops.h"

#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ks_crypto.h"
#include "ks_domain.h"
#include "ks_handle.h"
#include "ks_heap.h"
#include "ks_range.h"
#include "ks_seal.h"

static uint64_t  gate_crossings;            /* T data */

typedef long (*ks_op_fn)(void *args);

struct ks_op_desc {
    ks_op_fn  fn;
    size_t    args_size;
};

static long
op_nop(void *args)
{
    (void) args;
    return 0;
}

static long
op_stats(void *args)
{
    struct ks_args_stats *a = args;
    struct ks_stats_out s;
    size_t in_use, peak;

    if (!ks_range_u_ok(a->out, sizeof(*a->out))) {
        return KS_ERR_ARG;
    }
    ks_heap_stats(&in_use, &peak);
    memset(&s, 0, sizeof(s));
    s.gate_crossings = gate_crossings;
    s.t_heap_bytes = in_use;
    s.t_heap_peak_bytes = peak;
    s.pkey = ks_domain_pkey();
    memcpy(a->out, &s, sizeof(s));
    return 0;
}

/* SHA-256 with the private libcrypto, its state on the T heap: a test
 * entry that shows crypto runs inside T and moves data in and out. */
static long
op_selftest_sha256(void *args)
{
    struct ks_args_digest *a = args;
    unsigned char md[32];
    long rc = 0;

    if (!ks_range_u_ok(a->in, a->inlen) || !ks_range_u_ok(a->out, 32)) {
        return KS_ERR_ARG;
    }
    if (ks_crypto_sha256(a->in, a->inlen, md) != 0) {
        rc = KS_ERR_CRYPTO;
    } else {
        memcpy(a->out, md, 32);
    }
    OPENSSL_cleanse(md, sizeof(md));
    return rc;
}

/* Ends a handle of any type: its type byte picks the destructor. */
static long
op_free(void *args)
{
    static void (*const destroy[])(void *) = {
        [KS_HT_AEAD] = ks_op_aead_destroy,
        [KS_HT_KEX] = ks_op_kex_destroy,
        [KS_HT_PKEY] = ks_op_pkey_destroy,
    };
    struct ks_args_free *a = args;
    unsigned type = a->handle & 0xff;
    void *obj;

    if (type == 0 || type >= sizeof(destroy) / sizeof(destroy[0])) {
        return KS_ERR_STATE;
    }
    obj = ks_handle_free(a->handle, type);
    if (obj == NULL) {
        return KS_ERR_STATE;
    }
    destroy[type](obj);
    return 0;
}

static long
op_ranges(void *args)
{
    struct ks_args_ranges *a = args;
    struct ks_range_out r[KS_RANGE_MAX];
    uintptr_t start;
    size_t len;
    uint32_t n = 0;

    if (!ks_range_u_ok(a->out, sizeof(r))
        || !ks_range_u_ok(a->count, sizeof(*a->count)))
    {
        return KS_ERR_ARG;
    }
    memset(r, 0, sizeof(r));
    while (n < KS_RANGE_MAX && ks_range_get(n, &start, &len) == 0) {
        r[n].start = start;
        r[n].len = len;
        n++;
    }
    memcpy(a->out, r, sizeof(r));
    memcpy(a->count, &n, sizeof(n));
    return 0;
}

/* KS_OP_SEAL_KEY_LOAD: T reads the sealing key file (ks_seal.h). */
static long
op_seal_key_load(void *args)
{
    struct ks_args_seal_key_load *a = args;
    char path[PATH_MAX];
    char msg[512];
    size_t n;
    int rc;

    if (a->pathlen == 0 || a->pathlen >= sizeof(path)
        || !ks_range_u_ok(a->path, a->pathlen)
        || (a->errlen > 0 && !ks_range_u_ok(a->err, a->errlen)))
    {
        return KS_ERR_ARG;
    }
    memcpy(path, a->path, a->pathlen);
    path[a->pathlen] = '\0';
    if (memchr(path, '\0', a->pathlen) != NULL) {  /* "key\0../x" */
        return KS_ERR_ARG;
    }
    msg[0] = '\0';
    rc = ks_seal_key_load(path, msg, sizeof(msg));
    if (a->errlen > 0) {
        n = strnlen(msg, sizeof(msg) - 1);
        if (n >= a->errlen) {
            n = a->errlen - 1;
        }
        memcpy(a->err, msg, n);
        a->err[n] = '\0';
    }
    return rc == 0 ? 0 : KS_ERR_STATE;
}

#ifdef KS_TEST_OPS
static long
op_test_peek(void *args)
{
    struct ks_args_test_mem *a = args;

    if (!ks_range_u_ok(a->u_buf, a->len)) {
        return KS_ERR_ARG;
    }
    memcpy(a->u_buf, (const void *) (uintptr_t) a->t_addr, a->len);
    return 0;
}

static long
op_test_poke(void *args)
{
    struct ks_args_test_mem *a = args;

    if (!ks_range_u_ok(a->u_buf, a->len)) {
        return KS_ERR_ARG;
    }
    memcpy((void *) (uintptr_t) a->t_addr, a->u_buf, a->len);
    return 0;
}

static long
op_test_aes128(void *args)
{
    struct ks_args_test_aes *a = args;
    unsigned char out[16];
    EVP_CIPHER_CTX *ctx;
    int len = 0, ok;

    if (!ks_range_u_ok(a->out, 16)) {
        return KS_ERR_ARG;
    }
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL
         && EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, a->key, NULL)
         && EVP_CIPHER_CTX_set_padding(ctx, 0)
         && EVP_EncryptUpdate(ctx, out, &len, a->in, 16) && len == 16;
    EVP_CIPHER_CTX_free(ctx);
    if (ok) {
        memcpy(a->out, out, 16);
    }
    OPENSSL_cleanse(out, sizeof(out));
    /*
     * OpenSSL's AES-NI code clears the registers it used, but T code in
     * general does not (memcpy of a key, GHASH, ChaCha): leave the key in
     * xmm8-15, which libc's copies do not touch, as such code would.  The
     * gate must scrub it; the no-scrub build shows the test then finds it.
     */
    __asm__ volatile ("movdqu (%0), %%xmm8\n movdqa %%xmm8, %%xmm9\n"
                      "movdqa %%xmm8, %%xmm10\n movdqa %%xmm8, %%xmm11\n"
                      "movdqa %%xmm8, %%xmm12\n movdqa %%xmm8, %%xmm13\n"
                      "movdqa %%xmm8, %%xmm14\n movdqa %%xmm8, %%xmm15\n"
                      : : "r" (a->key)
                      : "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
                        "xmm14", "xmm15");
    return ok ? 0 : KS_ERR_CRYPTO;
}

static long
op_test_seal(void *args)
{
    struct ks_args_test_seal *a = args;
    unsigned char buf[KS_SEAL_MAX_LEN];
    int rc;

    if (a->len > sizeof(buf) || !ks_range_u_ok(a->in, a->len)
        || !ks_range_u_ok(a->out, a->len))
    {
        return KS_ERR_ARG;
    }
    memcpy(buf, a->in, a->len);
    rc = a->unseal ? ks_unseal(buf, buf, a->len, a->cls)
                   : ks_seal(buf, buf, a->len, a->cls);
    if (rc == 0) {
        memcpy(a->out, buf, a->len);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc == 0 ? 0 : KS_ERR_ARG;
}

static long
op_test_seal_identity(void *args)
{
    struct ks_args_test_identity *a = args;

    return ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                     a->on != 0) == 0 ? 0 : KS_ERR_STATE;
}

static long
op_test_sleep(void *args)
{
    struct timespec ts = { 0, 200 * 1000 * 1000 };

    (void) args;
    nanosleep(&ts, NULL);
    return 0;
}
#endif

/* Read-only data: the table cannot be changed from U. */
static const struct ks_op_desc  ops[KS_OP_COUNT] = {
    [KS_OP_NOP]             = { op_nop, 0 },
    [KS_OP_STATS]           = { op_stats, sizeof(struct ks_args_stats) },
    [KS_OP_SELFTEST_SHA256] = { op_selftest_sha256,
                                sizeof(struct ks_args_digest) },
    [KS_OP_RANGES]          = { op_ranges, sizeof(struct ks_args_ranges) },
    [KS_OP_FREE]            = { op_free, sizeof(struct ks_args_free) },
    [KS_OP_AEAD_NEW]        = { ks_op_aead_new, sizeof(struct ks_args_aead_new) },
    [KS_OP_AEAD_RECORD]     = { ks_op_aead_record,
                                sizeof(struct ks_args_aead_record) },
    [KS_OP_KDF]             = { ks_op_kdf, sizeof(struct ks_args_kdf) },
    [KS_OP_MAC]             = { ks_op_mac, sizeof(struct ks_args_mac) },
    [KS_OP_KEX_KEYGEN]      = { ks_op_kex_keygen,
                                sizeof(struct ks_args_kex_keygen) },
    [KS_OP_KEX_DERIVE]      = { ks_op_kex_derive,
                                sizeof(struct ks_args_kex_derive) },
    [KS_OP_KEM_ENCAP]       = { ks_op_kem_encap,
                                sizeof(struct ks_args_kem_encap) },
    [KS_OP_KEM_DECAP]       = { ks_op_kem_decap,
                                sizeof(struct ks_args_kem_decap) },
    [KS_OP_PKEY_LOAD]       = { ks_op_pkey_load,
                                sizeof(struct ks_args_pkey_load) },
    [KS_OP_SIGN]            = { ks_op_sign, sizeof(struct ks_args_sign) },
    [KS_OP_SEAL_KEY_LOAD]   = { op_seal_key_load,
                                sizeof(struct ks_args_seal_key_load) },
#ifdef KS_TEST_OPS
    [KS_OP_TEST_PEEK]       = { op_test_peek, sizeof(struct ks_args_test_mem) },
    [KS_OP_TEST_POKE]       = { op_test_poke, sizeof(struct ks_args_test_mem) },
    [KS_OP_TEST_AES128]     = { op_test_aes128,
                                sizeof(struct ks_args_test_aes) },
    [KS_OP_TEST_SLEEP]      = { op_test_sleep, 0 },
    [KS_OP_TEST_SEAL]       = { op_test_seal, sizeof(struct ks_args_test_seal) },
    [KS_OP_TEST_SEAL_IDENTITY] = { op_test_seal_identity,
                                   sizeof(struct ks_args_test_identity) },
#endif
};

_Static_assert(sizeof(struct ks_args_kdf) <= KS_OP_ARGS_MAX
               && sizeof(struct ks_args_kem_encap) <= KS_OP_ARGS_MAX
               && sizeof(struct ks_args_sign) <= KS_OP_ARGS_MAX,
               "argument block too large");

long
ks_dispatch(unsigned op, void *u_args)
{
    unsigned char args[KS_OP_ARGS_MAX] __attribute__((aligned(16)));
    const struct ks_op_desc *d;
    long rc;

    gate_crossings++;
    if (op >= KS_OP_COUNT || ops[op].fn == NULL) {
        return KS_ERR_OP;
    }
    d = &ops[op];
    if (d->args_size > 0) {
        /* one copy into T, then only the copy is used (no TOCTOU) */
        if (!ks_range_u_ok(u_args, d->args_size)) {
            return KS_ERR_ARG;
        }
        memcpy(args, u_args, d->args_size);
    }
    /* no cleanse of args: it is a copy of U's own bytes (no operation
     * writes into it), and this path runs once per TLS record */
    rc = d->fn(args);
    return rc;
}
