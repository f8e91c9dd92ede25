/*
 * The attacks of test_lockdown.c, classes 5-13 of pku-attacks.md: a
 * forged signal frame, U's own seccomp filter, perf sampling of T's
 * registers, io_uring, new processes, ptrace from a child.  (Classes 1-4:
 * lockdown_attacks.c.)  See lockdown_attacks.h.
 */

#define _GNU_SOURCE
#include "lockdown_attacks.h"
#include "../../keystore/ks_pkru.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <asm/perf_regs.h>

#include "../../keystore/keystore.h"

#define PAGE  4096u

/* ---- 5: a forged signal frame ------------------------------------------------ */

/* where the forged frame resumes: no return address to go back to */
static const struct lk_ctx   *sr_ctx;
static struct lk_outcome     *sr_out;
static unsigned char          sr_stack[65536] __attribute__((aligned(16)));

static void __attribute__((noreturn))
after_sigreturn(void)
{
    uint32_t pkru = ks_rdpkru();

    sr_out->rc = pkru;
    sr_out->success = lk_u_reads_canary(sr_ctx, sr_out);
    snprintf(sr_out->detail, sizeof(sr_out->detail),
             "PKRU %#x after rt_sigreturn: U read T's canary", pkru);
    _exit(0);
}

/*
 * rt_sigreturn with a frame built by hand (no signal needed): the
 * registers resume after_sigreturn on a fresh stack, and the FPU state is
 * a legacy FXSAVE image without the XSAVE magic, so the kernel restores
 * the extended state, PKRU included, to its init value: 0, every key open.
 */
void
lk_sigreturn(const struct lk_ctx *c, struct lk_outcome *o)
{
    static unsigned char fx[1024] __attribute__((aligned(64)));
    static unsigned char frame[4096] __attribute__((aligned(16)));
    ucontext_t *uc = (ucontext_t *) (frame + 8);    /* after pretcode */

    sr_ctx = c;
    sr_out = o;
    memset(fx, 0, sizeof(fx));
    __asm__ volatile ("fxsave %0" : "=m" (*(unsigned char (*)[512]) fx));
    memset(fx + 464, 0, 48);                /* no FP_XSTATE_MAGIC1 */
    memset(frame, 0, sizeof(frame));
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t) (uintptr_t) after_sigreturn;
    uc->uc_mcontext.gregs[REG_RSP] =
        (greg_t) (uintptr_t) (sr_stack + sizeof(sr_stack) - 8);
    uc->uc_mcontext.gregs[REG_EFL] = 0x202;
    uc->uc_mcontext.gregs[REG_CSGSFS] = 0x33 | (0x2bL << 48);  /* cs, ss */
    uc->uc_mcontext.fpregs = (fpregset_t) fx;
    lk_record(o, "rt_sigreturn(forged frame)", -1);
    errno = 0;
    __asm__ volatile ("mov %0, %%rsp\n\t"
                      "mov $15, %%eax\n\t"      /* rt_sigreturn */
                      "syscall\n\t"
                      "ud2"
                      : : "r" (uc) : "memory");
    __builtin_unreachable();
}

/* ---- 8: U's own seccomp filter ------------------------------------------- */

void
lk_seccomp(const struct lk_ctx *c, struct lk_outcome *o)
{
    /* getppid fails with EIO; T's syscalls could be failed the same way */
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EIO),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
    long rc;

    (void) c;
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
    o->aux[0] = rc == 0 ? 0 : errno;        /* the prctl way */
    rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    lk_record(o, "seccomp(SECCOMP_SET_MODE_FILTER)", rc);
    /* glibc's getppid() cannot fail (it sets no errno): the raw call */
    o->success = rc == 0 && syscall(SYS_getppid) == -1 && errno == EIO;
    snprintf(o->detail, sizeof(o->detail), "U's filter in force");
}

/* ---- 9: perf sampling of T's registers ---------------------------------- */

struct sample {
    struct perf_event_header  h;
    uint64_t                  ip, abi, regs[2];     /* IP, R12 */
};

/* Samples in the ring, and how many were taken while T's code ran. */
static void
count_samples(void *ring, const struct lk_ctx *c, long *all, long *in_t)
{
    struct perf_event_mmap_page *meta = ring;
    unsigned char *data = (unsigned char *) ring + PAGE;
    uint64_t head = meta->data_head, pos = meta->data_tail;
    uint64_t size = meta->data_size;

    __sync_synchronize();
    *all = *in_t = 0;
    while (pos < head) {
        struct sample s;
        size_t i;

        for (i = 0; i < sizeof(s); i++) {   /* records may wrap */
            ((unsigned char *) &s)[i] = data[(pos + i) % size];
        }
        if (s.h.size == 0) {
            break;
        }
        if (s.h.type == PERF_RECORD_SAMPLE) {
            ++*all;
            *in_t += s.abi != PERF_SAMPLE_REGS_ABI_NONE
                     && s.regs[0] >= c->ks_text_start
                     && s.regs[0] < c->ks_text_end;
        }
        pos += s.h.size;
    }
}

