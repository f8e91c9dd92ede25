/*
 * ks_heap: the T heap.  (T; no MPK needed to build or test it)
 *
 * Every allocation of the keystore and of its private libcrypto comes from
 * one region reserved up front by ks_heap_init(), so that the domain code
 * can tag exactly that range with the T protection key, and so that no
 * memory syscall is needed from T after lockdown (see DESIGN.md, "Lockdown
 * and syscall policy").
 *
 * The allocator is deliberately plain, to be auditable: power-of-two size
 * classes from 16 bytes up to the size of the region, one free list per
 * class, blocks carved by a bump pointer (classes below a page share whole
 * pages, larger classes take runs of pages).  Nothing is ever split or
 * merged.  Blocks are 16-byte aligned (page-aligned from 4 KiB up).
 *
 * Guarantees the rest of T relies on:
 * - Memory from ks_heap_alloc/calloc/realloc is always zero-filled (a freed
 *   block is zeroed at once, because it held secrets; fresh pages are zero).
 * - Exhaustion returns NULL; there is no fallback to the system malloc.
 * - A free or realloc of a pointer that is not a live block of this heap
 *   (foreign pointer, interior pointer, double free) is a broken invariant:
 *   one line on stderr, then abort() (fail closed, DESIGN.md invariant 6).
 * - Safe to call from several threads (one spinlock; see ks_heap.c).
 */

#ifndef KS_HEAP_H
#define KS_HEAP_H

#include <stddef.h>

#define KS_HEAP_DEFAULT_SIZE ((size_t) 64 << 20)   /* 64 MiB */
#define KS_HEAP_PAGE         4096u                 /* tagging granularity */

/*
 * Reserve the region: size bytes (0: KS_HEAP_DEFAULT_SIZE), rounded up to
 * whole pages, of which about 1% holds the allocator's own metadata.  Pages
 * are touched lazily.  Once per process, before any other thread uses the
 * heap: 0 on success, -1 if already done, too small, or mmap failed.
 */
int ks_heap_init(size_t size);

void *ks_heap_alloc(size_t n);
void *ks_heap_calloc(size_t nmemb, size_t size);
/* p == NULL: alloc(n); n == 0: free(p) and NULL; on failure p is kept. */
void *ks_heap_realloc(void *p, size_t n);
/* NULL is ignored, as with free(). */
void ks_heap_free(void *p);

/*
 * The whole region (metadata included): what the domain code tags with the
 * T pkey and seals, and what the gates check U pointers against.  0, or -1
 * before ks_heap_init().
 */
int ks_heap_range(void **base, size_t *len);

/* Bytes in live blocks (counted by block size), and their maximum so far. */
void ks_heap_stats(size_t *in_use, size_t *peak);

#endif /* KS_HEAP_H */
