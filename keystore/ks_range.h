/*
 * ks_range: the T ranges, and the check that a pointer from U lies
 * entirely outside them.  (T; no MPK needed to run)
 *
 * Every pointer a gate receives from U is checked with ks_range_u_ok()
 * before T reads or writes through it: otherwise a gate could be asked to
 * copy T memory (keys, the T stack) into U, or to overwrite T state — the
 * confused-deputy hole of ERIM's bridges.  The check is overflow-safe: a
 * range that wraps around the address space, leaves user space, or is
 * longer than any gate argument may be is refused outright.
 *
 * Ranges are registered during initialisation (T heap, T stacks, the
 * keystore's writable data) and never removed.
 */

#ifndef KS_RANGE_H
#define KS_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define KS_RANGE_MAX      16                /* registered T ranges */
#define KS_ARG_LEN_MAX    (1u << 20)        /* longest U buffer a gate takes */
#define KS_USER_ADDR_END  ((uintptr_t) 1 << 47)  /* x86-64 4-level user space */

/* Register [base, base + len) as T memory: 0, or -1 (wraps, empty, full). */
int ks_range_add(const void *base, size_t len);

/*
 * 1 if U may pass [p, p + len) to a gate: not NULL (unless len == 0), no
 * wrap-around, inside user space, len <= KS_ARG_LEN_MAX, and no byte in
 * any T range.  0 otherwise.
 */
int ks_range_u_ok(const void *p, size_t len);

/* 1 if p points into a T range. */
int ks_range_in_t(const void *p);

/* Range i (0-based) as start/len: 0, or -1 past the last one. */
int ks_range_get(unsigned i, uintptr_t *start, size_t *len);

#endif /* KS_RANGE_H */
