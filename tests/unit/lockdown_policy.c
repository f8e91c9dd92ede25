/* The syscall policy, call by call.  See lockdown_policy.h. */

#define _GNU_SOURCE
#include "lockdown_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH  59
#endif

/* ---- a thread that exists before lockdown -------------------------------- */

static int        thread_pipe[2] = { -1, -1 };
static pthread_t  thread;
static long       thread_rc;
static int        thread_err;

static void *
thread_main(void *arg)
{
    char x;

    (void) arg;
    if (read(thread_pipe[0], &x, 1) == 1) {
        thread_rc = syscall(SYS_process_vm_readv, getpid(), NULL, 0UL, NULL,
                            0UL, 0UL);
        thread_err = thread_rc == -1 ? errno : 0;
    }
    return NULL;
}

void
lk_policy_prep(struct lk_policy *p)
{
    (void) p;
    if (pipe(thread_pipe) != 0
        || pthread_create(&thread, NULL, thread_main, NULL) != 0)
    {
        thread_pipe[1] = -1;
    }
}

static long
p_thread_vm_readv(void)
{
    if (thread_pipe[1] < 0 || write(thread_pipe[1], "x", 1) != 1
        || pthread_join(thread, NULL) != 0)
    {
        errno = ECHILD;                     /* no thread: shows as a failure */
        return -1;
    }
    errno = thread_err;
    return thread_rc;
}

/* ---- the calls --------------------------------------------------------- */

static long p_dumpable_1(void) { return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); }
static long p_dumpable_0(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }
static long p_get_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }
static long p_set_seccomp(void) { return prctl(PR_SET_SECCOMP, 99, 0, 0, 0); }

/* the kernel reads the option as an int: the high bits must not help */
static long
p_set_seccomp_hi(void)
{
    return syscall(SYS_prctl, 1UL << 32 | PR_SET_SECCOMP, 99UL, 0UL, 0UL, 0UL);
}

static long
p_set_mm(void)
{
    return prctl(PR_SET_MM, PR_SET_MM_START_CODE, 0UL, 0UL, 0UL);
}

static long
p_user_dispatch(void)
{
    return prctl(PR_SET_SYSCALL_USER_DISPATCH, 99UL, 0UL, 0UL, 0UL);
}

static long p_ptracer(void) { return prctl(PR_SET_PTRACER, 0UL, 0, 0, 0); }

static long
p_read_implies_exec(void)
{
    int cur = personality(0xffffffff);
    long rc = personality(cur | READ_IMPLIES_EXEC);

    if (rc != -1) {
        personality(cur);
    }
    return rc;
}

static long p_personality_query(void) { return personality(0xffffffff); }

static long
p_shmat_exec(void)
{
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    void *a;
    int e;

    if (id < 0) {
        return -1;
    }
    a = shmat(id, NULL, SHM_EXEC);
    e = errno;
    if (a != (void *) -1) {
        shmdt(a);
    }
    shmctl(id, IPC_RMID, NULL);
    errno = e;
    return a == (void *) -1 ? -1 : 0;
}

static long
p_mmap_read(void)
{
    void *a = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    return a == MAP_FAILED ? -1 : munmap(a, 4096);
}

static long
p_mprotect_read(void)
{
    void *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    return a == MAP_FAILED ? -1 : mprotect(a, 4096, PROT_READ);
}

static long
p_execve(void)
{
    char *argv[] = { "/nonexistent", NULL };

    return execve(argv[0], argv, argv + 1);
}

static long
p_execveat(void)
{
    char *argv[] = { "/nonexistent", NULL };

    return syscall(SYS_execveat, AT_FDCWD, argv[0], argv, argv + 1, 0);
}

static long p_ptrace(void) { return ptrace(PTRACE_PEEKDATA, 1, NULL, NULL); }

static long
p_pidfd_getfd(void)
{
    return syscall(SYS_pidfd_getfd, -1, 0, 0);
}

static long
p_process_madvise(void)
{
    return syscall(SYS_process_madvise, -1, NULL, 0UL, 0, 0U);
}

