/*
 * inspect_tramp.c — trampolines: where they live and what they hold.
 *
 * In memory, a trampoline page is mapped at a free address within 1 GiB
 * of the site (found in /proc/self/maps, taken with MAP_FIXED_NOREPLACE),
 * so that the site's `jmp rel32`, the jump back and the relocated
 * instructions' own rel32s (which reached 2 GiB from the site) usually
 * still fit; the encoders check each one.  It is two pages, written while
 * they are read-write and not executable:
 *
 *   code page (r-x when sealed)      data page (r--)
 *   +0   abort stub                  abort lines, one per trampoline
 *   +32  trampoline, int3 padding, trampoline, ...  int3 to the end
 *
 * In static mode (inspect_static.c) the same layout is built in an arena
 * that becomes a new segment of the output file: code, then the abort
 * lines (printable ASCII only: that segment is executable).
 *
 * A trampoline is the span's instructions in order.  Each PKRU-writing
 * one is copied (relocated) and followed at once by its check
 * (inspect_check.c); each other one is moved, or replaced by an equivalent
 * sequence when its own bytes hold a sequence (inspect_xform.c).  Where
 * the bytes of two neighbours would meet into a sequence (a span over
 * `mov $0x0f,%al; add %ebp,%edi`), a NOP goes between them (ERIM's rule
 * for a sequence across instructions).  Then `jmp` back to the end of the
 * span.  int3 fills every byte between trampolines, so that the
 * inspector's linear sweep of this anonymous mapping (from its start)
 * finds every trampoline's instructions where they are, and a jump into
 * the padding traps.  The abort lines live in the data page because text
 * in an executable page would be decoded too.
 *
 * No stray sequence: a rel32 (of the jump back, of a relocated operand)
 * or the jump written over the span could, by chance, hold 0F 01 EF or an
 * XRSTOR encoding, in itself or together with the bytes around it.  Each
 * trampoline and each patch is searched before it is accepted: a sequence
 * across two instructions gets a NOP between them; one inside an
 * instruction moves the trampoline one byte on, which changes every rel32.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "inspect_maps.h"
#include "inspect_rewrite.h"

#define PAGE INSPECT_PAGE_SIZE
#define REACH (1ull << 30)
#define HEADER 32                   /* the abort stub, then int3 */
#define LINE_MAX 200
#define ATTEMPTS 32
#define USER_BOTTOM 0x10000ull      /* vm.mmap_min_addr's usual value */
#define USER_TOP (1ull << 47)

void
insp_tramp_pool_init(struct insp_tramp_pool *p, int pkey)
{
    memset(p, 0, sizeof(*p));
    p->pkey = pkey;
}

/* Where the bytes of runtime address a are written now. */
static uint8_t *
host(const struct insp_tramp_pool *p, uint64_t a)
{
    if (!p->arena)
        return (uint8_t *) (uintptr_t) a;
    return p->arena + (a - p->page[0].code);
}

static struct insp_tramp_page *
new_page(struct insp_tramp_pool *p, uint64_t code, uint32_t code_size,
         uint32_t data_size)
{
    if (p->npage == p->cappage) {
        size_t ncap = p->cappage ? p->cappage * 2 : 4;
        struct insp_tramp_page *np = realloc(p->page, ncap * sizeof(*np));
        if (!np)
            return NULL;
        p->page = np;
        p->cappage = ncap;
    }
    struct insp_tramp_page *pg = &p->page[p->npage++];
    *pg = (struct insp_tramp_page) { code, code_size, data_size, HEADER, 0,
                                     false };
    uint8_t *b = host(p, code);
    memset(b, 0xcc, code_size);
    insp_emit_abort(b);
    return pg;
}

int
insp_tramp_pool_arena(struct insp_tramp_pool *p, uint64_t vaddr,
                      uint32_t code_size, uint32_t data_size)
{
    if (p->arena || p->npage)
        return -1;
    p->arena = calloc(1, (size_t) code_size + data_size);
    if (!p->arena)
        return -1;
    p->arena_len = (size_t) code_size + data_size;
    /* the abort lines are text: nothing to decode in them, but pad with
     * what is no instruction prefix either */
    memset(p->arena + code_size, ' ', data_size);
    if (!new_page(p, vaddr, code_size, data_size)) {
        free(p->arena);
        p->arena = NULL;
        return -1;
    }
    return 0;
}

