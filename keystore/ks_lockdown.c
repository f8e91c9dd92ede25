/*
 * ks_lockdown: after lockdown the kernel is no deputy (DESIGN.md,
 * "Lockdown and syscall policy"; pku-attacks.md).  (U; runs once per
 * process after inspection and rewriting, before serving, while U is
 * still trusted)
 *
 * The pieces, in the order they are put in place:
 *  1. refuse a mapping that is writable and executable, an executable
 *     file also mapped shared and writable, and READ_IMPLIES_EXEC: code
 *     that can change after the inspector looked at it (#4);
 *  2. mseal T's ranges, the whole libkeystore.so image (its code, RELRO,
 *     the gate page, its T-tagged data) and every executable mapping,
 *     the vDSO included: no mprotect, pkey_mprotect, mremap, munmap,
 *     MAP_FIXED over them, and no discarding madvise from U (#3, #4);
 *  3. PR_SET_DUMPABLE 0: /proc/self/mem is then root's only (#1, #2, #13);
 *  4. the seccomp filter (ks_seccomp.h, policy in ks_seccomp_gen.c).
 * With KS_LOCKDOWN_SIGNALS, step 1 also refuses any signal handler still
 * installed, and glibc's own are reset (ks_signals.h).
 * Then the result is read back from the kernel (ks_lockdown_status) and
 * only a complete lockdown returns 0.  A failure leaves whatever was
 * already done in place (seals cannot be undone); the caller must not
 * serve.
 *
 * [vsyscall] is the one executable mapping not sealed: it is not a VMA of
 * the process (mseal says ENOMEM), no syscall can change it, and the
 * kernel emulates its three fixed entry points (execute-only, nothing to
 * read or jump into).
 *
 * Like all U code of the library, this file keeps nothing in the
 * library's data (it is T memory): stack and the caller's heap only.
 */

#define _GNU_SOURCE
#include "keystore.h"

#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ks_domain.h"
#include "ks_ops.h"
#include "ks_range.h"
#include "ks_seccomp.h"
#include "ks_signals.h"
#include "ks_vma.h"

#ifndef SYS_mseal
#define SYS_mseal  462                      /* Linux 6.10; glibc 2.36 lacks it */
#endif

#define PAGE      4096u
#define SEGS_MAX  8

extern char ks_gate_page[];                 /* ks_gate.S: in our image */

/* What must stay sealed: T's ranges and the library's own segments. */
struct protected {
    uintptr_t  start[KS_RANGE_MAX + SEGS_MAX];
    uintptr_t  end[KS_RANGE_MAX + SEGS_MAX];
    unsigned   n;
};

static int
own_segments(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct protected *p = arg;
    uintptr_t page = (uintptr_t) ks_gate_page, s, e;
    int i, ours = 0;

    (void) size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        s = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && page >= s && page < s + ph->p_memsz) {
            ours = 1;
        }
    }
    for (i = 0; ours && i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type != PT_LOAD || p->n == KS_RANGE_MAX + SEGS_MAX) {
            continue;
        }
        s = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t) (PAGE - 1);
        e = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + PAGE - 1)
            & ~(uintptr_t) (PAGE - 1);
        p->start[p->n] = s;
        p->end[p->n++] = e;
    }
    return ours;
}

/* T's ranges (one gate crossing) and the library's PT_LOAD segments. */
static int
protected_ranges(struct protected *p, char *err, size_t errlen)
{
    struct ks_range_out r[KS_RANGE_MAX];
    uint32_t nr = 0, i;
    struct ks_args_ranges a = { r, &nr };

    p->n = 0;
    if (ks_gate_call(KS_OP_RANGES, &a) != 0 || nr == 0 || nr > KS_RANGE_MAX) {
        snprintf(err, errlen, "cannot get the T ranges");
        return -1;
    }
    for (i = 0; i < nr; i++) {
        p->start[p->n] = r[i].start;
        p->end[p->n++] = r[i].start + r[i].len;
    }
    if (dl_iterate_phdr(own_segments, p) != 1) {
        snprintf(err, errlen, "cannot find libkeystore's segments");
        return -1;
    }
    return 0;
}

static int
overlaps(const struct protected *p, const struct ks_vma *v)
{
    unsigned i;

    for (i = 0; i < p->n; i++) {
        if (v->start < p->end[i] && p->start[i] < v->end) {
            return 1;
        }
    }
    return 0;
}

/* Piece 1: nothing executable may be or become writable.  0, or -1 with
 * the offending mapping named in err. */
static int
check_no_wx(const struct ks_vma *v, size_t n, char *err, size_t errlen)
{
    size_t i;
    long j;

    for (i = 0; i < n; i++) {
        if (ks_vma_wx(&v[i])) {
            snprintf(err, errlen, "mapping %#lx-%#lx %s %s is writable and "
                     "executable", (unsigned long) v[i].start,
                     (unsigned long) v[i].end, v[i].perms,
                     v[i].name[0] ? v[i].name : "[anon]");
            return -1;
        }
        j = ks_vma_shared_writable_alias(v, n, i);
        if (j >= 0) {
            snprintf(err, errlen, "executable mapping %#lx-%#lx of %s is also "
                     "mapped shared and writable at %#lx",
                     (unsigned long) v[i].start, (unsigned long) v[i].end,
                     v[i].name, (unsigned long) v[j].start);
            return -1;
        }
    }
    if (personality(0xffffffff) & READ_IMPLIES_EXEC) {
        snprintf(err, errlen, "the READ_IMPLIES_EXEC personality makes every "
                 "readable mapping executable");
        return -1;
    }
    return 0;
}

