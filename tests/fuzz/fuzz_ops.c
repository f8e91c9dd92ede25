/*
 * One gate call from the fuzzer's input: the operation, its argument
 * block field by field, where each pointer points.  See fuzz.h.
 *
 * Every pointer the harness hands over covers exactly the bytes its
 * length says (or the fixed size of what T writes there), inside a
 * buffer that ends or starts at a PROT_NONE page: T touching one byte
 * more than it was given faults, and libFuzzer reports it.  The test
 * operations of libkeystore-test.so (peek, poke, ...) are never called:
 * they are unchecked by design.
 */

#define _GNU_SOURCE
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "../../keystore/ks_range.h"

#define PAGE       4096u
#define SLOT_DATA  ((size_t) KS_ARG_LEN_MAX)
#define NSLOTS     8                        /* pointers in one call, and args */

/* ---- fenced buffers ------------------------------------------------------ */

static unsigned char  *slot_data[NSLOTS];   /* SLOT_DATA bytes, guarded */

static void
slots_init(void)
{
    unsigned i;

    for (i = 0; i < NSLOTS; i++) {
        unsigned char *m = mmap(NULL, SLOT_DATA + 2 * PAGE, PROT_NONE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (m == MAP_FAILED
            || mprotect(m + PAGE, SLOT_DATA, PROT_READ | PROT_WRITE) != 0)
        {
            perror("fuzz: slots");
            abort();
        }
        slot_data[i] = m + PAGE;
    }
}

/* ---- the argument blocks ------------------------------------------------- */

enum kind { K_END = 0, K_U32, K_LEN, K_HANDLE, K_IN, K_OUT };

/* what an input pointer may also point at, and outputs worth reading */
enum role { R_DATA = 0, R_TOKEN, R_PEER, R_CT, R_LABEL, R_PATH, R_HANDLE_OUT };

struct field {
    uint8_t   kind, role;
    uint16_t  off;
    int16_t   len_off;                      /* pointers: the length field */
    uint16_t  size;                         /* pointers without one */
    uint32_t  range;                        /* K_U32: valid values 1..range */
};

#define U32(T, f, r)        { K_U32, 0, offsetof(T, f), -1, 0, r }
#define LEN(T, f)           { K_LEN, 0, offsetof(T, f), -1, 0, 0 }
#define HND(T, f)           { K_HANDLE, 0, offsetof(T, f), -1, 0, 0 }
#define IN(T, f, l, role)   { K_IN, role, offsetof(T, f), offsetof(T, l), 0, 0 }
#define INF(T, f, n)        { K_IN, R_DATA, offsetof(T, f), -1, n, 0 }
#define OUT(T, f, l)        { K_OUT, 0, offsetof(T, f), offsetof(T, l), 0, 0 }
#define OUTF(T, f, n, role) { K_OUT, role, offsetof(T, f), -1, n, 0 }

struct op_desc {
    size_t        args_size;
    struct field  f[20];
};

#define KS   struct ks_args_stats
#define KD   struct ks_args_digest
#define KR   struct ks_args_ranges
#define KF   struct ks_args_free
#define AN   struct ks_args_aead_new
#define AR   struct ks_args_aead_record
#define KK   struct ks_args_kdf
#define KM   struct ks_args_mac
#define XG   struct ks_args_kex_keygen
#define XD   struct ks_args_kex_derive
#define EN   struct ks_args_kem_encap
#define DE   struct ks_args_kem_decap
#define PL   struct ks_args_pkey_load
#define SG   struct ks_args_sign
#define SK   struct ks_args_seal_key_load

static const struct op_desc ops[KS_OP_SEAL_KEY_LOAD + 1] = {
    [KS_OP_NOP] = { .args_size = 0 },
    [KS_OP_STATS] = { sizeof(KS), {
        OUTF(KS, out, sizeof(struct ks_stats_out), R_DATA) } },
    [KS_OP_SELFTEST_SHA256] = { sizeof(KD), {
        LEN(KD, inlen), IN(KD, in, inlen, R_DATA), OUTF(KD, out, 32, R_DATA) } },
    [KS_OP_RANGES] = { sizeof(KR), {
        OUTF(KR, out, KS_RANGE_MAX * sizeof(struct ks_range_out), R_DATA),
        OUTF(KR, count, sizeof(uint32_t), R_DATA) } },
    [KS_OP_FREE] = { sizeof(KF), { HND(KF, handle) } },
    [KS_OP_AEAD_NEW] = { sizeof(AN), {
        U32(AN, alg, 3), U32(AN, enc, 1), LEN(AN, keylen),
        IN(AN, key, keylen, R_TOKEN), OUTF(AN, handle, 8, R_HANDLE_OUT) } },
    [KS_OP_AEAD_RECORD] = { sizeof(AR), {
        HND(AR, handle), LEN(AR, aadlen), LEN(AR, inlen),
        INF(AR, nonce, KS_AEAD_NONCE_LEN), IN(AR, aad, aadlen, R_DATA),
        IN(AR, in, inlen, R_DATA), OUT(AR, out, inlen),
        OUTF(AR, tag, KS_AEAD_TAG_LEN, R_DATA) } },
    [KS_OP_KDF] = { sizeof(KK), {
        U32(KK, kdf, 3), U32(KK, md, 3), U32(KK, mode, 2),
        U32(KK, key_is_token, 1), U32(KK, salt_is_token, 1),
        U32(KK, out_class, 5), LEN(KK, keylen), LEN(KK, saltlen),
        LEN(KK, labellen), LEN(KK, datalen), U32(KK, kb_mac_len, 64),
        U32(KK, kb_key_len, 64), U32(KK, kb_iv_len, 16), LEN(KK, outlen),
        IN(KK, key, keylen, R_TOKEN), IN(KK, salt, saltlen, R_TOKEN),
        IN(KK, label, labellen, R_LABEL), IN(KK, data, datalen, R_LABEL),
        OUT(KK, out, outlen) } },
    [KS_OP_MAC] = { sizeof(KM), {
        U32(KM, md, 3), U32(KM, key_is_token, 1), LEN(KM, keylen),
        LEN(KM, datalen), LEN(KM, outlen), IN(KM, key, keylen, R_TOKEN),
        IN(KM, data, datalen, R_DATA), OUT(KM, out, outlen) } },
    [KS_OP_KEX_KEYGEN] = { sizeof(XG), {
        U32(XG, group, 6), LEN(XG, publen), OUTF(XG, handle, 8, R_HANDLE_OUT),
        OUT(XG, pub, publen), OUTF(XG, pub_written, 8, R_DATA) } },
    [KS_OP_KEX_DERIVE] = { sizeof(XD), {
        HND(XD, handle), LEN(XD, peerlen), LEN(XD, secretlen),
        IN(XD, peer, peerlen, R_PEER), OUT(XD, secret, secretlen) } },
    [KS_OP_KEM_ENCAP] = { sizeof(EN), {
        U32(EN, group, 6), LEN(EN, peerlen), LEN(EN, ctlen),
        LEN(EN, secretlen), IN(EN, peer, peerlen, R_PEER), OUT(EN, ct, ctlen),
        OUTF(EN, ct_written, 8, R_DATA), OUT(EN, secret, secretlen) } },
    [KS_OP_KEM_DECAP] = { sizeof(DE), {
        HND(DE, handle), LEN(DE, ctlen), LEN(DE, secretlen),
        IN(DE, ct, ctlen, R_CT), OUT(DE, secret, secretlen) } },
    [KS_OP_PKEY_LOAD] = { sizeof(PL), {
        LEN(PL, pathlen), LEN(PL, publen), IN(PL, path, pathlen, R_PATH),
        OUTF(PL, handle, 8, R_HANDLE_OUT), OUT(PL, pub, publen),
        OUTF(PL, pub_written, 8, R_DATA) } },
    [KS_OP_SIGN] = { sizeof(SG), {
        HND(SG, handle), U32(SG, md, 3), U32(SG, padding, 2),
        LEN(SG, tbslen), LEN(SG, siglen), IN(SG, tbs, tbslen, R_DATA),
        OUT(SG, sig, siglen), OUTF(SG, sig_written, 8, R_DATA) } },
    [KS_OP_SEAL_KEY_LOAD] = { sizeof(SK), {
        LEN(SK, pathlen), LEN(SK, errlen), IN(SK, path, pathlen, R_PATH),
        OUT(SK, err, errlen) } },
};

/* Lengths that mean something to some operation, and the edges. */
static const uint64_t lens[] = {
    0, 1, 2, 3, 11, 12, 13, 15, 16, 17, 31, 32, 33, 47, 48, 49, 55, 56, 57,
    63, 64, 65, 66, 67, 97, 132, 133, 255, 256, 1024, 1025, 1120, 1184,
    1216, 4096, KS_ARG_LEN_MAX - 1, KS_ARG_LEN_MAX, KS_ARG_LEN_MAX + 1,
    UINT32_MAX, (uint64_t) UINT32_MAX + 1, UINT64_MAX / 2, UINT64_MAX / 2 + 1,
    UINT64_MAX - 15, UINT64_MAX,
};

static uint64_t
pick_len(struct fz_in *in)
{
    uint8_t b = fz_u8(in);

    switch (b & 3) {
    case 0:
        return lens[fz_u8(in) % (sizeof(lens) / sizeof(lens[0]))];
    case 1:
        return fz_u8(in);
    case 2:
        return fz_u32(in) & 0x1fff;
    default:
        return fz_u64(in);
    }
}

static uint64_t
pick_handle(struct fz_in *in, const struct fz_handles *hs)
{
    uint8_t b = fz_u8(in), i = fz_u8(in);
    uint64_t h = hs->n ? hs->h[i % hs->n] : 0;

    switch (b % 6) {
    case 0:
        return h;                           /* live, or freed by now */
    case 1:
        return h ^ (1ULL << 28);            /* another generation */
    case 2:
        return (h & ~0xffULL) | (fz_u8(in) & 7);  /* another type */
    case 3:
        return h + 0x100;                   /* the next slot */
    case 4:
        return 0;
    default:
        return fz_u64(in);
    }
}

static const struct fz_item *
bank_item(enum role r, uint8_t i)
{
    static const enum fz_bank map[] = {
        [R_TOKEN] = FZ_TOKEN, [R_PEER] = FZ_PEER, [R_CT] = FZ_CT,
        [R_LABEL] = FZ_LABEL, [R_PATH] = FZ_PATH,
    };
    enum fz_bank b;

    if (r == R_DATA || r == R_HANDLE_OUT) {
        b = (enum fz_bank) (i % FZ_NBANKS);     /* any bank's bytes */
    } else {
        b = map[r];
    }
    return fz_nbank[b] ? &fz_bank[b][(i / FZ_NBANKS) % fz_nbank[b]] : NULL;
}

/*
 * Place a pointer of len bytes: in slot s (ending at its upper guard, or
 * starting at its lower one), a bank item (then *len follows it), or one
 * of the pointers no U buffer has.  Input bytes fill an input buffer.
 * Returns the pointer; *fenced says whether it is in slot s.
 */
static uintptr_t
place(struct fz_in *in, const struct field *f, uint64_t *len, unsigned s,
      int *fenced)
{
    uint8_t sel = fz_u8(in);
    unsigned char *d = slot_data[s];
    const struct fz_item *it = NULL;
    uintptr_t p;
    size_t n, k, m;

    *fenced = 0;
    switch (sel % 12) {
    case 7:
        return 0;
    case 8:
        /* in T; or one byte before, then running into T (a buffer wholly
         * outside T is U's business: whatever lies before T) */
        k = fz_u8(in);
        p = fz_nt ? fz_t_ptr[k % fz_nt] : 0;
        if (p != 0 && (k & 0x80) && (*len >= 2 || f->kind == K_IN)) {
            p--;
            *len = *len < 2 ? 2 : *len;     /* K_IN: its length is its own */
        }
        return p;
    case 9:
        return UINTPTR_MAX - fz_u8(in);
    case 10:
        /* past the end of user space, or running over it: a buffer
         * there must be refused (one that ends below the end would be
         * an unmapped U buffer, which T may fault on: U's own loss) */
        k = fz_u8(in);
        if (f->len_off >= 0 && f->kind == K_IN && (k & 1)) {
            *len = k + 2 + fz_u8(in);
            return KS_USER_ADDR_END - k - 1;
        }
        return f->len_off >= 0 || f->size == 0
               ? KS_USER_ADDR_END + k
               : KS_USER_ADDR_END - k % f->size;
    case 6:
        it = f->kind == K_IN ? bank_item(f->role, fz_u8(in)) : NULL;
        if (it != NULL) {
            /* usually with its own length, where the block has one (a
             * fixed size is what T reads, whatever the item's length) */
            if (!(sel & 0x80) && f->len_off >= 0) {
                *len = it->len;
            }
            break;
        }
        /* fall through */
    default:
        it = NULL;
        break;
    }
    n = *len > SLOT_DATA ? SLOT_DATA : (size_t) *len;
    p = sel % 12 == 5 ? (uintptr_t) d : (uintptr_t) (d + SLOT_DATA - n);
    *fenced = 1;
    if (f->kind == K_IN && *len <= SLOT_DATA) {   /* else T refuses it */
        k = it != NULL ? (it->len < n ? it->len : n) : 0;
        memcpy((void *) p, it != NULL ? it->p : d, k);
        m = in->n < n - k ? in->n : n - k;          /* then input bytes */
        memcpy((void *) (p + k), in->p, m);
        in->p += m;
        in->n -= m;
        memset((void *) (p + k + m), 0, n - k - m);
    }
    return p;
}

static uint64_t
get64(const unsigned char *blk, int16_t off)
{
    uint64_t v;

    memcpy(&v, blk + off, sizeof(v));
    return v;
}

/* Fill the block for op; remember where handles will be written. */
static void
fill(struct fz_in *in, const struct op_desc *d, unsigned char *blk,
     const struct fz_handles *hs, uint64_t *handle_out[2])
{
    const struct field *f;
    unsigned s = 1, nh = 0;                 /* slot 0 holds the block */
    uint64_t v, len;
    int fenced;

    for (f = d->f; f->kind != K_END; f++) {     /* numbers first */
        if (f->kind == K_U32) {
            uint8_t b = fz_u8(in);
            uint32_t u = b < 0xf0 ? b % (f->range + 2) : fz_u32(in);

            memcpy(blk + f->off, &u, sizeof(u));
        } else if (f->kind == K_LEN) {
            v = pick_len(in);
            memcpy(blk + f->off, &v, sizeof(v));
        } else if (f->kind == K_HANDLE) {
            v = pick_handle(in, hs);
            memcpy(blk + f->off, &v, sizeof(v));
        }
    }
    for (f = d->f; f->kind != K_END; f++) {     /* then the pointers */
        if (f->kind != K_IN && f->kind != K_OUT) {
            continue;
        }
        len = f->len_off >= 0 ? get64(blk, f->len_off) : f->size;
        v = place(in, f, &len, s++ % NSLOTS, &fenced);
        if (f->len_off >= 0) {
            memcpy(blk + f->len_off, &len, sizeof(len));
        }
        memcpy(blk + f->off, &v, sizeof(v));
        if (f->role == R_HANDLE_OUT && fenced && nh < 2) {
            handle_out[nh++] = (uint64_t *) (uintptr_t) v;
            memset((void *) (uintptr_t) v, 0, 8);
        }
    }
}

static void
harvest(unsigned op, long rc, uint64_t *handle_out[2], const uint64_t *freed,
        struct fz_handles *hs)
{
    unsigned i;

    if (rc != 0) {
        return;
    }
    if (op == KS_OP_FREE) {
        for (i = 0; i < hs->n; i++) {
            hs->live[i] &= hs->h[i] != *freed;
        }
        return;
    }
    for (i = 0; i < 2 && handle_out[i] != NULL; i++) {
        if (*handle_out[i] != 0 && hs->n < FZ_HANDLES) {
            hs->h[hs->n] = *handle_out[i];
            hs->live[hs->n++] = 1;
        }
    }
}

void
fz_one_call(struct fz_in *in, struct fz_handles *hs)
{
    unsigned char blk[KS_OP_ARGS_MAX] __attribute__((aligned(16)));
    uint64_t *handle_out[2] = { NULL, NULL };
    uint8_t b = fz_u8(in), where = fz_u8(in);
    unsigned op;
    size_t size;
    void *args;
    long rc;

    if (slot_data[0] == NULL) {
        slots_init();
    }
    memset(blk, 0, sizeof(blk));
    if (b < 0xf8) {
        op = b % (KS_OP_SEAL_KEY_LOAD + 1);
        size = ops[op].args_size;
        fill(in, &ops[op], blk, hs, handle_out);
    } else {
        /* an unknown number: never a real operation (its block here is
         * raw bytes, pointers included) nor a test operation */
        op = fz_u32(in);
        if (op < KS_OP_COUNT) {
            op += KS_OP_COUNT;
        }
        size = sizeof(blk);
        for (unsigned i = 0; i < 64; i++) {
            blk[i] = fz_u8(in);
        }
    }
    /* the block itself: ending at a guard (T reads exactly size bytes),
     * NULL, in T, or wrapping */
    switch (where % 8) {
    case 5:
        args = NULL;
        break;
    case 6:
        args = fz_nt ? (void *) fz_t_ptr[fz_u8(in) % fz_nt] : NULL;
        break;
    case 7:
        args = (void *) (UINTPTR_MAX - fz_u8(in));
        break;
    default:
        args = slot_data[0] + SLOT_DATA - size;
        memcpy(args, blk, size);
        break;
    }
    rc = ks_gate_call(op, args);
    if (fz_trace) {
        fprintf(stderr, "fuzz: op %u args %p: %ld\n", op, args, rc);
    }
    if (op <= KS_OP_SEAL_KEY_LOAD && rc >= 0) {
        harvest(op, rc, handle_out, (const uint64_t *) blk, hs);
    }
}
