/* ks_heap: the T heap.  See ks_heap.h for what it guarantees. */

#define _GNU_SOURCE
#include "ks_heap.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GRAIN   16u         /* the smallest class, and the alignment */
#define NCLASS  48          /* 16 B << 47: larger than any region */
#define TAIL    0xffu       /* page_class of the later pages of a large block */

/*
 * The allocator's own metadata sits at the start of the region, so that it
 * is tagged and sealed with the data (U must not be able to forge a free
 * list).  Per data page: one "live" bit per 16-byte granule, and one class
 * byte.
 */
#define META_PER_PAGE (KS_HEAP_PAGE / GRAIN / 8 + 1)

static struct {
    atomic_flag     lock;
    unsigned char  *base;           /* the region: metadata, then data */
    size_t          len;
    unsigned char  *data;           /* the first data page */
    size_t          npages;         /* data pages */
    size_t          next_page;      /* bump pointer: first page never carved */
    int             nclass;         /* classes that fit in the data pages */
    uint64_t       *live;           /* bit set: a live block starts here */
    unsigned char  *page_class;     /* 0 never carved, class + 1, or TAIL */
    void           *free_list[NCLASS];  /* linked through a block's 1st word */
    size_t          in_use, peak;
} heap = { .lock = ATOMIC_FLAG_INIT };

/*
 * One spinlock for everything.  It needs neither libc nor syscalls, so it
 * keeps working inside T after lockdown; critical sections are short (the
 * longest zeroes one freed block).
 */
static void
lock(void)
{
    while (atomic_flag_test_and_set_explicit(&heap.lock,
                                             memory_order_acquire)) {
        __builtin_ia32_pause();
    }
}

static void
unlock(void)
{
    atomic_flag_clear_explicit(&heap.lock, memory_order_release);
}

/* A broken invariant: say what, and end the process (fail closed). */
static void
fatal(const char *what, const void *p)
{
    fprintf(stderr, "ks_heap: %s (%p); aborting\n", what, p);
    abort();
}

static size_t
class_size(int c)
{
    return (size_t) GRAIN << c;
}

/* The smallest class that holds n bytes, or -1 if none does. */
static int
class_for(size_t n)
{
    int c = 0;

    if (heap.nclass == 0 || n > class_size(heap.nclass - 1)) {
        return -1;
    }
    while (class_size(c) < n) {
        c++;
    }
    return c;
}

/* Whether p lies in the data pages; its offset from the first one. */
static int
data_offset(const void *p, size_t *off)
{
    uintptr_t a = (uintptr_t) p, d = (uintptr_t) heap.data;

    if (heap.data == NULL || a < d || a - d >= heap.npages * KS_HEAP_PAGE) {
        return 0;
    }
    *off = a - d;
    return 1;
}

/*
 * The class of the block that starts at offset off, or -1 if no block
 * starts there.  A page holds blocks of one class only, so the block
 * starts follow from the page's class byte alone.
 */
static int
class_at(size_t off)
{
    unsigned k = heap.page_class[off / KS_HEAP_PAGE];
    size_t size;

    if (k == 0 || k == TAIL) {
        return -1;
    }
    size = class_size((int) k - 1);
    return off % (size < KS_HEAP_PAGE ? size : KS_HEAP_PAGE) == 0
           ? (int) k - 1 : -1;
}

static int
is_live(size_t off)
{
    size_t g = off / GRAIN;

    return (heap.live[g / 64] >> (g % 64)) & 1;
}

/* Mark the block at p (known to be a block start) live or free. */
static void
set_live(const void *p, int on)
{
    size_t g = (size_t) ((const unsigned char *) p - heap.data) / GRAIN;
    uint64_t bit = (uint64_t) 1 << (g % 64);

    heap.live[g / 64] = on ? heap.live[g / 64] | bit : heap.live[g / 64] & ~bit;
}

/* The class of the live block at p; any other pointer is fatal. */
static int
live_block_class(const void *p)
{
    size_t off;
    int c;

    if (!data_offset(p, &off)) {
        fatal("free of a pointer outside the T heap", p);
    }
    c = class_at(off);
    if (c < 0) {
        fatal("free of a pointer that is not a block start", p);
    }
    if (!is_live(off)) {
        fatal("double free (block is not allocated)", p);
    }
    return c;
}

static void
push(int c, unsigned char *b)
{
    *(void **) b = heap.free_list[c];
    heap.free_list[c] = b;
}

/* Carve fresh blocks of class c from the bump pointer: 0, or -1 if full. */
static int
refill(int c)
{
    size_t size = class_size(c);
    size_t pages = size < KS_HEAP_PAGE ? 1 : size / KS_HEAP_PAGE;
    size_t i = pages * KS_HEAP_PAGE / size;
    unsigned char *first = heap.data + heap.next_page * KS_HEAP_PAGE;

    if (pages > heap.npages - heap.next_page) {
        return -1;
    }
    heap.page_class[heap.next_page] = (unsigned char) (c + 1);
    memset(heap.page_class + heap.next_page + 1, TAIL, pages - 1);
    heap.next_page += pages;
    while (i-- > 0) {                   /* hand out in address order */
        push(c, first + i * size);
    }
    return 0;
}