static int
seal(uintptr_t start, uintptr_t end, const char *what, char *err,
     size_t errlen)
{
    if (syscall(SYS_mseal, start, end - start, 0UL) != 0) {
        snprintf(err, errlen, "mseal %#lx-%#lx (%s): %s",
                 (unsigned long) start, (unsigned long) end, what,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Piece 2: T, the library, and every executable mapping. */
static int
seal_all(const struct protected *p, const struct ks_vma *v, size_t n,
         char *err, size_t errlen)
{
    unsigned i;
    size_t k;

    for (i = 0; i < p->n; i++) {
        if (seal(p->start[i], p->end[i], "T or libkeystore", err, errlen) != 0)
        {
            return -1;
        }
    }
    for (k = 0; k < n; k++) {
        if (ks_vma_exec(&v[k]) && !v[k].vsyscall
            && seal(v[k].start, v[k].end, v[k].name[0] ? v[k].name : "[anon]",
                    err, errlen) != 0)
        {
            return -1;
        }
    }
    return 0;
}

static const char *const piece_names[] = {
    "signals", "sealed", "no-wx", "nodump", "seccomp",
};

/* The names of the pieces in bits, space-separated, or "none". */
static void
describe(unsigned bits, char *buf, size_t len)
{
    size_t used = 0, i;

    if (buf == NULL || len == 0) {
        return;
    }
    buf[0] = '\0';
    for (i = 0; i < sizeof(piece_names) / sizeof(piece_names[0]); i++) {
        if (bits & (1u << i)) {
            used += snprintf(buf + used, used < len ? len - used : 0, "%s%s",
                             used ? " " : "", piece_names[i]);
        }
    }
    if (used == 0) {
        snprintf(buf, len, "none");
    }
}

unsigned
ks_lockdown_status(char *desc, size_t desclen)
{
    char why[128];
    struct protected p;
    struct ks_vma *v;
    size_t n, i;
    unsigned bits = 0;
    int sealed = 1, nowx = 1, covered = 0;

    if (ks_domain_pkey() >= 0 && protected_ranges(&p, why, sizeof(why)) == 0
        && ks_vma_list(&v, &n) == 0)
    {
        for (i = 0; i < n; i++) {
            if ((ks_vma_exec(&v[i]) && !v[i].vsyscall) || overlaps(&p, &v[i]))
            {
                sealed &= v[i].sealed;
                covered |= overlaps(&p, &v[i]);
            }
            if (ks_vma_wx(&v[i]) || ks_vma_shared_writable_alias(v, n, i) >= 0)
            {
                nowx = 0;
            }
        }
        free(v);
        if (personality(0xffffffff) & READ_IMPLIES_EXEC) {
            nowx = 0;
        }
        bits |= sealed && covered ? KS_LOCKDOWN_SEALED : 0;
        bits |= nowx ? KS_LOCKDOWN_NO_WX : 0;
    }
    bits |= prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? KS_LOCKDOWN_NODUMP : 0;
    if (ks_seccomp_active()) {
        bits |= KS_LOCKDOWN_SECCOMP;
        bits |= ks_seccomp_signals_active() && ks_signals_none_caught()
                ? KS_LOCKDOWN_SIGNALS : 0;
    }
    describe(bits, desc, desclen);
    return bits;
}

int
ks_lockdown(unsigned flags, char *err, size_t errlen)
{
    unsigned want = KS_LOCKDOWN_ALL & ~KS_LOCKDOWN_SIGNALS, got;
    struct protected p;
    struct ks_vma *v;
    char missing[96];
    size_t n;
    int rc;

    if (err == NULL || errlen == 0) {
        return -1;                          /* nowhere to say why: refuse */
    }
    err[0] = '\0';
    if (flags & ~KS_LOCKDOWN_SIGNALS) {
        snprintf(err, errlen, "unknown lockdown flags %#x", flags);
        return -1;
    }
    want |= flags & KS_LOCKDOWN_SIGNALS;
    if (ks_domain_pkey() < 0) {
        snprintf(err, errlen, "the keystore is not ready (ks_init first)");
        return -1;
    }
    if (ks_seccomp_active()) {
        snprintf(err, errlen, "already locked down (once per process)");
        return -1;
    }
    if (protected_ranges(&p, err, errlen) != 0) {
        return -1;
    }
    if (ks_vma_list(&v, &n) != 0) {
        snprintf(err, errlen, "cannot read /proc/self/smaps: %s",
                 strerror(errno));
        return -1;
    }
    rc = check_no_wx(v, n, err, errlen) != 0
         || ((flags & KS_LOCKDOWN_SIGNALS)
             && (ks_signals_check(err, errlen) != 0
                 || ks_signals_reset_libc(err, errlen) != 0))
         || seal_all(&p, v, n, err, errlen) ? -1 : 0;
    free(v);
    if (rc != 0) {
        return -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
        return -1;
    }
    if (ks_seccomp_load(flags & KS_LOCKDOWN_SIGNALS, err, errlen) != 0) {
        return -1;
    }
    /* trust the kernel's account, not the return codes above */
    got = ks_lockdown_status(NULL, 0);
    if ((got & want) != want) {
        describe(want & ~got, missing, sizeof(missing));
        snprintf(err, errlen, "not in force after lockdown: %s", missing);
        return -1;
    }
    return 0;
}
