/*
 * inspect_file.c — inspect an ELF file offline (mpk-inspect FILE).
 *
 * What is inspected is what the loader will map executable: each PT_LOAD
 * segment with PF_X, rounded out to whole pages (the kernel maps pages, so
 * the bytes around the segment in those pages are executable too).  Code
 * (where instructions are decoded) is the executable sections within it;
 * everything else in the segment (ELF headers, read-only data in an R-X
 * segment, padding) is searched too, and hits there are "outside code".
 * A file without program headers (a relocatable .o) is inspected section
 * by section; one without section headers is decoded from each segment's
 * start.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect_internal.h"

#define PAGE_DOWN(x) ((x) & ~(uint64_t) (INSPECT_PAGE_SIZE - 1))
#define PAGE_UP(x) PAGE_DOWN((x) + INSPECT_PAGE_SIZE - 1)

struct span {
    uint64_t start, end;
};

static int
cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The executable file ranges, sorted, overlaps merged; *n of them. */
static struct span *
executable_spans(const struct insp_elf *e, size_t *n)
{
    size_t cap = e->nseg + e->nsec + 1;
    struct span *s = calloc(cap, sizeof(*s));
    if (!s)
        return NULL;
    *n = 0;
    for (size_t i = 0; i < e->nseg; i++) {
        const struct insp_elf_segment *g = &e->seg[i];
        if (!(g->flags & PF_X) || g->filesz == 0 || g->offset >= e->size)
            continue;
        uint64_t end = g->filesz > e->size - g->offset ? e->size
                                                      : g->offset + g->filesz;
        end = PAGE_UP(end) < e->size ? PAGE_UP(end) : e->size;
        s[(*n)++] = (struct span) { PAGE_DOWN(g->offset), end };
    }
    if (*n == 0)                        /* a .o: its code sections */
        for (size_t i = 0; i < e->nsec; i++)
            if (insp_elf_is_code(&e->sec[i]))
                s[(*n)++] = (struct span) {
                    e->sec[i].offset, e->sec[i].offset + e->sec[i].size };
    qsort(s, *n, sizeof(*s), cmp_span);
    size_t m = 0;
    for (size_t i = 0; i < *n; i++) {
        if (m && s[i].start < s[m - 1].end) {
            if (s[i].end > s[m - 1].end)
                s[m - 1].end = s[i].end;
        } else {
            s[m++] = s[i];
        }
    }
    *n = m;
    return s;
}

/* The code of e as file ranges, clipped to [off_lo, off_hi), sorted:
 * its code sections, or its executable segments if it has no sections. */
static struct span *
code_spans(const struct insp_elf *e, uint64_t off_lo, uint64_t off_hi,
           size_t *n)
{
    bool any_section = false;
    for (size_t i = 0; i < e->nsec; i++)
        any_section = any_section || insp_elf_is_code(&e->sec[i]);
    struct span *s = calloc(e->nsec + e->nseg + 1, sizeof(*s));
    if (!s)
        return NULL;
    *n = 0;
    for (size_t i = 0; i < e->nsec + e->nseg; i++) {
        uint64_t lo, hi;
        if (i < e->nsec) {
            if (!insp_elf_is_code(&e->sec[i]))
                continue;
            lo = e->sec[i].offset;
            hi = lo + e->sec[i].size;
        } else {
            const struct insp_elf_segment *g = &e->seg[i - e->nsec];
            if (any_section || !(g->flags & PF_X) || g->offset >= e->size)
                continue;
            lo = g->offset;
            hi = g->filesz > e->size - lo ? e->size : lo + g->filesz;
        }
        lo = lo > off_lo ? lo : off_lo;
        hi = hi < off_hi ? hi : off_hi;
        if (lo < hi)
            s[(*n)++] = (struct span) { lo, hi };
    }
    qsort(s, *n, sizeof(*s), cmp_span);
    return s;
}

