/*
 * inspect_internal.h — the pieces behind inspect.h, shared by the library,
 * the CLI's benchmark and the unit tests.
 *
 *   search    finds the byte sequences (every offset, SIMD)
 *   region    a contiguous run of executable bytes, where code is, and the
 *             anchors (known instruction starts) that decoding begins at
 *   classify  decodes with Zydis from the nearest anchor to each hit
 *   elf       minimal ELF64 reader: sections, segments, symbols
 *   sort      radix sort for symbol tables and anchors
 *   gates     the registry of safe sites
 *   report    the hit list and its counters
 */
#ifndef MPKTLS_INSPECT_INTERNAL_H
#define MPKTLS_INSPECT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inspect.h"

/* ---- search (inspect_search.c) ------------------------------------------ */

/* The kind of the sequence whose 0F byte is b[i], or -1 if none starts
 * there.  b[i - 1] (if i > 0) decides XRSTOR64. */
int insp_match_at(const uint8_t *b, size_t len, size_t i);

/* Calls found(ctx, i, kind) for every sequence in b[0, len), in order;
 * stops early and returns what found returned if it is not 0. */
typedef int (*insp_found_fn)(void *ctx, size_t i, enum inspect_kind kind);
int insp_search(const uint8_t *b, size_t len, insp_found_fn found, void *ctx);

/* ---- sorting (inspect_sort.c) ------------------------------------------- */

/* Ascending; 0, or -1 if out of memory (a is then unchanged). */
int insp_sort_u64(uint64_t *a, size_t n);

/* ---- regions (inspect_region.c) ----------------------------------------- */

/* Positions are addresses (process) or file offsets (files). */
struct insp_code {
    uint64_t start, end;            /* decode instructions in [start, end) */
};

struct insp_region {
    const uint8_t *bytes;           /* bytes[0] is at position base */
    uint64_t base, len;
    struct insp_code *code;         /* sorted, disjoint after prepare */
    size_t ncode, capcode;
    uint64_t *anchor;               /* sorted, unique; each code start */
    size_t nanchor, capanchor;
    /* Fills code and anchors.  Called once, when the first hit is found:
     * most regions have none, and symbols cost more than the search. */
    int (*build)(struct insp_region *r, void *arg);
    void *build_arg;
    bool built;
};

/* Code outside [base, base + len) is clipped; every code range's start
 * becomes an anchor.  0, or -1 if out of memory. */
int insp_region_add_code(struct insp_region *r, uint64_t start, uint64_t end);
/* A known instruction start (a function symbol); ignored outside code. */
int insp_region_add_anchor(struct insp_region *r, uint64_t pos);
/* Runs build (once) and sorts and merges; 0, or -1 if build failed. */
int insp_region_prepare(struct insp_region *r);
void insp_region_free(struct insp_region *r);
/* The code range holding pos, or NULL (after insp_region_prepare). */
const struct insp_code *insp_code_at(const struct insp_region *r,
                                     uint64_t pos);
/* Index of the last anchor <= pos; pos must lie in a code range (whose
 * start is an anchor).  After insp_region_prepare. */
size_t insp_anchor_before(const struct insp_region *r, uint64_t pos);
/* The first anchor > pos, or UINT64_MAX if none. */
uint64_t insp_anchor_after(const struct insp_region *r, uint64_t pos);

/* ---- classification (inspect_classify.c) -------------------------------- */

struct insp_raw_hit {
    uint64_t pos;                   /* of the 0F byte */
    enum inspect_kind kind;
    enum inspect_class cls;
    uint8_t fields, insn_back, insn_len;
};

typedef int (*insp_hit_fn)(void *ctx, const struct insp_raw_hit *hit);

/* Searches the whole region and classifies each sequence; calls hit() for
 * each in order.  0, or what hit() returned if it was not 0. */
int insp_scan_region(struct insp_region *r, insp_hit_fn hit, void *ctx);

/* Benchmark reference: decodes every instruction of every code range
 * (linear sweep with resynchronisation at anchors); the count. */
size_t insp_decode_all(struct insp_region *r);



/* ---- ELF (inspect_elf.c) ------------------------------------------------- */

struct insp_elf_section {
    const char *name;
    uint32_t type, link;
    uint64_t flags, addr, offset, size;
};

struct insp_elf_segment {
    uint32_t type, flags;
    uint64_t offset, vaddr, filesz;
};

struct insp_elf_symbol {
    uint64_t off;                   /* file offset of its value */
    uint64_t size;
    const char *name;
    uint32_t shndx;
    uint8_t type;                   /* STT_* */
};

struct insp_elf {
    const uint8_t *image;
    size_t size;
    uint16_t type;                  /* ET_* */
    struct insp_elf_section *sec;
    size_t nsec;
    struct insp_elf_segment *seg;   /* PT_LOAD only */
    size_t nseg;
    struct insp_elf_symbol *sym;    /* .symtab, else .dynsym; by offset */
    size_t nsym;
    bool symbols_loaded;
};

