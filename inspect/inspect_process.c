/*
 * inspect_process.c — inspect every executable mapping of this process.
 *
 * Mappings that touch (one ends where the next starts) form a run, and a
 * run is searched as one buffer, so that sequences crossing a page or a
 * mapping boundary are found; an executable mapping next to a
 * non-executable one or a hole cannot run into it, so runs end there.
 *
 * Bytes are read where they are (no copy) when the whole run is readable;
 * an execute-only mapping is read through /proc/self/mem, which may read
 * it (before lockdown makes the process undumpable).  What cannot be read
 * is counted in uninspected_pages, which makes the report unclean.
 *
 * Instruction boundaries: a file-backed mapping is traced back to its file
 * (path, offset, and the device/inode that /proc/self/maps shows, so a
 * file replaced since it was mapped is not trusted) and decoded from the
 * file's code sections and function symbols; the vDSO is an ELF image in
 * memory and is read the same way.  Anything else (anonymous or deleted
 * files, memfd, files that are not ELF or do not match) is decoded
 * linearly from the start of its mapping; touching anonymous mappings are
 * one stretch, so an instruction may cross between them.
 *
 * The rewriter scans through insp_process_scan, whose hook sees each hit
 * with the region around it; a real instruction is also safe at a
 * rewritten site, or followed by the check (inspect_gates.c).
 *
 * [vsyscall] is not searched unless it is readable: its bytes never run
 * (the kernel emulates the three legacy calls when the page faults, in
 * both "xonly" and "emulate" modes), and in "xonly" mode it cannot be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "inspect_internal.h"
#include "inspect_maps.h"

/* A file that is mapped executable, opened once per inspection. */
struct mapped_elf {
    unsigned major, minor;
    uint64_t inode;
    void *image;
    size_t size;
    bool ok;
    struct insp_elf elf;
};

struct elf_cache {
    struct mapped_elf *e;
    size_t n, cap;
};

/* How one mapping's bytes are described. */
struct source {
    const struct insp_mapping *m;
    struct insp_elf *elf;           /* NULL: decoded linearly */
    bool has_offset;                /* file offsets mean something */
    const char *object;
};

struct run_ctx {
    struct source *src;
    size_t n;
};

static bool
is_deleted(const char *path)
{
    size_t n = strlen(path);
    static const char suffix[] = " (deleted)";
    return n >= sizeof(suffix) - 1
        && strcmp(path + n - (sizeof(suffix) - 1), suffix) == 0;
}

static void
open_elf(struct mapped_elf *me, const struct insp_mapping *m)
{
    me->ok = false;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0
        && major(st.st_dev) == m->dev_major
        && minor(st.st_dev) == m->dev_minor && st.st_ino == m->inode) {
        me->image = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE,
                         fd, 0);
        if (me->image != MAP_FAILED) {
            me->size = (size_t) st.st_size;
            if (insp_elf_parse(&me->elf, me->image, me->size) == 0)
                me->ok = true;
            else
                munmap(me->image, me->size);
        }
    }
    close(fd);
}

/* The parsed file behind m, or NULL if it cannot be trusted or read. */
static struct insp_elf *
file_elf(struct elf_cache *c, const struct insp_mapping *m)
{
    if (m->path[0] != '/' || m->inode == 0 || is_deleted(m->path))
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].inode == m->inode && c->e[i].major == m->dev_major
            && c->e[i].minor == m->dev_minor)
            return c->e[i].ok ? &c->e[i].elf : NULL;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct mapped_elf *ne = realloc(c->e, ncap * sizeof(*ne));
        if (!ne)
            return NULL;
        c->e = ne;
        c->cap = ncap;
    }
    struct mapped_elf *me = &c->e[c->n++];
    memset(me, 0, sizeof(*me));
    me->major = m->dev_major;
    me->minor = m->dev_minor;
    me->inode = m->inode;
    open_elf(me, m);
    return me->ok ? &me->elf : NULL;
}

static void
cache_free(struct elf_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].ok) {
            insp_elf_free(&c->e[i].elf);
            munmap(c->e[i].image, c->e[i].size);
        }
    free(c->e);
}

static void
describe_source(struct source *s, const struct insp_mapping *m,
                struct elf_cache *cache, struct insp_elf *vdso)
{
    s->m = m;
    s->elf = NULL;
    s->has_offset = false;
    s->object = m->path[0] ? m->path : "[anon]";
    if (strcmp(m->path, "[vdso]") == 0) {
        /* the vDSO is a complete ELF image at the start of its mapping */
        s->has_offset = true;
        if (m->readable && m->offset == 0
            && insp_elf_parse(vdso, (const uint8_t *) (uintptr_t) m->start,
                              m->end - m->start) == 0)
            s->elf = vdso;
    } else if (m->path[0] == '/' && m->inode != 0) {
        s->has_offset = true;
        s->elf = file_elf(cache, m);
    }
}

/* Copy a run that is not readable in place; unreadable pages count as
 * uninspected (and read as zeros, which hold no sequence). */
static uint8_t *
copy_run(const struct source *src, size_t n, uint64_t start, uint64_t len,
         int *memfd, struct inspect_report *report)
{
    uint8_t *buf = calloc(1, len);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct insp_mapping *m = src[i].m;
        uint8_t *dst = buf + (m->start - start);
        size_t mlen = m->end - m->start;
        if (m->readable) {
            memcpy(dst, (const void *) (uintptr_t) m->start, mlen);
            continue;
        }
        if (*memfd < 0)
            *memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        ssize_t got = *memfd < 0 ? -1
                    : pread(*memfd, dst, mlen, (off_t) m->start);
        if (got != (ssize_t) mlen)
            report->uninspected_pages += mlen / INSPECT_PAGE_SIZE;
    }
    return buf;
}

