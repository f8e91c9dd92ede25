/*
 * The attacks of test_lockdown.c: each class of ../../../shared/notes/
 * pku-attacks.md that one process can carry out on itself, written as an
 * attacker with full control of U would write it.
 *
 * Each attack runs in a forked child (test_lockdown.c), once without and
 * once with ks_lockdown(), and writes what happened into a struct
 * lk_outcome in a shared page: whether it reached its goal (read T's
 * canary, changed T, opened T for U, got the capability it wanted), and
 * the result and errno of the call that decided it.  The attacks know
 * where T is (KS_OP_RANGES, as /proc/self/maps would tell them), and T's
 * canary: 32 random bytes the test put at a T address, so that "read T"
 * means "got these bytes".
 */

#ifndef LOCKDOWN_ATTACKS_H
#define LOCKDOWN_ATTACKS_H

#include <stddef.h>
#include <stdint.h>

#define LK_CANARY_LEN  32

struct lk_ctx {
    uintptr_t      canary;                  /* T address of the canary */
    unsigned char  canary_bytes[LK_CANARY_LEN];
    uintptr_t      canary_page;             /* its page: the heap's last */
    uintptr_t      ks_text_start, ks_text_end;  /* libkeystore's code */
};

struct lk_outcome {
    int            success;                 /* the attack reached its goal */
    long           rc;                      /* the deciding call's result */
    int            err;                     /* and its errno (0: none) */
    char           step[48];                /* which call that was */
    char           detail[96];              /* what the attack got */
    long           aux[8];                  /* attack-specific results */
};

typedef void (*lk_fn)(const struct lk_ctx *c, struct lk_outcome *o);

/* Record the deciding call: step, rc, errno (taken when rc == -1). */
void lk_record(struct lk_outcome *o, const char *step, long rc);

/* Read T's canary through the gate (the test library's peek): 1 if it
 * still holds the canary bytes, 0 if anything else. */
int lk_t_canary_intact(const struct lk_ctx *c);

/* Read the canary with a plain load from U: 1 if that gave its bytes (T
 * is open to U).  While T is closed the load faults (SEGV_PKUERR). */
int lk_u_reads_canary(const struct lk_ctx *c, struct lk_outcome *o);

/* Find libkeystore's code (the PT_LOAD that holds ks_gate_call) and set
 * c->ks_text_start/end: 0, or -1 if not found. */
int lk_find_ks_text(struct lk_ctx *c);

/* ---- the attacks, by class of pku-attacks.md ---------------------------- */

void lk_proc_mem_read(const struct lk_ctx *, struct lk_outcome *);     /* 1 */
void lk_vm_readv(const struct lk_ctx *, struct lk_outcome *);          /* 1 */
void lk_vm_writev(const struct lk_ctx *, struct lk_outcome *);         /* 1 */
void lk_proc_mem_code(const struct lk_ctx *, struct lk_outcome *);     /* 2 */
void lk_pkey_mprotect(const struct lk_ctx *, struct lk_outcome *);     /* 3 */
void lk_mprotect_xonly(const struct lk_ctx *, struct lk_outcome *);    /* 3 */
void lk_mremap(const struct lk_ctx *, struct lk_outcome *);            /* 3 */
void lk_munmap_remap(const struct lk_ctx *, struct lk_outcome *);      /* 3 */
void lk_map_fixed(const struct lk_ctx *, struct lk_outcome *);         /* 3 */
void lk_madvise(const struct lk_ctx *, struct lk_outcome *);           /* 3 */
void lk_userfaultfd(const struct lk_ctx *, struct lk_outcome *);       /* 3 */
void lk_gate_page(const struct lk_ctx *, struct lk_outcome *);         /* 3 */
void lk_mmap_exec(const struct lk_ctx *, struct lk_outcome *);         /* 4 */
void lk_mprotect_exec(const struct lk_ctx *, struct lk_outcome *);     /* 4 */
void lk_code_prep(const struct lk_ctx *, struct lk_outcome *);
void lk_code_rw(const struct lk_ctx *, struct lk_outcome *);          /* 4 */
void lk_int80_prep(const struct lk_ctx *, struct lk_outcome *);
void lk_int80(const struct lk_ctx *, struct lk_outcome *);             /* 4 */
void lk_x32(const struct lk_ctx *, struct lk_outcome *);               /* 4 */
void lk_sigreturn(const struct lk_ctx *, struct lk_outcome *);         /* 5 */
void lk_seccomp(const struct lk_ctx *, struct lk_outcome *);           /* 8 */
void lk_perf(const struct lk_ctx *, struct lk_outcome *);              /* 9 */
void lk_io_uring_prep(const struct lk_ctx *, struct lk_outcome *);
void lk_io_uring(const struct lk_ctx *, struct lk_outcome *);          /* 10 */
void lk_fork(const struct lk_ctx *, struct lk_outcome *);              /* 11 */
void lk_ptrace_prep(const struct lk_ctx *, struct lk_outcome *);
void lk_ptrace(const struct lk_ctx *, struct lk_outcome *);            /* 13 */

#endif /* LOCKDOWN_ATTACKS_H */