int
insp_region_add_elf_code(struct insp_region *r, struct insp_elf *e,
                         uint64_t off_lo, uint64_t off_hi, uint64_t delta)
{
    size_t n;
    struct span *code;
    if (insp_elf_load_symbols(e) != 0
        || !(code = code_spans(e, off_lo, off_hi, &n)))
        return -1;
    /* code starts and function symbols, merged in offset order, so that
     * the region needs no sorting (symbol tables are large) */
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i <= e->nsym && rc == 0; i++) {
        uint64_t off = i < e->nsym ? e->sym[i].off : UINT64_MAX;
        while (k < n && code[k].start <= off && rc == 0) {
            rc = insp_region_add_code(r, code[k].start + delta,
                                      code[k].end + delta);
            k++;
        }
        if (i == e->nsym || rc != 0)
            break;
        const struct insp_elf_symbol *s = &e->sym[i];
        if ((s->type == STT_FUNC || s->type == STT_GNU_IFUNC)
            && s->off >= off_lo && s->off < off_hi)
            rc = insp_region_add_anchor(r, s->off + delta);
    }
    free(code);
    return rc;
}

static int
build_file_region(struct insp_region *r, void *elf)
{
    return insp_region_add_elf_code(r, elf, 0, UINT64_MAX, 0);
}

int
insp_image_regions(struct insp_elf *e, struct insp_region **out, size_t *n)
{
    size_t nspan = 0;
    struct span *span = executable_spans(e, &nspan);
    if (!span)
        return -1;
    struct insp_region *r = calloc(nspan ? nspan : 1, sizeof(*r));
    if (!r) {
        free(span);
        return -1;
    }
    for (size_t i = 0; i < nspan; i++) {
        r[i].bytes = e->image + span[i].start;
        r[i].base = span[i].start;
        r[i].len = span[i].end - span[i].start;
        r[i].build = build_file_region;
        r[i].build_arg = e;
    }
    free(span);
    *out = r;
    *n = nspan;
    return 0;
}

struct file_ctx {
    const char *name;
    struct insp_elf *elf;
    struct inspect_report *report;
    const struct insp_region *r;
};

static int
on_file_hit(void *ctx, const struct insp_raw_hit *raw)
{
    struct file_ctx *f = ctx;
    struct inspect_hit hit = {
        .file_offset = raw->pos,
        .addr = insp_elf_vaddr(f->elf, raw->pos),
        .kind = raw->kind, .cls = raw->cls, .fields = raw->fields,
        .insn_back = raw->insn_back, .insn_len = raw->insn_len,
    };
    insp_copy_name(hit.object, sizeof(hit.object), f->name);
    insp_hit_describe(&hit, f->elf, raw->pos);
    uint64_t insn = raw->pos - raw->insn_back;
    hit.safe = raw->cls == INSPECT_REAL
            && (insp_gate_is_site(f->name, f->elf, insn, INSPECT_NONE)
                || insp_checked_form(f->r, insn + raw->insn_len, raw->kind,
                                     insp_checked_pkey()));
    return insp_report_add(f->report, &hit);
}

int
insp_inspect_image(const char *name, const uint8_t *image, size_t size,
                   struct inspect_report *report)
{
    struct insp_elf elf;
    if (insp_elf_parse(&elf, image, size) != 0) {
        errno = ENOEXEC;
        return -1;
    }
    struct insp_region *r;
    size_t n;
    if (insp_image_regions(&elf, &r, &n) != 0) {
        insp_elf_free(&elf);
        errno = ENOMEM;
        return -1;
    }
    struct file_ctx ctx = { name, &elf, report, NULL };
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ctx.r = &r[i];
        report->mappings++;
        report->pages += (r[i].len + INSPECT_PAGE_SIZE - 1) / INSPECT_PAGE_SIZE;
        if (rc == 0 && insp_scan_region(&r[i], on_file_hit, &ctx) != 0) {
            errno = ENOMEM;
            rc = -1;
        }
        insp_region_free(&r[i]);
    }
    free(r);
    insp_elf_free(&elf);
    return rc;
}

int
inspect_file(const char *path, struct inspect_report *report)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : ENOEXEC;
        return -1;
    }
    void *image = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE,
                       fd, 0);
    close(fd);
    if (image == MAP_FAILED)
        return -1;
    int rc = insp_inspect_image(path, image, (size_t) st.st_size, report);
    int saved = errno;
    munmap(image, (size_t) st.st_size);
    errno = saved;
    return rc;
}