static long
p_pkey_alloc(void)
{
    int k = pkey_alloc(0, 0);

    if (k >= 0) {
        pkey_free(k);
    }
    return k < 0 ? -1 : 0;
}

static long p_pkey_free(void) { return pkey_free(15); }

static long
p_pkey_mprotect(void)
{
    void *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    /* raw: glibc turns pkey_mprotect(..., -1) into mprotect() */
    return a == MAP_FAILED ? -1 : syscall(SYS_pkey_mprotect, a, 4096UL,
                                          (unsigned long) PROT_READ, -1L);
}

static long
p_uring_register(void)
{
    return syscall(SYS_io_uring_register, -1, 0, NULL, 0);
}

static long
p_uring_enter(void)
{
    return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
}

static long
p_seccomp_query(void)
{
    unsigned action = SECCOMP_RET_KILL_PROCESS;

    return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
}

static long p_clone3(void) { return syscall(SYS_clone3, NULL, 0); }

/* a child the fork way; it leaves at once */
static long
reap(long pid)
{
    if (pid == 0) {
        _exit(0);
    }
    if (pid > 0) {
        waitpid((pid_t) pid, NULL, 0);
    }
    return pid < 0 ? -1 : 0;
}

static long
p_clone_process(void)
{
    return reap(syscall(SYS_clone, (unsigned long) SIGCHLD, 0UL, 0UL, 0UL,
                        0UL));
}

static long p_fork(void) { return reap(syscall(SYS_fork)); }

static long
p_sigaction(void)
{
    struct sigaction old;

    return sigaction(SIGUSR1, NULL, &old);
}

static long
p_sigaltstack(void)
{
    stack_t old;

    return sigaltstack(NULL, &old);
}

static long
p_vm_readv(void)
{
    return syscall(SYS_process_vm_readv, getpid(), NULL, 0UL, NULL, 0UL, 0UL);
}

static long
p_vm_writev(void)
{
    return syscall(SYS_process_vm_writev, getpid(), NULL, 0UL, NULL, 0UL, 0UL);
}

static long
p_perf(void)
{
    return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}

static long
p_userfaultfd(void)
{
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

    if (fd >= 0) {
        close((int) fd);
    }
    return fd < 0 ? -1 : 0;
}

/* root opens /proc/self/mem whatever dumpable says: lockdown does not
 * cover root workers (nginx -t refuses them) */
static long
p_proc_mem_root(void)
{
    int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
    }
    return fd < 0 ? -1 : 0;
}

static long p_kill0(void) { return kill(getpid(), 0); }

struct call {
    const char  *name;
    long       (*fn)(void);
    int          expect[3];                 /* off, on, on + signals */
};