void
insp_tramp_pool_free(struct insp_tramp_pool *p)
{
    free(p->page);
    free(p->arena);
    p->page = NULL;
    p->arena = NULL;
    p->npage = p->cappage = 0;
    p->arena_len = 0;
}

/* ---- free address space near the site ----------------------------------- */

struct cand {
    uint64_t addr, dist;
};

static int
cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return x->dist < y->dist ? -1 : x->dist > y->dist;
}

static void
add_cand(struct cand *c, size_t *n, uint64_t addr, uint64_t target)
{
    uint64_t dist = addr > target ? addr + PAGE - target : target - addr;
    if (dist < REACH)
        c[(*n)++] = (struct cand) { addr, dist };
}

/* Two fresh read-write pages within REACH of target; 0 or -1. */
static int
map_near(uint64_t target, uint64_t *out)
{
    struct insp_mapping *m;
    size_t n;
    if (insp_maps_read_all("/proc/self/maps", &m, &n) != 0)
        return -1;
    struct cand *c = malloc((2 * n + 2) * sizeof(*c));
    size_t nc = 0;
    uint64_t prev_end = USER_BOTTOM;
    bool prev_heap = false;
    for (size_t i = 0; c && i <= n; i++) {
        bool last = i == n || m[i].start >= USER_TOP;
        uint64_t lo = prev_end, hi = last ? USER_TOP : m[i].start;
        /* a guard page on either side of ours; not right on top of the
         * brk heap (it grows up) nor right under a stack (it grows down) */
        if (hi > lo && hi - lo >= 4 * PAGE) {
            if (!prev_heap)
                add_cand(c, &nc, lo + PAGE, target);
            if (last || strncmp(m[i].path, "[stack", 6) != 0)
                add_cand(c, &nc, hi - 3 * PAGE, target);
        }
        if (last)
            break;
        if (m[i].end > prev_end)
            prev_end = m[i].end;
        prev_heap = strcmp(m[i].path, "[heap]") == 0;
    }
    free(m);
    if (!c)
        return -1;
    qsort(c, nc, sizeof(*c), cmp_cand);
    int rc = -1;
    for (size_t i = 0; i < nc && rc != 0; i++) {
        void *want = (void *) (uintptr_t) c[i].addr;
        void *got = mmap(want, 2 * PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                         -1, 0);
        if (got == want) {
            *out = c[i].addr;
            rc = 0;
        } else if (got != MAP_FAILED) {
            munmap(got, 2 * PAGE);  /* a kernel that ignored the flag */
        }
    }
    free(c);
    return rc;
}

static bool
has_room(const struct insp_tramp_page *pg)
{
    return !pg->sealed
        && pg->used + 16 + ATTEMPTS + INSP_TRAMP_MAX <= pg->code_size
        && pg->data_used + LINE_MAX <= pg->data_size;
}

/* An unsealed page within reach of site with room, or a new one; in
 * static mode, the arena if it has room. */
static struct insp_tramp_page *
page_for(struct insp_tramp_pool *p, uint64_t site)
{
    if (p->arena)
        return has_room(&p->page[0]) ? &p->page[0] : NULL;
    for (size_t i = 0; i < p->npage; i++) {
        struct insp_tramp_page *pg = &p->page[i];
        uint64_t d = pg->code > site ? pg->code - site : site - pg->code;
        if (d < REACH - PAGE && has_room(pg))
            return pg;
    }
    uint64_t code;
    if (map_near(site, &code) != 0)
        return NULL;
    struct insp_tramp_page *pg = new_page(p, code, PAGE, PAGE);
    if (!pg)
        munmap((void *) (uintptr_t) code, 2 * PAGE);
    return pg;
}

/* ---- one trampoline ----------------------------------------------------- */

struct layout {
    uint64_t at;                    /* runtime address of buf[0] */
    uint8_t buf[INSP_TRAMP_MAX];
    size_t n;
    size_t opcode[INSP_SPAN_MAX];   /* offsets of the allowed 0F bytes */
    size_t nopcode;
    /* piece i: the output of span instruction i (the jump back is piece
     * ninsn), after nops[i] NOPs that start at piece[i] */
    size_t piece[INSP_SPAN_MAX + 1];
    uint8_t nops[INSP_SPAN_MAX + 1];
    uint32_t rules;
};

