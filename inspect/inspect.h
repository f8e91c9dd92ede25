/*
 * inspect.h — find every byte sequence in executable memory (or in an ELF
 * file) that could switch protection domains: WRPKRU (0F 01 EF) and the
 * XRSTOR family (0F AE /5 and 0F C7 /3 with a memory operand), at every
 * byte offset.  Each occurrence is classified with Zydis and judged by one
 * policy: it is safe only if it is a real instruction at a registered gate
 * site, or at a rewritten site: a checked copy that the rewriter
 * (inspect_rewrite_process, inspect_rewrite_file) made of an unsafe real
 * instruction.  See inspect/README.md.
 *
 * Runs in U: at worker startup (inspect_process) before lockdown, and
 * offline in the mpk-inspect CLI (inspect_file).  Not thread-safe: the gate
 * registry is global, and inspect_process assumes no other thread changes
 * the mappings while it runs.
 */
#ifndef MPKTLS_INSPECT_H
#define MPKTLS_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What executes when control lands on the first byte of the sequence. */
enum inspect_kind {
    INSPECT_WRPKRU,         /* 0F 01 EF */
    INSPECT_XRSTOR,         /* 0F AE /5, mod != 3 */
    INSPECT_XRSTOR64,       /* the same, right after a REX.W byte */
    INSPECT_XRSTORS,        /* 0F C7 /3, mod != 3 (with or without REX.W) */
    INSPECT_NKINDS
};

/* Where the sequence lies relative to the instructions that decoding finds
 * (ERIM's cases).  "Inside" classes name the field of its first byte. */
enum inspect_class {
    INSPECT_REAL,           /* it is the instruction itself */
    INSPECT_SPANNING,       /* starts in one instruction, ends in a later one */
    INSPECT_IN_OPCODE,      /* inside another instruction: prefix/opcode bytes */
    INSPECT_IN_MODRM_SIB,   /* ... its ModRM or SIB byte */
    INSPECT_IN_DISP,        /* ... its displacement */
    INSPECT_IN_IMM,         /* ... its immediate */
    INSPECT_OUTSIDE_CODE,   /* no decoded instruction holds its first byte:
                               data or padding in an executable mapping, or
                               bytes that do not decode */
    INSPECT_NCLASSES
};

/* The fields of the holding instruction that the sequence touches. */
#define INSPECT_FIELD_PREFIX  0x01u  /* legacy, REX, VEX/EVEX/XOP bytes */
#define INSPECT_FIELD_OPCODE  0x02u
#define INSPECT_FIELD_MODRM   0x04u
#define INSPECT_FIELD_SIB     0x08u
#define INSPECT_FIELD_DISP    0x10u
#define INSPECT_FIELD_IMM     0x20u

#define INSPECT_NONE UINT64_MAX     /* no address / no file offset */
#define INSPECT_PAGE_SIZE 4096u

struct inspect_hit {
    /* Where the sequence's 0F byte is (an XRSTOR64 starts one byte
     * earlier, with its REX.W).  Process: the address in memory.  File:
     * the virtual address the loader gives it, INSPECT_NONE if none. */
    uint64_t addr;
    uint64_t file_offset;           /* INSPECT_NONE if not from a file */
    enum inspect_kind kind;
    enum inspect_class cls;
    bool safe;                      /* real, and at a gate or rewritten site */
    uint8_t fields;                 /* INSPECT_FIELD_* touched */
    /* The decoded instruction that holds the first byte, as a distance
     * back from addr/file_offset and a length; insn_len 0 if none. */
    uint8_t insn_back;
    uint8_t insn_len;
    char object[256];               /* file path, [vdso], [anon], ... */
    char section[32];               /* "" if in no section */
    char symbol[128];               /* "" if none is known */
    uint64_t symbol_offset;
};

struct inspect_report {
    size_t mappings;                /* executable mappings (or segments) */
    size_t pages;                   /* 4 KiB pages inspected */
    size_t uninspected_pages;       /* executable but unreadable: fail */
    size_t linear_mappings;         /* decoded from their start: no file */
    size_t hits;
    size_t by_class[INSPECT_NCLASSES];
    size_t by_kind[INSPECT_NKINDS];
    size_t unsafe;
    size_t rewritten;               /* sites inspect_rewrite_process rewrote
                                       before this (its final) scan */
    struct inspect_hit *hit;        /* all hits, unsafe and safe */
    size_t nhit, cap;
};

/* Both functions add to *report: start from `struct inspect_report r =
 * { 0 };` and release it with inspect_report_free, also after an error.
 *
 * Every executable mapping of the running process (vDSO and anonymous
 * memory included), every byte offset.  0 on success (the report may still
 * list unsafe hits), -1 if /proc/self/maps could not be read or memory ran
 * out. */
int inspect_process(struct inspect_report *report);

/* The executable segments of an ELF file (its executable sections if it
 * has no program headers, e.g. a .o).  0 on success, -1 with errno set if
 * the file cannot be read or is not an x86-64 ELF file. */
int inspect_file(const char *path, struct inspect_report *report);

/* True if nothing unsafe was found and nothing executable went unread. */
bool inspect_report_clean(const struct inspect_report *report);
void inspect_report_free(struct inspect_report *report);

/* Gate sites: the only places a real WRPKRU/XRSTOR is safe.  By address
 * (process inspection), or by symbol in an ELF object, matched by the
 * file's base name ("libkeystore.so"; NULL matches any file).  0 on
 * success, -1 if the registry is full. */
