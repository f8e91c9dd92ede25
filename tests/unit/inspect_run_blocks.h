/*
 * inspect_run_blocks.h — the runnable blocks of inspect_run_blocks.inc
 * (in inspect_fixtures.S) and the harness to run them, for the rewriter's
 * tests: test_inspect_rewrite (native), test_rewrite_classes (MPK) and the
 * static-rewrite test program (tests/integration/inspect_rewrite_main.c,
 * which defines FX_TEXT to get the .text copies too).
 *
 * A block is run twice with the same random registers, flags and buffer:
 * once as it was written (a copy in anonymous executable memory) and once
 * rewritten; fx_compare() compares the registers, the flags the operation
 * defines, and the buffer.
 */
#ifndef MPKTLS_INSPECT_RUN_BLOCKS_H
#define MPKTLS_INSPECT_RUN_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { FX_RAX, FX_RBX, FX_RCX, FX_RDX, FX_RSI, FX_RDI, FX_RBP, FX_R8, FX_R9,
       FX_R10, FX_R11, FX_R12, FX_R13, FX_R14, FX_R15, FX_RFLAGS, FX_NREGS };

struct fx_regs {
    uint64_t r[FX_NREGS];
};

void fx_call(const struct fx_regs *in, struct fx_regs *out, const void *fn);

#define FX_BUF 256                  /* the buffer the pointers point into */

/* the flags: CF PF AF ZF SF OF; IMUL defines CF and OF only */
#define FX_FLAGS_ALL 0x8d5u
#define FX_FLAGS_MUL 0x801u

/* Point registers into buf, as each block needs (b = buf). */
#define FX_NONE(r, b)       ((void) (r), (void) (b))
#define FX_RDI_BUF(r, b)    ((r)[FX_RDI] = (uint64_t) (uintptr_t) (b))
#define FX_RCX_BUF(r, b)    ((r)[FX_RCX] = (uint64_t) (uintptr_t) (b))
#define FX_RAX_DISP(r, b)   ((r)[FX_RAX] = (uint64_t) (uintptr_t) (b) - 0xef010f)
#define FX_RSI_DISP(r, b)   ((r)[FX_RSI] = (uint64_t) (uintptr_t) (b) - 0xef010f)
#define FX_RCX_DISP(r, b)   ((r)[FX_RCX] = (uint64_t) (uintptr_t) (b) - 0xef010f)
#define FX_SIB(r, b)        ((r)[FX_RCX] &= 63, (r)[FX_RDI] = \
                             (uint64_t) (uintptr_t) (b) - 0xef01 - (r)[FX_RCX])

/* X(name, flags, setup, rule, runs, text): the rule the rewriter is
 * expected to use (INSPECT_RULE_*; 0: refused); runs: it can run without
 * MPK; text: YES if there is a code copy (fxt_) with FX_RUN_IN_TEXT */
#define FX_BLOCKS(X)                                                        \
    X(span_wrpkru, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_NOP, true, YES)      \
    X(span_jcc, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_NOP, true, YES)         \
    X(span_xrstor, FX_FLAGS_ALL, FX_RDI_BUF, INSPECT_RULE_NOP, true, YES)   \
    X(imm_mov32, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SPLIT_IMM, true, YES)  \
    X(imm_mov64, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SPLIT_IMM, true, YES)  \
    X(imm_movsx, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SPLIT_IMM, true, YES)  \
    X(imm_xrstor, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SPLIT_IMM, true, YES) \
    X(imm_add, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SCRATCH_IMM, true, YES)  \
    X(imm_sub64, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SCRATCH_IMM, true, YES) \
    X(imm_test, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SCRATCH_IMM, true, YES) \
    X(imm_cmp_mem, FX_FLAGS_ALL, FX_RDI_BUF, INSPECT_RULE_SCRATCH_IMM,      \
      true, YES)                                                            \
    X(imm_lock, FX_FLAGS_ALL, FX_RDI_BUF, INSPECT_RULE_SCRATCH_IMM, true,   \
      YES)                                                                  \
    X(imm_redzone, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SCRATCH_IMM, true,   \
      YES)                                                                  \
    X(imm_imul, FX_FLAGS_MUL, FX_NONE, INSPECT_RULE_SCRATCH_IMM, true, YES) \
    X(disp_load, FX_FLAGS_ALL, FX_RAX_DISP, INSPECT_RULE_MOVE_DISP, true,   \
      YES)                                                                  \
    X(disp_add, FX_FLAGS_ALL, FX_RSI_DISP, INSPECT_RULE_MOVE_DISP, true,    \
      YES)                                                                  \
    X(disp_self, FX_FLAGS_ALL, FX_RCX_DISP, INSPECT_RULE_SCRATCH_DISP,      \
      true, YES)                                                            \
    X(disp_rsp, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_SCRATCH_DISP, true,     \
      YES)                                                                  \
    X(disp_rip, FX_FLAGS_ALL, FX_NONE, INSPECT_RULE_RELOCATE, true, YES)    \
    X(modrm_imul, FX_FLAGS_MUL, FX_RDI_BUF, INSPECT_RULE_SUBSTITUTE, true,  \
      YES)                                                                  \
    X(sib_load, FX_FLAGS_ALL, FX_SIB, INSPECT_RULE_SUBSTITUTE, true, YES)   \
    X(opcode_palignr, FX_FLAGS_ALL, FX_RCX_BUF, INSPECT_RULE_SUBSTITUTE,    \
      true, YES)                                                            \
    X(real_mix, FX_FLAGS_ALL, FX_NONE,                                      \
      INSPECT_RULE_CHECK | INSPECT_RULE_SPLIT_IMM, false, YES)              \
    X(refuse_push, FX_FLAGS_ALL, FX_NONE, 0, true, NO)