#define MAX_NOPS 3                  /* per piece */

/* Lay the trampoline out at l->at.  0; 1 if it (or the patch) holds a
 * stray sequence inside one piece there (move it); 2 if one crosses from a
 * piece into the next (a NOP was added between them: lay it out again);
 * -1 refused. */
static int
assemble(const struct insp_tramp_pool *p, const struct insp_span *s,
         uint64_t abort_stub, uint64_t msg, uint32_t msglen,
         struct layout *l, struct insp_tramp *t, char *why, size_t whylen)
{
    l->n = l->nopcode = 0;
    l->rules = 0;
    t->nsites = 0;
    for (size_t i = 0; i <= s->ninsn; i++) {
        if (l->n + MAX_NOPS + INSP_XFORM_MAX + INSP_CHECK_MAX + INSP_JMP_LEN
            > sizeof(l->buf))
            return insp_refuse(why, whylen, "the trampoline would be too "
                               "long");
        l->piece[i] = l->n;
        memset(l->buf + l->n, 0x90, l->nops[i]);
        l->n += l->nops[i];
        if (l->nops[i])
            l->rules |= INSPECT_RULE_NOP;
        if (i == s->ninsn)
            break;
        size_t o = s->insn_off[i];
        size_t len = (i + 1 < s->ninsn ? s->insn_off[i + 1] : s->len) - o;
        size_t ilen;
        int kind = insp_insn_pkru_kind(s->bytes + o, len, &ilen);
        if (kind < 0 && o + len == s->len
            && insp_emulate_call(s->bytes + o, len, s->site + o,
                                 l->at + l->n, l->buf + l->n) != 0) {
            /* a direct call ending the span (e.g. its rel32 holds the
             * sequence): the callee returns to the original code after
             * the span, as before; the jump back below is not reached */
            l->n += INSP_CALL_EMU_LEN;
            l->rules |= INSPECT_RULE_RELOCATE;
            continue;
        }
        if (kind < 0) {
            /* any other instruction: moved, or replaced by an equivalent
             * sequence if its bytes hold one (ERIM's rules) */
            uint32_t rule = 0;
            size_t m = insp_xform(s->bytes + o, len, s->site + o,
                                  l->at + l->n, l->buf + l->n, &rule, why,
                                  whylen);
            if (m == 0)
                return -1;
            l->n += m;
            l->rules |= rule;
            continue;
        }
        size_t m = insp_relocate(s->bytes + o, len, s->site + o,
                                 l->at + l->n, l->buf + l->n, why, whylen);
        if (m == 0)
            return -1;
        /* its 0F follows its prefixes (a REX.W for XRSTOR64) */
        const uint8_t *esc = memchr(l->buf + l->n, 0x0f, m);
        if (!esc)
            return insp_refuse(why, whylen, "no 0F in a PKRU write");
        t->sites[t->nsites++] = l->at + l->n;
        l->opcode[l->nopcode++] = (size_t) (esc - l->buf);
        l->n += m;
        size_t c = insp_emit_check((enum inspect_kind) kind, p->pkey,
                                   l->buf + l->n, l->at + l->n, msg,
                                   msglen, abort_stub);
        if (c == 0)
            return insp_refuse(why, whylen, "the check does not fit");
        l->n += c;
        l->rules |= INSPECT_RULE_CHECK;
    }
    int64_t back = (int64_t) (s->site + s->len - (l->at + l->n + 5));
    if (back != (int32_t) back)
        return insp_refuse(why, whylen, "the jump back is out of reach");
    l->buf[l->n++] = 0xe9;
    for (unsigned k = 0; k < 4; k++)
        l->buf[l->n++] = (uint8_t) ((uint64_t) back >> (8 * k));

    for (size_t i = 0; i < l->n; i++) {
        int kind = insp_match_at(l->buf, l->n, i);
        if (kind < 0)
            continue;
        bool allowed = false;
        for (size_t k = 0; k < l->nopcode; k++)
            allowed = allowed || l->opcode[k] == i;
        if (allowed)
            continue;
        /* a boundary between pieces inside it: a NOP there (ERIM's rule
         * for a sequence across instructions) */
        size_t first = kind == INSPECT_XRSTOR64 ? i - 1 : i;
        for (size_t k = 1; k <= s->ninsn; k++)
            if (l->piece[k] > first && l->piece[k] <= i + 2) {
                if (l->nops[k] == MAX_NOPS)
                    return 1;
                l->nops[k]++;
                return 2;
            }
        return 1;
    }

