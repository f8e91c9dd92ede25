/*
 * The attack library's hooks (see attack.h): interposed on NGINX's calls
 * into libc and libkeystore, so that NGINX and the module run unchanged.
 *
 * - ks_lockdown(): the worker calls it after inspection.  Here the
 *   attacks that need something from before lockdown prepare it (a code
 *   page, a ring, a tracer child), then the real ks_lockdown() runs
 *   ("on"), or nothing ("off", the positive control).
 * - ks_lockdown_status(): "off" answers every piece, so that the module
 *   serves without lockdown (test builds only; the shipped module never
 *   sees this library).
 * - ks_stats(): the worker's first gate call; with timer_resolution,
 *   signals at start (at_signals_at_start()).
 * - prctl(PR_SET_DUMPABLE, 1): ngx_worker_process_init() calls it before
 *   the modules' init_process, i.e. before inspection: the moment for the
 *   unsafe-site control.
 * - open(): ".../__attack/NAME" runs attack NAME in this worker.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "../../keystore/ks_range.h"
#include "attack.h"

#define PAGE  4096u

struct at_page  *at;

static int    mode_off;
static char  *done_file;
long          at_dispatch_offset;           /* attack.h */

struct at_attack {
    const char  *name;
    lk_fn        run;
    int          prep;                      /* AT_PREP_*, or -1 */
};

static const struct at_attack  attacks[] = {
    { "proc_mem_read", lk_proc_mem_read, -1 },
    { "vm_readv", lk_vm_readv, -1 },
    { "vm_writev", lk_vm_writev, -1 },
    { "proc_mem_code", lk_proc_mem_code, -1 },
    { "pkey_mprotect", lk_pkey_mprotect, -1 },
    { "mprotect_xonly", lk_mprotect_xonly, -1 },
    { "mremap", lk_mremap, -1 },
    { "munmap_remap", lk_munmap_remap, -1 },
    { "map_fixed", lk_map_fixed, -1 },
    { "madvise", lk_madvise, -1 },
    { "userfaultfd", lk_userfaultfd, -1 },
    { "gate_page", lk_gate_page, -1 },
    { "mmap_exec", lk_mmap_exec, -1 },
    { "mprotect_exec", lk_mprotect_exec, -1 },
    { "code_rw", lk_code_rw, AT_PREP_CODE },
    { "int80", lk_int80, AT_PREP_INT80 },
    { "x32", lk_x32, -1 },
    { "sigreturn", lk_sigreturn, -1 },
    { "signal_in_t", at_signal_in_t, -1 },
    { "t_internal", at_t_internal, -1 },
    { "seccomp", lk_seccomp, -1 },
    { "perf", lk_perf, -1 },
    { "io_uring", lk_io_uring, AT_PREP_IO_URING },
    { "fork", lk_fork, -1 },
    { "thread_in_t", at_thread_in_t, -1 },
    { "ip_syscall", at_ip_syscall, -1 },
    { "ptrace", lk_ptrace, AT_PREP_PTRACE },
    { "unsafe_site", at_unsafe_site, -1 },
    { "gate_t_pointers", at_gate_t_pointers, -1 },
    { "forged_handles", at_forged_handles, -1 },
    { "forged_tokens", at_forged_tokens, -1 },
};

