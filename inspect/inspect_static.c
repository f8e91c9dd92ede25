/*
 * inspect_static.c — ERIM's static rewriting: inspect_rewrite_file, behind
 * `mpk-inspect --rewrite OUT FILE`.
 *
 * The rules are those of the dynamic rewriter (inspect_rewrite.c: spans,
 * trampolines, checks, equivalent forms); only where the trampolines live
 * and how the jumps are written differ:
 *   1. The file is read into memory.  Each executable PT_LOAD segment is a
 *      region whose positions are virtual addresses (rel32s are computed
 *      between addresses), decoded from the file's code sections and
 *      function symbols, as inspect_file does.
 *   2. Every unsafe hit is planned.  The trampolines and their abort lines
 *      go into an arena that becomes a new segment, one guard page above
 *      the highest PT_LOAD (above .bss), at the end of the file.
 *   3. If any hit could not be planned, nothing is written (fail closed).
 *      Else each span is overwritten with its jmp in the copy, and the new
 *      segment is added: a PT_NOTE program header becomes its PT_LOAD
 *      (R+X; moved after the last PT_LOAD, which must stay last), and a
 *      section .mpk_tramp (code) and .mpk_tramp_msg (the abort lines, in
 *      printable ASCII) describe it, so that the inspector decodes the
 *      trampolines from their start.  The section headers and a longer
 *      .shstrtab are written at the end of the file.
 *   4. The output is inspected with the checked-form key set to pkey (the
 *      trampolines' checks): 0 only if the scan is clean.
 * Refused (ENOEXEC): files that are not ET_EXEC/ET_DYN x86-64, that have
 * text relocations (the loader would write into the rewritten code), no
 * PT_NOTE to turn into the segment, or segments whose offset and address
 * disagree modulo the page size.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect_rewrite.h"

#define PAGE INSPECT_PAGE_SIZE
#define PAGE_DOWN(x) ((x) & ~(uint64_t) (PAGE - 1))
#define PAGE_UP(x) PAGE_DOWN((x) + PAGE - 1)
#define TRAMP_SPACE 640             /* code bytes reserved per site */
#define LINE_SPACE 208              /* abort-line bytes per site */

struct image {
    uint8_t *b;
    size_t size;
    Elf64_Ehdr eh;
    struct insp_elf elf;
};

