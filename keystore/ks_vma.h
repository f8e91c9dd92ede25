/*
 * ks_vma: the process's mappings, as /proc/self/smaps lists them.  (U;
 * used by the lockdown, which runs in U before serving)
 *
 * Lockdown seals mappings and checks that none is writable and executable
 * at once; the status query checks the kernel's own record of both
 * ("sl" in VmFlags, the permissions), so it reports what is enforced now
 * rather than what lockdown once attempted.  No state is kept here: the
 * library's .data/.bss belong to T (ks_domain.c), so the list lives on
 * the U heap of the caller.
 */

#ifndef KS_VMA_H
#define KS_VMA_H

#include <stddef.h>
#include <stdint.h>

struct ks_vma {
    uintptr_t      start, end;
    char           perms[5];                /* "r-xp" */
    unsigned long  dev_major, dev_minor, inode;
    int            sealed;                  /* "sl" in VmFlags */
    int            vsyscall;                /* the [vsyscall] gate area */
    char           name[64];                /* path or [tag], cut short */
};

/* Read /proc/self/smaps: *out (malloc'd; the caller frees it) and its
 * count.  0, or -1 with errno set. */
int ks_vma_list(struct ks_vma **out, size_t *n);

static inline int
ks_vma_exec(const struct ks_vma *v)
{
    return v->perms[2] == 'x';
}

static inline int
ks_vma_wx(const struct ks_vma *v)
{
    return v->perms[1] == 'w' && v->perms[2] == 'x';
}

/*
 * An executable mapping whose file (or memfd) is also mapped shared and
 * writable in this process: writing through the second view changes the
 * code, so it counts as W+X.  The index of that writable view, or -1.
 */
long ks_vma_shared_writable_alias(const struct ks_vma *v, size_t n, size_t i);

#endif /* KS_VMA_H */