int inspect_gate_add_address(const void *site);
int inspect_gate_add_symbol(const char *object, const char *symbol);
/* The keystore's two WRPKRU labels (keystore/ks_gate.S) in object. */
int inspect_gate_add_keystore(const char *object);
void inspect_gate_reset(void);

#define INSPECT_KS_GATE_ENTER "ks_gate_enter_wrpkru"
#define INSPECT_KS_GATE_LEAVE "ks_gate_leave_wrpkru"

/* ---- rewriting (ERIM's rewriting rules: inspect_rewrite*.c) ------------- */

/* Which of ERIM's rules a rewrite used (struct inspect_rewrite.rules). */
#define INSPECT_RULE_CHECK        0x01u /* a PKRU write, copied and checked */
#define INSPECT_RULE_RELOCATE     0x02u /* instructions moved to the trampoline */
#define INSPECT_RULE_NOP          0x04u /* a NOP between two of them */
#define INSPECT_RULE_SUBSTITUTE   0x08u /* a register swapped for a free one */
#define INSPECT_RULE_SPLIT_IMM    0x10u /* mov $imm: mov $a; lea b(r) */
#define INSPECT_RULE_MOVE_DISP    0x20u /* disp: part of it moved into the base */
#define INSPECT_RULE_SCRATCH_IMM  0x40u /* the immediate through a saved register */
#define INSPECT_RULE_SCRATCH_DISP 0x80u /* the address through a saved register */

/* One rewritten site.  The instruction that holds the sequence (the real
 * PKRU write, or the instruction a sequence lies in or starts in), with
 * whole instructions around it up to 5 bytes or more (the span), became
 * `jmp rel32` to a trampoline near it.  The trampoline does what the span
 * did: each PKRU-writing instruction is copied and followed by a check
 * that PKRU still denies the keystore's key (else it writes a line to
 * fd 2 and calls exit_group(70)); every other instruction is copied, or
 * replaced by an equivalent sequence without the bytes; then it jumps back
 * to the end of the span.  Nothing in the span or the trampoline holds a
 * WRPKRU/XRSTOR sequence but the checked copies. */
struct inspect_rewrite {
    uint64_t site;                  /* the instruction's first byte */
    uint8_t span;                   /* bytes overwritten: jmp, then int3 */
    enum inspect_kind kind;
    enum inspect_class cls;
    uint64_t trampoline;            /* its first byte */
    uint32_t trampoline_len;
    uint64_t checked_site;          /* the copy of the PKRU-writing
                                       instruction: a "rewritten site",
                                       safe by the second rule; 0 if the
                                       span writes no PKRU */
    uint64_t file_offset;           /* of site; INSPECT_NONE if none */
    char object[256];
    char symbol[128];               /* "" if none is known */
    uint64_t symbol_offset;
    uint64_t span_start;            /* where the jmp is (<= site) */
    uint32_t rules;                 /* INSPECT_RULE_* used */
};

/*
 * Scan the process, rewrite every unsafe site, of every class, into the
 * checked or equivalent form for protection key pkey, register the
 * checked copies as rewritten sites, and scan again into *report
 * (report->rewritten: how many were rewritten).  Register the gate sites
 * first (inspect_gate_add_keystore): a gate's WRPKRU must not be
 * rewritten.  Call single-threaded, before lockdown: code is patched
 * through /proc/self/mem.  Sets the checked-form key (inspect_set_pkey) to
 * pkey.  A site that cannot be rewritten safely is left as it is, so the
 * final scan is not clean.
 *
 * 0 only if the final scan is clean.  -1 otherwise: errno EINVAL (pkey
 * not in 1..15), ENOTSUP (the CPU or kernel has no OSPKE: RDPKRU would
 * fault), ENOMEM/EIO (the scan or a patch failed), EPERM (something unsafe
 * remains; the report lists it).  Fail closed on -1.  Each rewritten site
 * and each refusal is logged once (inspect_set_log).
 */
int inspect_rewrite_process(int pkey, struct inspect_report *report);

/*
 * ERIM's static rewriting: the ELF executable or shared object at in,
 * with every unsafe site rewritten by the same rules, written to out.
 * The trampolines go into a new executable PT_LOAD segment at the end of
 * the address space and of the file (a PT_NOTE program header becomes
 * it), described by a section .mpk_tramp; the checks are for protection
 * key pkey.  The output is then inspected (inspect_file, with pkey as the
 * checked-form key) into *report.  0 only if every site was rewritten and
 * that scan is clean; else -1 (errno EPERM: a site could not be rewritten
 * or something unsafe is left, out is not written; ENOEXEC: not an
 * executable or shared object this can handle; EINVAL: bad pkey; other:
 * I/O).  See inspect/README.md, "Static rewriting", for the limits.
 */
int inspect_rewrite_file(const char *in, const char *out, int pkey,
                         struct inspect_report *report);

/* The key that checked forms protect.  A real PKRU write immediately
 * followed by the rewriter's check for this key (ERIM's second safe form),
 * whose failure path ends in the abort stub, is safe in inspect_file and
 * inspect_process as well.  0 (the default): none is. */
void inspect_set_pkey(int pkey);

/* Every site rewritten in this process so far (in the order done). */
const struct inspect_rewrite *inspect_rewrites(size_t *n);

/* Where the rewriter's log lines go (no newline at their end); NULL: one
 * line each on stderr. */
typedef void (*inspect_log_fn)(void *ctx, const char *line);
void inspect_set_log(inspect_log_fn fn, void *ctx);

const char *inspect_kind_name(enum inspect_kind kind);    /* "WRPKRU", ... */
const char *inspect_class_name(enum inspect_class cls);   /* "real", ... */

#endif