#ifdef FX_TEXT
#define FX_DECL_YES(n) extern const uint8_t fxt_##n[];
#define FX_TXT_YES(n) fxt_##n
#else
#define FX_DECL_YES(n)
#define FX_TXT_YES(n) NULL
#endif
#define FX_DECL_NO(n)
#define FX_TXT_NO(n) NULL

#define FX_DECLARE(n, f, s, rule, runs, text)                               \
    extern const uint8_t fxr_##n[], fxr_##n##_end[]; FX_DECL_##text(n)
FX_BLOCKS(FX_DECLARE)

typedef void (*fx_setup_fn)(struct fx_regs *in, uint8_t *buf);

struct fx_block {
    const char *name;
    const uint8_t *start, *end;     /* the data copy (fxr_) */
    const uint8_t *text;            /* the code copy (fxt_), or NULL */
    uint32_t flags;                 /* flags to compare */
    fx_setup_fn setup;
    uint32_t rule;                  /* expected rule, 0: refused */
    bool runs;                      /* runs without MPK */
};

#define FX_SETUP_FN(n, f, s, rule, runs, text)                              \
    static inline void fx_setup_##n(struct fx_regs *in, uint8_t *buf)       \
    { s(in->r, buf); }
FX_BLOCKS(FX_SETUP_FN)

#define FX_ENTRY(n, f, s, rule, runs, text)                                 \
    { #n, fxr_##n, fxr_##n##_end, FX_TXT_##text(n), f, fx_setup_##n, rule, \
      runs },

/* An includer that uses the table defines it:
 *     static const struct fx_block fx_blocks[] = { FX_BLOCKS(FX_ENTRY) };
 */

/* ---- running ------------------------------------------------------------ */

/* xorshift64: the same inputs for both runs */
static inline uint64_t
fx_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random registers and flags (no TF, DF, AC: only the arithmetic ones
 * and the reserved bit 1) and buffer, then the block's pointers. */
static inline void
fx_inputs(const struct fx_block *b, uint64_t *seed, struct fx_regs *in,
          uint8_t *buf)
{
    for (int i = 0; i < FX_NREGS; i++)
        in->r[i] = fx_rand(seed);
    in->r[FX_RFLAGS] = (in->r[FX_RFLAGS] & FX_FLAGS_ALL) | 0x2;
    for (int i = 0; i < FX_BUF; i++)
        buf[i] = (uint8_t) fx_rand(seed);
    b->setup(in, buf);
}

/* Run the block as written (orig) and rewritten (rew) trials times, each
 * time with the same random registers, flags and buffer (one buffer,
 * reset between the runs, so that pointers into it are equal too), and
 * compare the registers, the defined flags and the buffer.  true if they
 * always agree; else the first difference is in diff. */
static inline bool
fx_compare(const struct fx_block *b, const void *orig, const void *rew,
           int trials, uint64_t seed, char *diff, size_t size)
{
    static uint8_t buf[FX_BUF] __attribute__((aligned(64)));
    uint8_t start[FX_BUF], after[FX_BUF];
    for (int t = 0; t < trials; t++) {
        struct fx_regs in, o1, o2;
        fx_inputs(b, &seed, &in, buf);
        memcpy(start, buf, FX_BUF);
        fx_call(&in, &o1, orig);
        memcpy(after, buf, FX_BUF);
        memcpy(buf, start, FX_BUF);
        fx_call(&in, &o2, rew);
        for (int i = 0; i < FX_NREGS; i++) {
            uint64_t x = o1.r[i], y = o2.r[i];
            if (i == FX_RFLAGS) {
                x &= b->flags;
                y &= b->flags;
            }
            if (x != y) {
                snprintf(diff, size, "%s: register %d: %#llx, rewritten "
                         "%#llx (trial %d)", b->name, i,
                         (unsigned long long) x, (unsigned long long) y, t);
                return false;
            }
        }
        if (memcmp(after, buf, FX_BUF) != 0) {
            snprintf(diff, size, "%s: the buffers differ (trial %d)",
                     b->name, t);
            return false;
        }
    }
    return true;
}

#endif
