/*
 * The attack library (libmpktls-attack.so, test builds only): preloaded
 * into NGINX, it runs an attack inside a real worker when that worker
 * opens a file named .../__attack/NAME (a GET /__attack/NAME to a plain
 * HTTP server of the same configuration).  Everything it learns goes to a
 * file that the test shares with it (MAP_SHARED), so that the test reads
 * the outcome even when the attack ended the worker.
 *
 * MPKTLS_ATTACK_FILE   the shared file (the test makes it, AT_FILE_SIZE)
 * MPKTLS_ATTACK_MODE   "on": the worker locks down as shipped; "off": the
 *                      positive control, ks_lockdown() does nothing and
 *                      ks_lockdown_status() says every piece is on, so
 *                      the module serves as if locked down
 * MPKTLS_ATTACK_DONE   the file open() returns after an attack (served)
 * MPKTLS_ATTACK_DISPATCH  ks_dispatch's offset from ks_gate_call (class 7)
 *
 * In a worker with timer_resolution (an interval timer runs), the first
 * ks_stats() runs at_signals_at_start() ("off": its control).
 *
 * Layout of the shared file: struct at_page, read by
 * tests/attacks/test_attacks.py with ctypes (keep the two in step).
 */

#ifndef ATTACK_H
#define ATTACK_H

#include <stdint.h>

#include "../unit/lockdown_attacks.h"

#define AT_MAGIC      0x6b74614du           /* "Matk" */
#define AT_FILE_SIZE  8192
#define AT_RANGES     8

struct at_page {
    uint32_t           magic;
    int32_t            pid;                 /* the worker that prepared */
    int32_t            state;               /* 1 attack started, 2 ended */
    int32_t            pkey;
    uint64_t           t_start[AT_RANGES];  /* KS_OP_RANGES, as U sees it */
    uint64_t           t_len[AT_RANGES];
    uint32_t           nranges;
    uint32_t           pad;
    struct lk_ctx      ctx;                 /* canary bytes: the test's */
    struct lk_outcome  gadget_control;      /* before inspection */
    struct lk_outcome  o;                   /* the last attack */
    struct lk_outcome  prep[4];             /* AT_PREP_* */
    struct lk_outcome  start_signals;       /* at_signals_at_start */
};

enum { AT_PREP_CODE, AT_PREP_INT80, AT_PREP_IO_URING, AT_PREP_PTRACE };

extern struct at_page  *at;
extern long             at_dispatch_offset; /* MPKTLS_ATTACK_DISPATCH */

/* the attacks of attack_extra.c (the others: tests/unit/lockdown_attacks*) */
void at_signal_in_t(const struct lk_ctx *, struct lk_outcome *);    /* 6 */
void at_thread_in_t(const struct lk_ctx *, struct lk_outcome *);    /* 11 */
void at_t_internal(const struct lk_ctx *, struct lk_outcome *);     /* 7 */
void at_ip_syscall(const struct lk_ctx *, struct lk_outcome *);     /* 12 */
void at_unsafe_site(const struct lk_ctx *, struct lk_outcome *);
void at_gate_t_pointers(const struct lk_ctx *, struct lk_outcome *);
void at_forged_handles(const struct lk_ctx *, struct lk_outcome *);
void at_forged_tokens(const struct lk_ctx *, struct lk_outcome *);

/* The worker's first gate call (stats) repeated for 2 s while
 * timer_resolution's SIGALRM comes; control: with a SIGALRM handler
 * installed and SIGALRM unblocked, the order before commit e2387e2. */
struct ks_stats;
void at_signals_at_start(int (*stats)(struct ks_stats *), int control,
                         struct lk_outcome *o);

/* The control of at_unsafe_site, before the worker's inspection: the
 * same gadget opens T (the T heap's first non-zero bytes into o). */
void at_unsafe_site_control(struct lk_outcome *o);

#endif /* ATTACK_H */