static int
read_file(const char *path, struct image *im, mode_t *mode)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        int e = errno;
        close(fd);
        errno = e ? e : ENOEXEC;
        return -1;
    }
    im->size = (size_t) st.st_size;
    *mode = st.st_mode & 07777;
    im->b = malloc(im->size);
    size_t got = 0;
    while (im->b && got < im->size) {
        ssize_t n = read(fd, im->b + got, im->size - got);
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    close(fd);
    if (!im->b || got != im->size) {
        int e = im->b ? EIO : ENOMEM;
        free(im->b);
        im->b = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

static Elf64_Phdr
phdr(const struct image *im, size_t i)
{
    Elf64_Phdr ph;
    memcpy(&ph, im->b + im->eh.e_phoff + i * sizeof(ph), sizeof(ph));
    return ph;
}

/* Text relocations: DT_TEXTREL, or DF_TEXTREL in DT_FLAGS. */
static bool
has_textrel(const struct image *im)
{
    for (size_t i = 0; i < im->eh.e_phnum; i++) {
        Elf64_Phdr ph = phdr(im, i);
        if (ph.p_type != PT_DYNAMIC || ph.p_offset > im->size
            || ph.p_filesz > im->size - ph.p_offset)
            continue;
        for (size_t k = 0; k + sizeof(Elf64_Dyn) <= ph.p_filesz;
             k += sizeof(Elf64_Dyn)) {
            Elf64_Dyn d;
            memcpy(&d, im->b + ph.p_offset + k, sizeof(d));
            if (d.d_tag == DT_NULL)
                break;
            if (d.d_tag == DT_TEXTREL
                || (d.d_tag == DT_FLAGS && (d.d_un.d_val & DF_TEXTREL)))
                return true;
        }
    }
    return false;
}

/* The PT_NOTE to turn into the new segment: one that is not also the
 * PT_GNU_PROPERTY (the kernel reads that one), if there is a choice. */
static int
pick_note(const struct image *im)
{
    int best = -1;
    uint64_t prop = UINT64_MAX;
    for (size_t i = 0; i < im->eh.e_phnum; i++)
        if (phdr(im, i).p_type == PT_GNU_PROPERTY)
            prop = phdr(im, i).p_offset;
    for (size_t i = 0; i < im->eh.e_phnum; i++) {
        Elf64_Phdr ph = phdr(im, i);
        if (ph.p_type != PT_NOTE)
            continue;
        if (best < 0 || ph.p_offset != prop)
            best = (int) i;
        if (ph.p_offset != prop)
            break;
    }
    return best;
}

/* ---- scanning and planning ---------------------------------------------- */

struct seg_ctx {
    struct image *im;
    const char *name;
    struct insp_rewriter *w;
    const struct insp_region *r;
    uint64_t delta;                 /* vaddr - file offset */
    int pkey;
    size_t unsafe;
    bool count_only;
    bool nomem;
};

static int
build_segment(struct insp_region *r, void *arg)
{
    const struct seg_ctx *c = arg;
    return insp_region_add_elf_code(r, &c->im->elf, r->base - c->delta,
                                    r->base - c->delta + r->len, c->delta);
}

static int
on_static_hit(void *ctx, const struct insp_raw_hit *raw)
{
    struct seg_ctx *c = ctx;
    uint64_t off = raw->pos - c->delta;
    struct inspect_hit hit = {
        .addr = raw->pos, .file_offset = off,
        .kind = raw->kind, .cls = raw->cls, .fields = raw->fields,
        .insn_back = raw->insn_back, .insn_len = raw->insn_len,
    };
    insp_copy_name(hit.object, sizeof(hit.object), c->name);
    insp_hit_describe(&hit, &c->im->elf, off);
    uint64_t insn = raw->pos - raw->insn_back;
    hit.safe = raw->cls == INSPECT_REAL
            && (insp_gate_is_site(c->name, &c->im->elf, insn - c->delta,
                                  INSPECT_NONE)
                || insp_checked_form(c->r, insn + raw->insn_len, raw->kind,
                                     c->pkey));
    if (hit.safe)
        return 0;
    c->unsafe++;
    if (c->count_only)
        return 0;
    if (insp_rewriter_plan_hit(c->w, c->r, &hit) == -2) {
        c->nomem = true;
        return -1;
    }
    return 0;
}

/* Scan every executable segment (plan each unsafe hit unless count_only).
 * 0, or -1 (ENOEXEC: a segment's address and offset disagree; ENOMEM). */
static int
scan_segments(struct seg_ctx *c)
{
    const struct insp_elf *e = &c->im->elf;
    for (size_t i = 0; i < e->nseg; i++) {
        const struct insp_elf_segment *g = &e->seg[i];
        if (!(g->flags & PF_X) || g->filesz == 0 || g->offset >= e->size)
            continue;
        if ((g->vaddr - g->offset) % PAGE != 0) {
            errno = ENOEXEC;
            return -1;
        }
        uint64_t lo = PAGE_DOWN(g->offset);
        uint64_t end = g->filesz > e->size - g->offset ? e->size
                                                      : g->offset + g->filesz;
        uint64_t hi = PAGE_UP(end) < e->size ? PAGE_UP(end) : e->size;
        c->delta = g->vaddr - g->offset;
        struct insp_region r = {
            .bytes = c->im->b + lo, .base = lo + c->delta, .len = hi - lo,
            .build = build_segment, .build_arg = c,
        };
        c->r = &r;
        int rc = insp_scan_region(&r, on_static_hit, c);
        insp_region_free(&r);
        c->r = NULL;
        if (rc != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    return 0;
}

/* The file offset of vaddr v in an executable segment, or UINT64_MAX. */
static uint64_t
offset_of(const struct insp_elf *e, uint64_t v)
{
    for (size_t i = 0; i < e->nseg; i++) {
        const struct insp_elf_segment *g = &e->seg[i];
        if ((g->flags & PF_X) && v >= PAGE_DOWN(g->vaddr)
            && v < g->vaddr + g->filesz)
            return v - g->vaddr + g->offset;
    }
    return UINT64_MAX;
}

/* ---- the output --------------------------------------------------------- */

static const char names[] = ".mpk_tramp\0.mpk_tramp_msg";
#define NAME_CODE 0
#define NAME_MSG 11

/* The new file: the image with its jumps, padding, the segment, a longer
 * .shstrtab and the section headers.  0, or -1 (errno). */
static int
write_output(const char *path, mode_t mode, struct image *im, int note,
             const struct insp_tramp_pool *pool, uint64_t vaddr,
             uint32_t code_size)
{
    uint64_t seg_off = PAGE_UP(im->size);
    uint64_t end = seg_off + pool->arena_len;
    Elf64_Ehdr eh = im->eh;
    bool sections = eh.e_shoff != 0 && eh.e_shnum != 0
                 && eh.e_shstrndx != SHN_UNDEF && eh.e_shstrndx < eh.e_shnum
                 && eh.e_shentsize == sizeof(Elf64_Shdr)
                 && eh.e_shoff <= im->size
                 && (uint64_t) eh.e_shnum * sizeof(Elf64_Shdr)
                    <= im->size - eh.e_shoff;
    Elf64_Shdr strsh = { 0 };
    uint64_t str_off = 0, sh_off = 0;
    if (sections) {
        memcpy(&strsh, im->b + eh.e_shoff + eh.e_shstrndx * sizeof(strsh),
               sizeof(strsh));
        sections = strsh.sh_type == SHT_STRTAB && strsh.sh_offset <= im->size
                && strsh.sh_size <= im->size - strsh.sh_offset;
    }
    if (sections) {
        str_off = end;
        end = str_off + strsh.sh_size + sizeof(names);
        sh_off = (end + 7) & ~7ull;
        end = sh_off + ((uint64_t) eh.e_shnum + 2) * sizeof(Elf64_Shdr);
    }
    uint8_t *out = calloc(1, end);
    if (!out) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(out, im->b, im->size);
    memcpy(out + seg_off, pool->arena, pool->arena_len);

    /* the PT_NOTE becomes the segment, placed after the last PT_LOAD */
    size_t n = im->eh.e_phnum, last = 0;
    Elf64_Phdr *ph = calloc(n, sizeof(*ph));
    if (!ph) {
        free(out);
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ph[i] = phdr(im, i);
        if (ph[i].p_type == PT_LOAD)
            last = i;
    }
    Elf64_Phdr seg = {
        .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = seg_off,
        .p_vaddr = vaddr, .p_paddr = vaddr, .p_filesz = pool->arena_len,
        .p_memsz = pool->arena_len, .p_align = PAGE,
    };
    size_t at = (size_t) note;
    if (at < last) {
        memmove(&ph[at], &ph[at + 1], (last - at) * sizeof(*ph));
        at = last;
    }
    ph[at] = seg;
    memcpy(out + eh.e_phoff, ph, n * sizeof(*ph));
    free(ph);

    if (sections) {
        memcpy(out + str_off, im->b + strsh.sh_offset, strsh.sh_size);
        memcpy(out + str_off + strsh.sh_size, names, sizeof(names));
        memcpy(out + sh_off, im->b + eh.e_shoff,
               (size_t) eh.e_shnum * sizeof(Elf64_Shdr));
        Elf64_Shdr *sh = (Elf64_Shdr *) (void *) (out + sh_off);
        sh[eh.e_shstrndx].sh_offset = str_off;
        sh[eh.e_shstrndx].sh_size = strsh.sh_size + sizeof(names);
        sh[eh.e_shnum] = (Elf64_Shdr) {
            .sh_name = (uint32_t) strsh.sh_size + NAME_CODE,
            .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
            .sh_addr = vaddr, .sh_offset = seg_off, .sh_size = code_size,
            .sh_addralign = 16,
        };
        sh[eh.e_shnum + 1] = (Elf64_Shdr) {
            .sh_name = (uint32_t) strsh.sh_size + NAME_MSG,
            .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC,
            .sh_addr = vaddr + code_size, .sh_offset = seg_off + code_size,
            .sh_size = pool->arena_len - code_size, .sh_addralign = 8,
        };
        eh.e_shoff = sh_off;
        eh.e_shnum = (uint16_t) (eh.e_shnum + 2);
    }
    memcpy(out, &eh, sizeof(eh));

    int rc = -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd >= 0) {
        size_t done = 0;
        while (done < end) {
            ssize_t w = write(fd, out + done, end - done);
            if (w <= 0)
                break;
            done += (size_t) w;
        }
        rc = done == end && fchmod(fd, mode) == 0 ? 0 : -1;
        if (done != end)
            errno = EIO;
        if (close(fd) != 0)
            rc = -1;
    }
    free(out);
    return rc;
}

static int
copy_unchanged(const char *path, mode_t mode, const struct image *im)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < im->size) {
        ssize_t w = write(fd, im->b + done, im->size - done);
        if (w <= 0)
            break;
        done += (size_t) w;
    }
    int rc = done == im->size && fchmod(fd, mode) == 0 ? 0 : -1;
    if (done != im->size)
        errno = EIO;
    if (close(fd) != 0)
        rc = -1;
    return rc;
}

/* ---- the entry point ---------------------------------------------------- */

static int
fail(int err)
{
    errno = err;
    return -1;
}

static int
rewrite(const char *in, const char *out, int pkey, struct image *im,
        struct insp_rewriter *w, struct inspect_report *report)
{
    mode_t mode;
    if (read_file(in, im, &mode) != 0)
        return -1;
    if (im->size < sizeof(Elf64_Ehdr)
        || insp_elf_parse(&im->elf, im->b, im->size) != 0)
        return fail(ENOEXEC);
    memcpy(&im->eh, im->b, sizeof(im->eh));
    if ((im->eh.e_type != ET_EXEC && im->eh.e_type != ET_DYN)
        || im->eh.e_phentsize != sizeof(Elf64_Phdr)
        || im->eh.e_phoff > im->size
        || (uint64_t) im->eh.e_phnum * sizeof(Elf64_Phdr)
           > im->size - im->eh.e_phoff) {
        insp_log("mpk-inspect: %s: not an executable or shared object", in);
        return fail(ENOEXEC);
    }
    if (insp_elf_load_symbols(&im->elf) != 0)
        return fail(ENOMEM);

    /* count first: the arena is sized by the sites */
    struct seg_ctx c = { .im = im, .name = in, .w = w, .pkey = pkey,
                         .count_only = true };
    if (scan_segments(&c) != 0)
        return -1;
    if (c.unsafe == 0) {
        insp_log("mpk-inspect: %s: nothing to rewrite", in);
        if (copy_unchanged(out, mode, im) != 0)
            return -1;
        return inspect_file(out, report);
    }
    if (has_textrel(im)) {
        insp_log("mpk-inspect: %s: text relocations: the loader would write "
                 "into rewritten code", in);
        return fail(ENOEXEC);
    }
    int note = pick_note(im);
    if (note < 0) {
        insp_log("mpk-inspect: %s: no PT_NOTE program header to turn into "
                 "the trampolines' segment", in);
        return fail(ENOEXEC);
    }
    uint64_t top = 0;
    for (size_t i = 0; i < im->eh.e_phnum; i++) {
        Elf64_Phdr ph = phdr(im, i);
        if (ph.p_type == PT_LOAD && PAGE_UP(ph.p_vaddr + ph.p_memsz) > top)
            top = PAGE_UP(ph.p_vaddr + ph.p_memsz);
    }
    uint64_t vaddr = top + PAGE;    /* a guard page above .bss */
    uint32_t code_size = (uint32_t) PAGE_UP(64 + c.unsafe * TRAMP_SPACE);
    uint32_t data_size = (uint32_t) PAGE_UP(c.unsafe * LINE_SPACE);
    if (insp_tramp_pool_arena(&w->pool, vaddr, code_size, data_size) != 0)
        return fail(ENOMEM);

    c.count_only = false;
    c.unsafe = 0;
    if (scan_segments(&c) != 0)
        return -1;
    if (w->refused) {
        insp_log("mpk-inspect: %s: %zu site%s could not be rewritten: "
                 "nothing written", in, w->refused, w->refused == 1 ? "" : "s");
        return fail(EPERM);
    }
    /* the jumps, into the copy */
    for (size_t i = 0; i < w->nplan; i++) {
        const struct insp_plan *pl = &w->plan[i];
        uint64_t off = offset_of(&im->elf, pl->span.site);
        if (off == UINT64_MAX || off + pl->span.len > im->size)
            return fail(ENOEXEC);
        memcpy(im->b + off, pl->tramp.patch, pl->span.len);
        char what[512], rules[256];
        insp_rewrite_describe(&pl->info, what, sizeof(what));
        insp_rules_string(pl->tramp.rules, rules, sizeof(rules));
        insp_log("mpk-inspect: rewrote %s: %u bytes at %#llx -> trampoline "
                 "%#llx (%u bytes; %s)", what, pl->span.len,
                 (unsigned long long) pl->span.site,
                 (unsigned long long) pl->tramp.addr, pl->tramp.len, rules);
    }
    if (write_output(out, mode, im, note, &w->pool, vaddr, code_size) != 0)
        return -1;
    if (inspect_file(out, report) != 0)
        return -1;
    report->rewritten += w->nplan;
    return 0;
}

int
inspect_rewrite_file(const char *in, const char *out, int pkey,
                     struct inspect_report *report)
{
    if (pkey < 1 || pkey > 15)
        return fail(EINVAL);
    int saved_pkey = insp_checked_pkey();
    inspect_set_pkey(pkey);
    struct image im = { 0 };
    struct insp_rewriter w;
    insp_rewriter_init(&w, pkey);
    int rc = rewrite(in, out, pkey, &im, &w, report);
    int err = errno;
    if (rc == 0 && !inspect_report_clean(report)) {
        insp_log("mpk-inspect: %s: %zu unsafe hit%s left in the output", out,
                 report->unsafe, report->unsafe == 1 ? "" : "s");
        unlink(out);
        rc = -1;
        err = EPERM;
    }
    insp_rewriter_free(&w);
    insp_elf_free(&im.elf);
    free(im.b);
    inspect_set_pkey(saved_pkey);
    errno = err;
    return rc;
}