void
lk_perf(const struct lk_ctx *c, struct lk_outcome *o)
{
    struct perf_event_attr a;
    unsigned char md[32];
    unsigned char *buf = calloc(1, 1 << 20);
    void *ring;
    long fd, all = 0, in_t = 0;
    int i;

    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    a.sample_period = 20000;                /* ns of CPU time */
    a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_REGS_USER;
    a.sample_regs_user = 1ULL << PERF_REG_X86_IP | 1ULL << PERF_REG_X86_R12;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    a.disabled = 1;
    fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    lk_record(o, "perf_event_open(self, REGS_USER)", fd);
    if (fd < 0 || buf == NULL) {
        return;
    }
    ring = mmap(NULL, 17 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ring == MAP_FAILED) {
        return;
    }
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    for (i = 0; i < 4; i++) {               /* SHA-256 of 1 MiB, in T */
        ks_selftest_sha256(buf, 1 << 20, md);
    }
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    count_samples(ring, c, &all, &in_t);
    o->aux[0] = all;
    o->aux[1] = in_t;
    o->success = in_t > 0;
    snprintf(o->detail, sizeof(o->detail),
             "%ld samples, %ld of T's registers (IP in T's code)", all, in_t);
}

/* ---- 10: io_uring -------------------------------------------------------- */

/* A ring made before lockdown, as a worker's earlier code might have. */
void
lk_io_uring_prep(const struct lk_ctx *c, struct lk_outcome *o)
{
    struct io_uring_params p;

    (void) c;
    memset(&p, 0, sizeof(p));
    o->aux[0] = syscall(SYS_io_uring_setup, 4, &p);
}

void
lk_io_uring(const struct lk_ctx *c, struct lk_outcome *o)
{
    struct io_uring_params p;
    long fd;

    (void) c;
    /* the earlier ring, entered now */
    o->aux[1] = syscall(SYS_io_uring_enter, o->aux[0], 0, 0, 0, NULL, 0);
    o->aux[2] = o->aux[1] == -1 ? errno : 0;
    memset(&p, 0, sizeof(p));
    fd = syscall(SYS_io_uring_setup, 4, &p);
    lk_record(o, "io_uring_setup", fd);
    o->success = fd >= 0;
    snprintf(o->detail, sizeof(o->detail), "got a ring%s",
             o->aux[1] == 0 ? "; entered the earlier one" : "");
}

/* ---- 11: threads yes, processes no ---------------------------------------- */

static void *
thread_main(void *arg)
{
    *(volatile int *) arg = 1;
    return NULL;
}

void
lk_fork(const struct lk_ctx *c, struct lk_outcome *o)
{
    volatile int ran = 0;
    pthread_t t;
    pid_t pid;

    (void) c;
    /* glibc tries clone3 (ENOSYS under the filter), then clone with
     * CLONE_THREAD, which the filter allows */
    o->aux[0] = pthread_create(&t, NULL, thread_main, (void *) &ran) == 0
                && pthread_join(t, NULL) == 0 && ran;
    o->aux[1] = syscall(SYS_clone3, NULL, 0) == -1 ? errno : 0;
    pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    lk_record(o, "fork", pid);
    if (pid > 0) {
        waitpid(pid, NULL, 0);
    }
    o->success = pid > 0;
    snprintf(o->detail, sizeof(o->detail), "made a child process%s",
             o->aux[0] ? "; a thread ran" : "");
}

/* ---- 13: ptrace from a child ------------------------------------------------ */

/*
 * A child forked before lockdown (the filter is per process, the child
 * never gets it) waits on a pipe, then attaches to its parent, reads T's
 * canary with PTRACE_PEEKDATA and overwrites it with POKEDATA.  aux: 0
 * the pipe, 1 the child; its results: 3 attach rc, 4 errno, 5 read, 6 wrote.
 */
void
lk_ptrace_prep(const struct lk_ctx *c, struct lk_outcome *o)
{
    int p[2];
    pid_t pid, parent = getpid();
    char x;

    if (pipe(p) != 0) {
        return;
    }
    pid = fork();
    if (pid == 0) {
        long w[LK_CANARY_LEN / 8];
        unsigned i;
        int st;

        close(p[1]);
        if (read(p[0], &x, 1) != 1) {
            _exit(1);
        }
        o->aux[3] = ptrace(PTRACE_ATTACH, parent, NULL, NULL);
        o->aux[4] = o->aux[3] == -1 ? errno : 0;
        if (o->aux[3] != 0 || waitpid(parent, &st, __WALL) != parent) {
            _exit(0);
        }
        for (i = 0; i < LK_CANARY_LEN / 8; i++) {
            w[i] = ptrace(PTRACE_PEEKDATA, parent, c->canary + 8 * i, NULL);
        }
        o->aux[5] = memcmp(w, c->canary_bytes, sizeof(w)) == 0;
        o->aux[6] = ptrace(PTRACE_POKEDATA, parent, c->canary,
                           (void *) 0xaaaaaaaaaaaaaaaaUL) == 0;
        ptrace(PTRACE_DETACH, parent, NULL, NULL);
        _exit(0);
    }
    close(p[0]);
    o->aux[0] = p[1];
    o->aux[1] = pid;
}

void
lk_ptrace(const struct lk_ctx *c, struct lk_outcome *o)
{
    long rc;

    (void) c;
    if (o->aux[1] <= 0) {
        lk_record(o, "fork the tracer (before lockdown)", -1);
        return;
    }
    /* let any process trace us (Yama); the filter refuses it */
    rc = prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    o->aux[2] = rc == 0 ? 0 : errno;
    if (write((int) o->aux[0], "x", 1) != 1) {
        lk_record(o, "wake the tracer", -1);
        return;
    }
    waitpid((pid_t) o->aux[1], NULL, 0);
    errno = (int) o->aux[4];
    lk_record(o, "ptrace(PTRACE_ATTACH) from the child", o->aux[3]);
    o->success = o->aux[5] == 1;
    snprintf(o->detail, sizeof(o->detail), "the child read%s T's canary",
             o->aux[6] ? " and overwrote" : "");
}