/* Code ranges and anchors for every mapping of the run (on its first
 * hit). */
static int
build_run_region(struct insp_region *r, void *arg)
{
    const struct run_ctx *run = arg;
    const struct source *src = run->src;
    uint64_t lin_start = 0, lin_end = 0;   /* a pending linear stretch */
    for (size_t i = 0; i < run->n; i++) {
        const struct insp_mapping *m = src[i].m;
        if (src[i].elf) {
            if (lin_end && insp_region_add_code(r, lin_start, lin_end))
                return -1;
            lin_end = 0;
            uint64_t off_lo = m->offset, off_hi = m->offset
                                                  + (m->end - m->start);
            if (insp_region_add_elf_code(r, src[i].elf, off_lo, off_hi,
                                         m->start - m->offset))
                return -1;
            continue;
        }
        if (!lin_end)
            lin_start = m->start;
        lin_end = m->end;
    }
    if (lin_end && insp_region_add_code(r, lin_start, lin_end))
        return -1;
    return 0;
}

struct hit_ctx {
    struct run_ctx *run;
    struct inspect_report *report;
    const struct insp_region *r;
    insp_process_hook hook;
    void *hook_ctx;
};

static int
on_process_hit(void *ctx, const struct insp_raw_hit *raw)
{
    struct hit_ctx *hc = ctx;
    struct run_ctx *run = hc->run;
    struct inspect_report *report = hc->report;
    const struct source *s = &run->src[0];
    for (size_t i = 0; i < run->n; i++)
        if (raw->pos >= run->src[i].m->start && raw->pos < run->src[i].m->end)
            s = &run->src[i];
    struct inspect_hit hit = {
        .addr = raw->pos, .file_offset = INSPECT_NONE,
        .kind = raw->kind, .cls = raw->cls, .fields = raw->fields,
        .insn_back = raw->insn_back, .insn_len = raw->insn_len,
    };
    insp_copy_name(hit.object, sizeof(hit.object), s->object);
    uint64_t insn_off = INSPECT_NONE;
    if (s->has_offset) {
        hit.file_offset = s->m->offset + (raw->pos - s->m->start);
        insn_off = hit.file_offset - raw->insn_back;
        insp_hit_describe(&hit, s->elf, hit.file_offset);
    }
    uint64_t insn_addr = raw->pos - raw->insn_back;
    hit.safe = raw->cls == INSPECT_REAL
            && (insp_gate_is_site(s->object, s->elf, insn_off, insn_addr)
                || insp_rewritten_is_site(insn_addr, hc->r)
                || insp_checked_form(hc->r, insn_addr + raw->insn_len,
                                     raw->kind, insp_checked_pkey()));
    if (hc->hook && hc->hook(hc->hook_ctx, &hit, hc->r) != 0)
        return -1;
    return insp_report_add(report, &hit);
}

static int
inspect_run(const struct insp_mapping *maps, size_t n,
            struct elf_cache *cache, int *memfd,
            struct inspect_report *report, insp_process_hook hook,
            void *hook_ctx)
{
    struct source *src = calloc(n, sizeof(*src));
    struct insp_elf vdso = { 0 };
    if (!src)
        return -1;
    bool readable = true;
    for (size_t i = 0; i < n; i++) {
        describe_source(&src[i], &maps[i], cache, &vdso);
        readable = readable && maps[i].readable;
        report->linear_mappings += src[i].elf == NULL;
    }
    uint64_t start = maps[0].start, len = maps[n - 1].end - start;
    report->mappings += n;
    report->pages += len / INSPECT_PAGE_SIZE;

    uint8_t *copy = NULL;
    if (!readable && !(copy = copy_run(src, n, start, len, memfd, report))) {
        free(src);
        return -1;
    }
    struct run_ctx run = { src, n };
    struct insp_region r = {
        .bytes = copy ? copy : (const uint8_t *) (uintptr_t) start,
        .base = start, .len = len,
        .build = build_run_region, .build_arg = &run,
    };
    struct hit_ctx ctx = { &run, report, &r, hook, hook_ctx };
    int rc = insp_scan_region(&r, on_process_hit, &ctx);
    insp_region_free(&r);
    free(copy);
    insp_elf_free(&vdso);
    free(src);
    return rc;
}

int
inspect_process(struct inspect_report *report)
{
    return insp_process_scan(report, NULL, NULL);
}

int
insp_process_scan(struct inspect_report *report, insp_process_hook hook,
                  void *hook_ctx)
{
    struct insp_mapping *maps;
    size_t n;
    if (insp_maps_read_executable("/proc/self/maps", &maps, &n) != 0)
        return -1;
    struct elf_cache cache = { 0 };
    int memfd = -1, rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        if (strcmp(maps[i].path, "[vsyscall]") == 0 && !maps[i].readable) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && maps[j].start == maps[j - 1].end
               && strcmp(maps[j].path, "[vsyscall]") != 0)
            j++;
        rc = inspect_run(&maps[i], j - i, &cache, &memfd, report, hook,
                         hook_ctx);
        i = j;
    }
    if (memfd >= 0)
        close(memfd);
    cache_free(&cache);
    free(maps);
    if (rc != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}
