/*
 * The gate fuzzer (tests/fuzz/): what its parts share.
 *
 * One input is a sequence of gate calls.  Each call names an operation
 * and fills its argument block field by field (fuzz_ops.c): numbers,
 * lengths from a list of interesting ones or raw, handles (live, stale,
 * forged), and pointers.  A pointer is never arbitrary: it points into
 * the harness's own fenced buffers (a buffer ends, or starts, at a
 * PROT_NONE page, so T reading or writing one byte beyond what it was
 * given crashes), at real tokens, public keys, labels and file names made
 * at start-up (fuzz_bank.c), or is one of a small set: NULL, addresses in
 * T (KS_OP_RANGES), wrapping and non-canonical values.
 *
 * After each input (fuzz_gate.c): every handle it made is freed, T's
 * canaries (bytes the harness put in T where no operation may write)
 * are compared, and the T heap must not keep growing.
 */

#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* ---- the input, read byte by byte (zeros once it is used up) ---------- */

struct fz_in {
    const uint8_t  *p;
    size_t          n;
};

uint8_t  fz_u8(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);

/* ---- things made at start-up -------------------------------------------- */

enum fz_bank {
    FZ_TOKEN,                       /* real tokens of every class */
    FZ_PEER,                        /* public keys / KEM shares per group */
    FZ_CT,                          /* a KEM ciphertext */
    FZ_LABEL,                       /* the labels T's policy looks at */
    FZ_PATH,                        /* a key file, a seal key file, others */
    FZ_NBANKS
};

#define FZ_BANK_MAX  24

struct fz_item {
    const unsigned char  *p;
    size_t                len;
};

extern struct fz_item  fz_bank[FZ_NBANKS][FZ_BANK_MAX];
extern unsigned        fz_nbank[FZ_NBANKS];

/* Addresses in T to hand out as pointers (range starts, ends, middles,
 * the canaries), and the canaries themselves. */
#define FZ_T_MAX  64
extern uintptr_t  fz_t_ptr[FZ_T_MAX];
extern unsigned   fz_nt;

/* ks_init, the banks, the T pointers: once.  0, or -1 (message on stderr). */
int fz_setup(void);

/* ---- handles the current input made ------------------------------------- */

#define FZ_HANDLES  64

struct fz_handles {
    uint64_t  h[FZ_HANDLES];
    uint8_t   live[FZ_HANDLES];
    unsigned  n;
};

/* FUZZ_TRACE=1 in the environment: each call's operation and result on
 * stderr (to check what an input does, e.g. a seed). */
extern int  fz_trace;

/* Build and make one gate call from the input; handles it made go into hs. */
void fz_one_call(struct fz_in *in, struct fz_handles *hs);

/* Deadly signals (a fault inside T) keep the input: fuzz_crash.c.  Init
 * once with main's arguments; tell it each input as it starts. */
void fz_crash_init(int argc, char **argv);
void fz_crash_current(const uint8_t *data, size_t size);

/* 1 if T's canaries hold what fz_setup() put there; else 0, and where. */
int fz_canaries_intact(char *why, size_t len);

#endif /* FUZZ_H */
