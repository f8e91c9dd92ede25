/*
 * mpk_inspect_bench.c — how fast the inspector is, in µs per 4 KiB page,
 * to compare with ERIM's 3.5–6.2 µs per page.  Prints figures, asserts
 * nothing.
 *
 * For each file (read into memory first, so that the disk is not timed):
 *   search    the SIMD byte search alone
 *   inspect   what inspect_file does: parse, search, classify, report
 *   decode    a full Zydis sweep of every instruction, for reference: the
 *             cost if every byte were decoded (the rewriter will need it
 *             around each unsafe hit, not everywhere)
 * Then inspect_process on this process as it is, and again after loading
 * the given files that are shared libraries (dlopen; an executable such as
 * nginx cannot be loaded, and says so), which makes this process look more
 * like an NGINX worker with libkeystore.so.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inspect_internal.h"
#include "mpk_inspect_bench.h"

#define MIN_SECONDS 0.3
#define MIN_RUNS 5
#define MAX_RUNS 1000

static double
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Median time of fn(arg) in µs, over enough runs. */
static double
median_us(void (*fn)(void *), void *arg)
{
    static double t[MAX_RUNS];
    double total = 0;
    int n = 0;
    while (n < MAX_RUNS && (n < MIN_RUNS || total < MIN_SECONDS * 1e6)) {
        double t0 = now_us();
        fn(arg);
        t[n] = now_us() - t0;
        total += t[n++];
    }
    qsort(t, (size_t) n, sizeof(*t), cmp_double);
    return t[n / 2];
}

struct file_bench {
    const char *name;
    uint8_t *image;
    size_t size;
    struct insp_region *r;
    size_t nr;
    size_t hits, insns;
};

static int
count_found(void *ctx, size_t i, enum inspect_kind kind)
{
    (void) i;
    (void) kind;
    (*(size_t *) ctx)++;
    return 0;
}

static void
run_search(void *arg)
{
    struct file_bench *b = arg;
    size_t found = 0;
    for (size_t i = 0; i < b->nr; i++)
        insp_search(b->r[i].bytes, b->r[i].len, count_found, &found);
    b->hits = found;
}

static void
run_inspect(void *arg)
{
    struct file_bench *b = arg;
    struct inspect_report rep = { 0 };
    insp_inspect_image(b->name, b->image, b->size, &rep);
    inspect_report_free(&rep);
}

static void
run_decode(void *arg)
{
    struct file_bench *b = arg;
    b->insns = 0;
    for (size_t i = 0; i < b->nr; i++)
        b->insns += insp_decode_all(&b->r[i]);
}

static void
run_process(void *arg)
{
    struct inspect_report *rep = arg;
    inspect_report_free(rep);
    inspect_process(rep);
}

static uint8_t *
read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    uint8_t *buf = malloc((size_t) st.st_size);
    size_t got = 0;
    while (buf && got < (size_t) st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
        if (n <= 0) {
            free(buf);
            buf = NULL;
        } else {
            got += (size_t) n;
        }
    }
    close(fd);
    *size = got;
    return buf;
}

static int
bench_file(const char *path)
{
    struct file_bench b = { .name = path };
    struct insp_elf elf;
    b.image = read_file(path, &b.size);
    if (!b.image || insp_elf_parse(&elf, b.image, b.size) != 0) {
        fprintf(stderr, "mpk-inspect: %s: not a readable x86-64 ELF file\n",
                path);
        free(b.image);
        return 2;
    }
    if (insp_image_regions(&elf, &b.r, &b.nr) != 0) {
        insp_elf_free(&elf);
        free(b.image);
        return 2;
    }
    size_t pages = 0;
    for (size_t i = 0; i < b.nr; i++)
        pages += (b.r[i].len + INSPECT_PAGE_SIZE - 1) / INSPECT_PAGE_SIZE;
    double search = median_us(run_search, &b);
    double inspect = median_us(run_inspect, &b);
    double t0 = now_us();
    run_decode(&b);                     /* slow: once is enough */
    double decode = now_us() - t0;
    double p = pages ? (double) pages : 1;
    printf("%-44s %7zu %5zu %9.3f %9.3f %9.2f\n", path, pages, b.hits,
           search / p, inspect / p, decode / p);
    for (size_t i = 0; i < b.nr; i++)
        insp_region_free(&b.r[i]);
    free(b.r);
    insp_elf_free(&elf);
    free(b.image);
    return 0;
}

static void
bench_process(const char *label)
{
    struct inspect_report rep = { 0 };
    double t = median_us(run_process, &rep);
    printf("process (%s): %zu mappings, %zu pages, %zu hits (%zu unsafe): "
           "%.3f ms, %.3f us/page\n", label, rep.mappings, rep.pages,
           rep.hits, rep.unsafe, t / 1e3,
           rep.pages ? t / (double) rep.pages : 0.0);
    inspect_report_free(&rep);
}

int
mpk_inspect_bench(int nfiles, char **files)
{
    int status = 0;
    printf("mpk-inspect bench: us per 4 KiB page of executable segments "
           "(median of >= %d runs;\nERIM reports 3.5-6.2 us/page). "
           "Figures only, nothing is asserted.\n\n", MIN_RUNS);
    printf("%-44s %7s %5s %9s %9s %9s\n", "file", "pages", "hits", "search",
           "inspect", "decode");
    for (int i = 0; i < nfiles; i++)
        if (bench_file(files[i]) != 0)
            status = 2;
    printf("\n");
    bench_process("mpk-inspect itself");
    int loaded = 0;
    for (int i = 0; i < nfiles; i++) {
        if (dlopen(files[i], RTLD_NOW | RTLD_LOCAL))
            loaded++;
        else
            printf("not loaded: %s\n", dlerror());
    }
    if (loaded)
        bench_process("with the loadable files dlopen'ed");
    return status;
}