    int64_t to = (int64_t) (l->at - (s->site + INSP_JMP_LEN));
    if (to != (int32_t) to)
        return insp_refuse(why, whylen, "the trampoline is out of reach");
    memset(t->patch, 0xcc, sizeof(t->patch));
    t->patch[0] = 0xe9;
    for (unsigned k = 0; k < 4; k++)
        t->patch[1 + k] = (uint8_t) ((uint64_t) to >> (8 * k));
    uint8_t w[3 + INSP_SPAN_MAX + 3];
    memcpy(w, s->before, s->nbefore);
    memcpy(w + s->nbefore, t->patch, s->len);
    memcpy(w + s->nbefore + s->len, s->after, s->nafter);
    if (insp_bytes_have_sequence(w, s->nbefore + s->len + s->nafter,
                                 s->nbefore, s->nbefore + s->len))
        return 1;
    t->addr = l->at;
    t->len = (uint32_t) l->n;
    t->rules = l->rules;
    return 0;
}

/* The abort line, as text only: it may lie in an executable segment
 * (static mode), where a byte outside printable ASCII could start a
 * sequence. */
static int
abort_line(char *line, size_t size, int pkey, const char *what)
{
    int ml = snprintf(line, size, "mpk-tls: PKRU opens protection key %d "
                      "after %s: exiting\n", pkey, what);
    if (ml < 0)
        return -1;
    if (ml >= (int) size) {
        ml = (int) size - 1;
        line[ml - 1] = '\n';
    }
    for (int i = 0; i < ml - 1; i++)
        if (line[i] < 0x20 || line[i] > 0x7e)
            line[i] = '?';
    return ml;
}

int
insp_tramp_build(struct insp_tramp_pool *p, const struct insp_span *s,
                 const char *what, struct insp_tramp *t, char *why,
                 size_t whylen)
{
    struct insp_tramp_page *pg = page_for(p, s->site);
    if (!pg)
        return insp_refuse(why, whylen, p->arena
                           ? "the trampoline area is full"
                           : "no trampoline page within 1 GiB of the site");
    char line[LINE_MAX];
    int ml = abort_line(line, sizeof(line), p->pkey, what);
    if (ml < 0)
        return insp_refuse(why, whylen, "no abort line");
    uint64_t msg = pg->code + pg->code_size + pg->data_used;
    struct layout l;
    for (unsigned attempt = 0; attempt < ATTEMPTS; attempt++) {
        /* one int3 at least before it; then 16-byte aligned, or moved */
        uint64_t off = ((pg->used + 1 + 15) & ~15ull) + attempt;
        l.at = pg->code + off;
        memset(l.nops, 0, sizeof(l.nops));
        int rc = -1;
        for (unsigned redo = 0; redo <= INSP_SPAN_MAX * MAX_NOPS; redo++)
            if ((rc = assemble(p, s, pg->code, msg, (uint32_t) ml, &l, t,
                               why, whylen)) != 2)
                break;
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        memcpy(host(p, l.at), l.buf, l.n);
        memcpy(host(p, msg), line, (size_t) ml);
        pg->used = (uint32_t) (off + l.n);
        pg->data_used += ((uint32_t) ml + 7) & ~7u;
        return 0;
    }
    return insp_refuse(why, whylen, "every placement holds a stray sequence");
}

int
insp_tramp_seal(struct insp_tramp_pool *p)
{
    if (p->arena)
        return 0;                   /* the output file's segment is r-x */
    for (size_t i = 0; i < p->npage; i++) {
        struct insp_tramp_page *pg = &p->page[i];
        if (pg->sealed)
            continue;
        void *code = (void *) (uintptr_t) pg->code;
        if (mprotect(code, PAGE, PROT_READ | PROT_EXEC) != 0
            || mprotect((uint8_t *) code + PAGE, PAGE, PROT_READ) != 0)
            return -1;
        pg->sealed = true;
    }
    return 0;
}