static const struct call calls[] = {
    { "prctl(PR_SET_DUMPABLE, 1)", p_dumpable_1, { 0, EPERM, EPERM } },
    { "prctl(PR_SET_DUMPABLE, 0)", p_dumpable_0, { 0, 0, 0 } },
    { "prctl(PR_GET_DUMPABLE)", p_get_dumpable, { 0, 0, 0 } },
    { "prctl(PR_SET_SECCOMP, 99)", p_set_seccomp, { EINVAL, EPERM, EPERM } },
    { "prctl(1<<32 | PR_SET_SECCOMP, 99)", p_set_seccomp_hi,
      { EINVAL, EPERM, EPERM } },
    { "prctl(PR_SET_MM, START_CODE, 0)", p_set_mm, { EINVAL, EPERM, EPERM } },
    { "prctl(PR_SET_SYSCALL_USER_DISPATCH, 99)", p_user_dispatch,
      { EINVAL, EPERM, EPERM } },
    { "prctl(PR_SET_PTRACER, 0)", p_ptracer, { 0, EPERM, EPERM } },
    { "personality(+READ_IMPLIES_EXEC)", p_read_implies_exec,
      { 0, EPERM, EPERM } },
    { "personality(query)", p_personality_query, { 0, 0, 0 } },
    { "shmat(SHM_EXEC)", p_shmat_exec, { 0, EPERM, EPERM } },
    { "mmap(PROT_READ)", p_mmap_read, { 0, 0, 0 } },
    { "mprotect(PROT_READ)", p_mprotect_read, { 0, 0, 0 } },
    { "execve(/nonexistent)", p_execve, { ENOENT, EPERM, EPERM } },
    { "execveat(/nonexistent)", p_execveat, { ENOENT, EPERM, EPERM } },
    { "ptrace(PTRACE_PEEKDATA, 1)", p_ptrace, { ESRCH, EPERM, EPERM } },
    { "pidfd_getfd(-1)", p_pidfd_getfd, { EBADF, EPERM, EPERM } },
    { "process_madvise(-1)", p_process_madvise, { EBADF, EPERM, EPERM } },
    { "pkey_alloc", p_pkey_alloc, { 0, EPERM, EPERM } },
    { "pkey_free(15)", p_pkey_free, { EINVAL, EPERM, EPERM } },
    { "pkey_mprotect(PROT_READ, -1)", p_pkey_mprotect, { 0, EPERM, EPERM } },
    { "io_uring_register(-1)", p_uring_register, { EBADF, EPERM, EPERM } },
    { "io_uring_enter(-1)", p_uring_enter, { EBADF, EPERM, EPERM } },
    { "seccomp(GET_ACTION_AVAIL)", p_seccomp_query, { 0, EPERM, EPERM } },
    { "clone3(NULL, 0)", p_clone3, { EINVAL, ENOSYS, ENOSYS } },
    { "clone(SIGCHLD): a process", p_clone_process, { 0, EPERM, EPERM } },
    { "fork (raw)", p_fork, { 0, EPERM, EPERM } },
    { "rt_sigaction(SIGUSR1, query)", p_sigaction, { 0, 0, EPERM } },
    { "sigaltstack(query)", p_sigaltstack, { 0, 0, EPERM } },
    { "process_vm_readv(self, 0 iov)", p_vm_readv, { 0, EPERM, EPERM } },
    { "process_vm_writev(self, 0 iov)", p_vm_writev, { 0, EPERM, EPERM } },
    { "  ... from a thread made before", p_thread_vm_readv,
      { 0, EPERM, EPERM } },
    { "perf_event_open(NULL)", p_perf, { EFAULT, EPERM, EPERM } },
    { "userfaultfd(USER_MODE_ONLY)", p_userfaultfd, { 0, EPERM, EPERM } },
    { "open(/proc/self/mem) as root", p_proc_mem_root, { 0, 0, 0 } },
    { "kill(self, 0)", p_kill0, { 0, 0, 0 } },
};

#define NCALLS  (sizeof(calls) / sizeof(calls[0]))
_Static_assert(NCALLS <= LK_POLICY_MAX, "LK_POLICY_MAX too small");

void
lk_policy_run(struct lk_policy *p)
{
    unsigned i;

    for (i = 0; i < NCALLS; i++) {
        long rc;

        errno = 0;
        rc = calls[i].fn();
        p->err[i] = rc == -1 ? (errno ? errno : -1) : 0;
    }
    p->n = NCALLS;
}

const char *
lk_policy_name(unsigned i)
{
    return i < NCALLS ? calls[i].name : "?";
}

int
lk_policy_expected(unsigned i, int mode)
{
    return i < NCALLS && mode >= 0 && mode < 3 ? calls[i].expect[mode] : -2;
}

static const char *
result(int err)
{
    return err == 0 ? "ok" : err > 0 && strerrorname_np(err)
                             ? strerrorname_np(err) : "?";
}

void
lk_policy_print(const struct lk_policy res[3])
{
    unsigned i;

    printf("# %-40s %-8s %-8s %-8s\n", "policy (as root)", "off", "on",
           "on+sig");
    for (i = 0; i < res[0].n; i++) {
        printf("# %-40s %-8s %-8s %-8s\n", calls[i].name,
               result(res[0].err[i]), result(res[1].err[i]),
               result(res[2].err[i]));
    }
}