static void *
alloc_locked(int c)
{
    unsigned char *b;
    void *next;
    size_t off;

    if (heap.free_list[c] == NULL && refill(c) != 0) {
        return NULL;
    }
    b = heap.free_list[c];
    next = *(void **) b;
    /* A write after free in T would show up here as a bad link. */
    if (next != NULL
        && (!data_offset(next, &off) || class_at(off) != c || is_live(off)))
    {
        fatal("corrupt free list", next);
    }
    heap.free_list[c] = next;
    *(void **) b = NULL;                /* the link was its only non-zero word */
    set_live(b, 1);
    heap.in_use += class_size(c);
    if (heap.in_use > heap.peak) {
        heap.peak = heap.in_use;
    }
    return b;
}

static void
free_locked(void *p, int c)
{
    /* The block held secrets: zero it now, not when it is reused. */
    explicit_bzero(p, class_size(c));
    set_live(p, 0);
    push(c, p);
    heap.in_use -= class_size(c);
}

static size_t
meta_pages(size_t npages)
{
    return (npages * META_PER_PAGE + KS_HEAP_PAGE - 1) / KS_HEAP_PAGE;
}

int
ks_heap_init(size_t size)
{
    size_t total, npages, meta, len;
    unsigned char *base;

    if (heap.base != NULL) {
        return -1;
    }
    if (size == 0) {
        size = KS_HEAP_DEFAULT_SIZE;
    }
    /* Tagging and the block layout both assume 4 KiB pages (x86-64). */
    if (sysconf(_SC_PAGESIZE) != KS_HEAP_PAGE || size > SIZE_MAX / 2) {
        return -1;
    }
    total = (size + KS_HEAP_PAGE - 1) / KS_HEAP_PAGE;
    npages = total * KS_HEAP_PAGE / (KS_HEAP_PAGE + META_PER_PAGE);
    while (npages > 0 && npages + meta_pages(npages) > total) {
        npages--;
    }
    if (npages == 0) {
        return -1;
    }
    meta = meta_pages(npages);
    len = (meta + npages) * KS_HEAP_PAGE;

    /* Reserved once; MAP_NORESERVE: pages are backed only when touched. */
    base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        return -1;
    }
    /* Keep the secrets out of core dumps. */
    if (madvise(base, len, MADV_DONTDUMP) != 0) {
        munmap(base, len);
        return -1;
    }
    /*
     * HOOK(ks_domain_tag_heap): here the domain code will tag [base, len)
     * with the T pkey (pkey_mprotect) before any secret is stored, and
     * lockdown will mseal it.  Both take the range from ks_heap_range().
     * Not written yet: this machine has no MPK.
     */
    heap.base = base;
    heap.len = len;
    heap.live = (uint64_t *) base;
    heap.page_class = base + npages * (KS_HEAP_PAGE / GRAIN / 8);
    heap.data = base + meta * KS_HEAP_PAGE;
    heap.npages = npages;
    while (heap.nclass < NCLASS
           && class_size(heap.nclass) <= npages * KS_HEAP_PAGE) {
        heap.nclass++;
    }
    return 0;
}

void *
ks_heap_alloc(size_t n)
{
    int c = class_for(n);
    void *p;

    if (c < 0) {
        return NULL;
    }
    lock();
    p = alloc_locked(c);
    unlock();
    return p;
}

void *
ks_heap_calloc(size_t nmemb, size_t size)
{
    if (nmemb != 0 && size > SIZE_MAX / nmemb) {
        return NULL;
    }
    return ks_heap_alloc(nmemb * size);     /* always zero-filled */
}

void *
ks_heap_realloc(void *p, size_t n)
{
    int c, nc;
    void *q;

    if (p == NULL) {
        return ks_heap_alloc(n);
    }
    if (n == 0) {
        ks_heap_free(p);
        return NULL;
    }
    lock();
    c = live_block_class(p);
    nc = class_for(n);
    if (nc == c) {
        q = p;
    } else {
        q = nc < 0 ? NULL : alloc_locked(nc);
        if (q != NULL) {
            memcpy(q, p, class_size(c < nc ? c : nc));
            free_locked(p, c);
        }
    }
    unlock();
    return q;
}

void
ks_heap_free(void *p)
{
    if (p == NULL) {
        return;
    }
    lock();
    free_locked(p, live_block_class(p));
    unlock();
}

int
ks_heap_range(void **base, size_t *len)
{
    if (heap.base == NULL) {
        return -1;
    }
    *base = heap.base;
    *len = heap.len;
    return 0;
}

void
ks_heap_stats(size_t *in_use, size_t *peak)
{
    lock();
    *in_use = heap.in_use;
    *peak = heap.peak;
    unlock();
}