/* Headers only: 0, or -1 (not an x86-64 ELF64 little-endian image, bad
 * bounds, no memory).  Names point into image, which must outlive e. */
int insp_elf_parse(struct insp_elf *e, const uint8_t *image, size_t size);
/* The symbol table, read on first use (sorting thousands of symbols costs
 * more than searching the file).  0, or -1 if out of memory.  The symbol
 * functions below see no symbols before this. */
int insp_elf_load_symbols(struct insp_elf *e);
void insp_elf_free(struct insp_elf *e);

static inline bool
insp_elf_is_code(const struct insp_elf_section *s)
{
    return (s->flags & 0x4u /* SHF_EXECINSTR */) && s->type != 8 /* NOBITS */
        && s->size > 0;
}

/* The section with file data at off (code sections preferred), or NULL. */
const struct insp_elf_section *insp_elf_section_at(const struct insp_elf *e,
                                                   uint64_t off);
/* The symbol that holds off, or the label (size 0) just before it. */
const struct insp_elf_symbol *insp_elf_symbol_at(const struct insp_elf *e,
                                                 uint64_t off);
const struct insp_elf_symbol *insp_elf_symbol_named(const struct insp_elf *e,
                                                    const char *name);
/* The virtual address the loader gives file offset off, or INSPECT_NONE. */
uint64_t insp_elf_vaddr(const struct insp_elf *e, uint64_t off);

/* ---- ELF images (inspect_file.c) ---------------------------------------- */

/* The file regions that end up executable: page-rounded executable PT_LOAD
 * ranges, or executable sections if there are none; with code ranges and
 * anchors built on first use.  0, or -1 if out of memory.  Free each
 * with insp_region_free and the array with free(). */
int insp_image_regions(struct insp_elf *e, struct insp_region **out,
                       size_t *n);
/* The code sections (or executable segments, if there are no sections)
 * and function symbols of e that lie in file range [off_lo, off_hi), added
 * to r at position = file offset + delta.  0, or -1 if out of memory. */
int insp_region_add_elf_code(struct insp_region *r, struct insp_elf *e,
                             uint64_t off_lo, uint64_t off_hi, uint64_t delta);
/* inspect_file on an image already in memory; name is its path. */
int insp_inspect_image(const char *name, const uint8_t *image, size_t size,
                       struct inspect_report *report);

/* ---- gates (inspect_gates.c) -------------------------------------------- */

/* Is a real instruction starting at insn_addr (INSPECT_NONE if unknown) or
 * at file offset insn_off of object (path; elf may be NULL) a gate site? */
bool insp_gate_is_site(const char *object, const struct insp_elf *elf,
                       uint64_t insn_off, uint64_t insn_addr);

/* Is a real instruction starting at insn_addr a rewritten site: the
 * checked copy in a trampoline whose bytes in region r (the scan's view)
 * are still those the rewriter wrote (inspect_gates.c)? */
bool insp_rewritten_is_site(uint64_t insn_addr, const struct insp_region *r);
/* Register one: the trampoline [tramp, tramp + len) as written, and the
 * site in it.  0, or -1 if out of memory. */
int insp_rewritten_add(uint64_t site, uint64_t tramp, const uint8_t *bytes,
                       size_t len);

/* The key of checked forms (inspect_set_pkey); 0 if none. */
int insp_checked_pkey(void);
/* Is the PKRU write of kind that ends at insn_end in region r followed at
 * once by the rewriter's check for pkey, whose failure jumps to an abort
 * stub in r?  ERIM's second safe form, recognised by its bytes
 * (inspect_check.c); false if pkey is 0. */
bool insp_checked_form(const struct insp_region *r, uint64_t insn_end,
                       enum inspect_kind kind, int pkey);

/* ---- process (inspect_process.c) ---------------------------------------- */

/* inspect_process, with hook called for each hit before it is added to
 * the report, with the region that holds it (bytes, code ranges, anchors;
 * prepared).  The hook may change nothing but *hit; a non-zero return
 * stops the scan, and insp_process_scan then returns -1. */
typedef int (*insp_process_hook)(void *ctx, struct inspect_hit *hit,
                                 const struct insp_region *r);
int insp_process_scan(struct inspect_report *report, insp_process_hook hook,
                      void *ctx);

/* ---- report (inspect_report.c) ------------------------------------------ */

/* Copies hit into the report and counts it.  0, or -1 if out of memory. */
int insp_report_add(struct inspect_report *r, const struct inspect_hit *hit);
/* Fills section/symbol of hit from elf at file offset off. */
void insp_hit_describe(struct inspect_hit *hit, const struct insp_elf *elf,
                       uint64_t off);
void insp_copy_name(char *dst, size_t size, const char *src);

#endif