__attribute__((constructor))
static void
at_start(void)
{
    const char *file = getenv("MPKTLS_ATTACK_FILE");
    const char *mode = getenv("MPKTLS_ATTACK_MODE");
    void *p;
    int fd;

    done_file = getenv("MPKTLS_ATTACK_DONE");
    if (file == NULL || mode == NULL || done_file == NULL) {
        return;                             /* not a test: hooks pass */
    }
    done_file = strdup(done_file);
    /* NGINX's workers keep only TZ of the environment: read it all now */
    if (getenv("MPKTLS_ATTACK_DISPATCH") != NULL) {
        at_dispatch_offset = strtol(getenv("MPKTLS_ATTACK_DISPATCH"), NULL,
                                    0);
    }
    mode_off = strcmp(mode, "off") == 0;
    fd = open(file, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    p = mmap(NULL, AT_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) {
        at = p;
    }
}

/* ---- what the attacks know of T ------------------------------------------ */

/* Where T is (the public KS_OP_RANGES; smaps says as much) and the
 * canary's place: the T heap's last page, which nothing allocates. */
static int
learn_t(void)
{
    struct ks_range_out r[KS_RANGE_MAX];
    struct ks_args_ranges a = { r, &at->nranges };
    struct ks_stats st;
    unsigned i;

    if (ks_gate_call(KS_OP_RANGES, &a) != 0 || at->nranges == 0
        || ks_stats(&st) != 0 || lk_find_ks_text(&at->ctx) != 0)
    {
        return -1;
    }
    at->pkey = st.pkey;
    for (i = 0; i < at->nranges && i < AT_RANGES; i++) {
        at->t_start[i] = r[i].start;
        at->t_len[i] = r[i].len;
    }
    at->ctx.canary_page = r[0].start + r[0].len - PAGE;   /* the heap's */
    at->ctx.canary = at->ctx.canary_page + 64;
    return 0;
}

/* ---- the hooks ---------------------------------------------------------- */

static void *
nothing(void *arg)
{
    return arg;
}

/* Threads started and joined before the attacks (twice: the second takes
 * the first one's cached stack, another path of glibc's): what
 * pthread_create() calls in ld.so is bound then, not later through ld.so's
 * lazy-binding XRSTOR,
 * whose rewritten check would end a worker that runs with T open (a
 * defense of its own, not the one thread_in_t is about). */
static void
warm_threads(void)
{
    pthread_t t;
    int i;

    for (i = 0; i < 2; i++) {
        if (pthread_create(&t, NULL, nothing, NULL) == 0) {
            pthread_join(t, NULL);
        }
    }
}

int
ks_lockdown(unsigned flags, char *err, size_t errlen)
{
    static int (*real)(unsigned, char *, size_t);

    if (at != NULL && learn_t() == 0) {
        at->pid = getpid();
        memset(at->prep, 0, sizeof(at->prep));
        lk_code_prep(&at->ctx, &at->prep[AT_PREP_CODE]);
        lk_int80_prep(&at->ctx, &at->prep[AT_PREP_INT80]);
        lk_io_uring_prep(&at->ctx, &at->prep[AT_PREP_IO_URING]);
        lk_ptrace_prep(&at->ctx, &at->prep[AT_PREP_PTRACE]);
        warm_threads();
        if (mode_off) {
            return 0;
        }
    }
    if (real == NULL) {
        real = (int (*)(unsigned, char *, size_t)) dlsym(RTLD_NEXT,
                                                         "ks_lockdown");
    }
    return real(flags, err, errlen);
}

unsigned
ks_lockdown_status(char *desc, size_t len)
{
    static unsigned (*real)(char *, size_t);

    if (at != NULL && mode_off) {
        snprintf(desc, len, "off (attack-suite control)");
        return KS_LOCKDOWN_ALL;
    }
    if (real == NULL) {
        real = (unsigned (*)(char *, size_t)) dlsym(RTLD_NEXT,
                                                    "ks_lockdown_status");
    }
    return real(desc, len);
}

/* The worker's first gate call (ngx_http_keystore_init_worker's):
 * with an interval timer running (timer_resolution), signals at start. */
int
ks_stats(struct ks_stats *st)
{
    static int (*real)(struct ks_stats *);
    static int done;                        /* per process: after fork */
    struct itimerval it;

    if (real == NULL) {
        real = (int (*)(struct ks_stats *)) dlsym(RTLD_NEXT, "ks_stats");
    }
    if (at != NULL && !done && getitimer(ITIMER_REAL, &it) == 0
        && (it.it_interval.tv_sec != 0 || it.it_interval.tv_usec != 0))
    {
        done = 1;
        memset(&at->start_signals, 0, sizeof(at->start_signals));
        at_signals_at_start(real, mode_off, &at->start_signals);
    }
    return real(st);
}

int
prctl(int option, ...)
{
    static int (*real)(int, ...);
    unsigned long a[4];
    struct ks_stats st;
    va_list ap;
    int i;

    va_start(ap, option);
    for (i = 0; i < 4; i++) {
        a[i] = va_arg(ap, unsigned long);
    }
    va_end(ap);
    if (at != NULL && option == PR_SET_DUMPABLE && a[0] == 1
        && ks_stats(&st) == 0 && learn_t() == 0)
    {
        memset(&at->gadget_control, 0, sizeof(at->gadget_control));
        at_unsafe_site_control(&at->gadget_control);
    }
    if (real == NULL) {
        real = (int (*)(int, ...)) dlsym(RTLD_NEXT, "prctl");
    }
    return real(option, a[0], a[1], a[2], a[3]);
}

static int
run_attack(const char *path)
{
    const char *name = strstr(path, "/__attack/") + sizeof("/__attack/") - 1;
    struct lk_outcome *o;
    unsigned i;

    for (i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
        if (strcmp(name, attacks[i].name) == 0) {
            /* an attack prepared before lockdown goes on with its own
             * outcome (the tracer child writes there); o gets a copy */
            o = attacks[i].prep >= 0 ? &at->prep[attacks[i].prep] : &at->o;
            if (o != &at->o) {
                at->o = *o;
            } else {
                memset(o, 0, sizeof(*o));
            }
            at->state = 1;
            attacks[i].run(&at->ctx, o);
            at->o = *o;
            at->state = 2;
            return 0;
        }
    }
    return -1;
}

static int
open_hook(int (*real)(const char *, int, ...), const char *path, int flags,
          mode_t m)
{
    if (at != NULL && strstr(path, "/__attack/") != NULL) {
        if (run_attack(path) != 0) {
            errno = ENOENT;
            return -1;
        }
        return real(done_file, O_RDONLY | O_CLOEXEC);
    }
    return real(path, flags, m);
}

#define OPEN_HOOK(fn)                                                       \
    int                                                                     \
    fn(const char *path, int flags, ...)                                    \
    {                                                                       \
        static int (*real)(const char *, int, ...);                         \
        mode_t m = 0;                                                       \
        va_list ap;                                                         \
                                                                            \
        if (flags & (O_CREAT | __O_TMPFILE)) {                              \
            va_start(ap, flags);                                            \
            m = va_arg(ap, mode_t);                                         \
            va_end(ap);                                                     \
        }                                                                   \
        if (real == NULL) {                                                 \
            real = (int (*)(const char *, int, ...)) dlsym(RTLD_NEXT, #fn); \
        }                                                                   \
        return open_hook(real, path, flags, m);                             \
    }

OPEN_HOOK(open)
OPEN_HOOK(open64)
