/*
 * inspect_rewrite.h — the pieces of the rewriter (ERIM's run-time and
 * static rewriting), shared by inspect_rewrite*.c and the unit tests.
 *
 *   span     which whole instructions at a site the 5-byte jump replaces,
 *            and whether that is safe (no branch lands inside)
 *   tramp    trampoline pages near the site (or an arena: static), the
 *            checked or equivalent copy of the span, the check itself
 *   reloc    one instruction moved, as it is
 *   xform    one instruction made free of the byte sequences
 *   patch    writing into r-x text without making it writable
 *   rewriter plans (one per site), then commits them all
 *   static   the same into a new segment of an ELF file
 */
#ifndef MPKTLS_INSPECT_REWRITE_H
#define MPKTLS_INSPECT_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inspect_internal.h"

#define INSP_JMP_LEN 5              /* e9 rel32 */
#define INSP_SPAN_MAX 24            /* < 5 bytes + one insn of <= 15, or one
                                       of <= 15 + < 5 bytes after it */

/* ---- span (inspect_span.c) ---------------------------------------------- */

struct insp_span {
    uint64_t site;                  /* its first byte: where the jmp goes */
    uint8_t len;                    /* bytes replaced, >= INSP_JMP_LEN */
    uint8_t ninsn;
    uint8_t insn_off[INSP_SPAN_MAX];  /* instruction starts, from site */
    uint8_t bytes[INSP_SPAN_MAX];   /* the original bytes */
    /* the executable bytes just around it (fewer at a run's edge), so
     * that the jump written over the span is seen in context */
    uint8_t before[3], after[3];
    uint8_t nbefore, nafter;
};

/* Why a site cannot be rewritten, formatted into why: returns -1. */
int insp_refuse(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The span around the instruction that starts at insn in region r
 * (prepared): insn and the whole instructions after it until there are 5
 * bytes or more; where a function start or the end of the code comes
 * first, whole instructions before insn too, never below floor (the end
 * of the span planned before, or 0).  0, or -1 with the reason in why
 * (fail closed: the site stays unsafe). */
int insp_span_plan(const struct insp_region *r, uint64_t insn, uint64_t floor,
                   struct insp_span *s, char *why, size_t whylen);

/* The first instruction (of the sweep from the anchor before it, as the
 * classifier decodes) that holds a byte in [lo, hi): its start in *start.
 * 0, or -1 if no decoded instruction does. */
int insp_insn_holding(const struct insp_region *r, uint64_t lo, uint64_t hi,
                      uint64_t *start);

/* ---- trampolines (inspect_tramp.c) -------------------------------------- */

/* Trampoline space: code (r-x once sealed) and, after it, data (r--) with
 * the abort lines.  Written while not executable, never writable and
 * executable at once.  In memory: a page of each, mapped near the sites.
 * Static (arena): one area of each, in a buffer that becomes a new segment
 * of the output file at vaddr code. */
struct insp_tramp_page {
    uint64_t code;                  /* runtime address; data follows */
    uint32_t code_size, data_size;
    uint32_t used, data_used;
    bool sealed;
};

struct insp_tramp_pool {
    int pkey;
    struct insp_tramp_page *page;
    size_t npage, cappage;
    uint8_t *arena;                 /* static mode: the buffer, at vaddr
                                       page[0].code; NULL in memory */
    size_t arena_len;
};

#define INSP_TRAMP_MAX 384          /* one trampoline's bytes */

struct insp_tramp {
    uint64_t addr;                  /* first byte */
    uint32_t len;
    uint64_t sites[INSP_SPAN_MAX];  /* copies of PKRU-writing insns in it */
    size_t nsites;
    uint32_t rules;                 /* INSPECT_RULE_* */
    uint8_t patch[INSP_SPAN_MAX];   /* what replaces the span */
};

void insp_tramp_pool_init(struct insp_tramp_pool *p, int pkey);
/* Static mode: code_size bytes of code, then data_size of abort lines, to
 * be loaded at vaddr (page-aligned sizes).  0, or -1 (no memory). */
int insp_tramp_pool_arena(struct insp_tramp_pool *p, uint64_t vaddr,
                          uint32_t code_size, uint32_t data_size);
/* Build the checked or equivalent copy of span s in space within reach of
 * it; what names the site in the abort line.  0, or -1 with why. */
int insp_tramp_build(struct insp_tramp_pool *p, const struct insp_span *s,
                     const char *what, struct insp_tramp *t, char *why,
                     size_t whylen);
/* In memory: code pages r-x, data pages r--.  0, or -1 (errno from
 * mprotect).  Static: nothing to do. */
int insp_tramp_seal(struct insp_tramp_pool *p);
/* Forgets the pages (they stay mapped: rewritten code jumps into them);
 * frees the arena. */
void insp_tramp_pool_free(struct insp_tramp_pool *p);

/* The check that follows an instruction of kind, for protection key pkey,
 * emitted at out (runtime address at): falls through when PKRU denies the
 * key (its access-disable bit is set), else loads the msglen-byte line at
 * msg and jumps to abort_stub.  All registers and flags are as the
 * instruction left them when it falls through.  Its length, or 0 if a
 * displacement does not fit.  out needs INSP_CHECK_MAX bytes. */
#define INSP_CHECK_MAX 96
size_t insp_emit_check(enum inspect_kind kind, int pkey, uint8_t *out,
                       uint64_t at, uint64_t msg, uint32_t msglen,
                       uint64_t abort_stub);
/* write(2, rsi, edx); exit_group(70); ud2.  Its length (INSP_ABORT_LEN). */
#define INSP_ABORT_LEN 26
size_t insp_emit_abort(uint8_t *out);
/* Does a sequence (any kind) overlap [lo, hi) of b[0, len)?  Positions
 * are offsets into b; b holds the context around the range. */
bool insp_bytes_have_sequence(const uint8_t *b, size_t len, size_t lo,
                              size_t hi);

/* ---- relocation (inspect_reloc.c) --------------------------------------- */

/* Copy the len-byte instruction b, which runs at old_ip, to out (16
 * bytes) so that it runs at new_ip with the same effect: RIP-relative
 * operands and relative jumps keep their absolute targets (re-encoded
 * with Zydis; a rel8 jump becomes rel32).  Its new length, or 0 with why:
 * calls (their return address would point into the trampoline), loops and
 * JRCXZ out of rel8 reach, XBEGIN, targets out of rel32 reach. */
size_t insp_relocate(const uint8_t *b, size_t len, uint64_t old_ip,
                     uint64_t new_ip, uint8_t *out, char *why,
                     size_t whylen);
/* A direct call (E8 rel32, len 5) at old_ip whose return address,
 * old_ip + len, is original code the rewrite keeps (the call ends the
 * span), emulated at new_ip: the return address pushed by hand, then a
 * jump to the callee, so the callee sees the same stack as before.  Its
 * length (INSP_CALL_EMU_LEN), or 0 if b is no such call or the callee is
 * out of rel32 reach. */
#define INSP_CALL_EMU_LEN 17
size_t insp_emulate_call(const uint8_t *b, size_t len, uint64_t old_ip,
                         uint64_t new_ip, uint8_t *out);
/* The kind of PKRU-writing instruction b is, or -1 if it writes no PKRU
 * (and its length in *len, 0 if it does not decode). */
int insp_insn_pkru_kind(const uint8_t *b, size_t avail, size_t *len);

/* ---- equivalent forms (inspect_xform.c) --------------------------------- */

/* The most a transformed instruction takes. */
#define INSP_XFORM_MAX 80

/* The instruction b (len bytes, running at old_ip) for new_ip, with no
 * WRPKRU/XRSTOR sequence inside its own bytes: relocated as it is if that
 * is clean, else replaced by an equivalent sequence (ERIM's rules: a free
 * register substituted, an immediate split, a displacement moved into its
 * base or through a saved scratch register).  Its length (out needs
 * INSP_XFORM_MAX bytes) and the rule in *rule (INSPECT_RULE_*), or 0 with
 * why: nothing keeps the behaviour and loses the bytes. */
size_t insp_xform(const uint8_t *b, size_t len, uint64_t old_ip,
                  uint64_t new_ip, uint8_t *out, uint32_t *rule, char *why,
                  size_t whylen);

/* ---- patching (inspect_patch.c) ----------------------------------------- */

/* Write len bytes at addr in this process's memory whatever its
 * protection, through /proc/self/mem (FOLL_FORCE: a private mapping gets
 * its own copy of the page).  Nothing is made writable.  0, or -1. */
int insp_text_write(uint64_t addr, const void *bytes, size_t len);

/* ---- the rewriter (inspect_rewrite.c) ----------------------------------- */

struct insp_plan {
    struct insp_span span;
    struct insp_tramp tramp;
    struct inspect_rewrite info;
};

struct insp_rewriter {
    struct insp_tramp_pool pool;
    struct insp_plan *plan;
    size_t nplan, capplan;
    size_t refused;                 /* sites that could not be planned */
};

void insp_rewriter_init(struct insp_rewriter *w, int pkey);
/* Plan the rewrite of the instruction at site in region r (a real PKRU
 * write, or the instruction that holds a sequence); info describes it
 * (kind, class, object, symbol) for the log.  0 planned, 1 already inside
 * a planned span, -1 refused (logged, and counted in w->refused), -2 out
 * of memory. */
int insp_rewriter_plan(struct insp_rewriter *w, const struct insp_region *r,
                       uint64_t site, const struct inspect_rewrite *info);
/* Plan the rewrite of one hit of a scan (any class; safe hits are left
 * alone): the same return values. */
int insp_rewriter_plan_hit(struct insp_rewriter *w,
                           const struct insp_region *r,
                           const struct inspect_hit *hit);
/* Seal the trampolines, register their sites, write the jumps, log each.
 * The number of sites rewritten, or -1 (errno) if one could not be. */
int insp_rewriter_commit(struct insp_rewriter *w);
void insp_rewriter_free(struct insp_rewriter *w);

/* "WRPKRU at 0x... (obj+0x... sym+0x...)" for logs. */
void insp_rewrite_describe(const struct inspect_rewrite *w, char *buf,
                           size_t size);
/* "checked copy, relocated, ..." */
void insp_rules_string(uint32_t rules, char *buf, size_t size);

/* One log line (inspect_set_log), printf-style. */
void insp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
