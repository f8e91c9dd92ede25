/*
 * ks_lockdown(): every attack class of pku-attacks.md that one process
 * can carry out on itself, each run twice in a forked child: without
 * lockdown (the positive control: the attack must reach its goal) and
 * with it (the attack must fail with the expected errno, or end the
 * process with SIGSYS, and a hash of T's memory must be unchanged).  Then
 * the syscall policy call by call, the refusals (W+X and its kin), and
 * the status query.  Needs MPK: runs natively on a CPU with pku, else in
 * the QEMU guest (run_all.py).  Prints the table of classes.
 *
 * Children run as an NGINX worker does (uid 65534, made dumpable again
 * after setuid, as ngx_worker_process_init does), except where the
 * control needs root (perf_event_open: this kernel's perf_event_paranoid
 * is 3) and in the policy table (root, so that an errno from the filter
 * cannot be mistaken for a missing capability).
 *
 * T's hash: SHA-256 of the T heap's pages in use and of its last page,
 * where the test keeps a 32-byte canary that the attacks aim at; read
 * through the test library's peek.  The gate's own counters and the T
 * stack change with every crossing, so they are not in it.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <unistd.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "ks_test.h"
#include "lockdown_attacks.h"
#include "lockdown_policy.h"

#define PAGE     4096u
#define CHUNK    ((size_t) 1 << 20)

/* child exit codes besides 0 */
enum { EXIT_SEGV = 42, EXIT_SETUP = 90, EXIT_LOCKDOWN = 91 };

struct attack {
    const char  *cls, *what;
    lk_fn        prep, run;             /* prep: before lockdown */
    unsigned     flags;                 /* ks_lockdown() flags when on */
    int          root;                  /* the control needs root */
    int          on_errno, on_signal;   /* expected with lockdown */
    void       (*check)(const struct lk_outcome *off,
                        const struct lk_outcome *on);
};

/* Results, in a page shared with the children. */
struct shared {
    struct lk_outcome  o;
    int                ld_rc;
    char               ld_err[200];
    int                hashed;
    unsigned char      before[32], after[32];
    int                segv_code;
    struct lk_policy   policy;
};

struct run {
    int                status;
    struct lk_outcome  o;
    int                hashed, hash_same;
    char               text[120];
};

static struct lk_ctx   ctx;
static struct shared  *sh;
static uintptr_t       hash_end;            /* T heap pages in use end here */
static unsigned char   scratch[CHUNK];      /* U */
static char            table[40][2][120];
static const char     *table_what[40], *table_cls[40];
static unsigned        nrows;

/* ---- T's hash --------------------------------------------------------- */

static void
t_hash(unsigned char md[32])
{
    struct ks_args_test_mem a;
    SHA256_CTX h;
    uintptr_t p;

    SHA256_Init(&h);
    for (p = ranges[R_HEAP].start; p < hash_end; p += a.len) {
        a.t_addr = p;
        a.u_buf = scratch;
        a.len = hash_end - p < CHUNK ? hash_end - p : CHUNK;
        if (ks_gate_call(KS_OP_TEST_PEEK, &a) != 0) {
            _exit(EXIT_SETUP);
        }
        SHA256_Update(&h, scratch, a.len);
    }
    a.t_addr = ctx.canary_page;
    a.len = PAGE;
    if (ks_gate_call(KS_OP_TEST_PEEK, &a) != 0) {
        _exit(EXIT_SETUP);
    }
    SHA256_Update(&h, scratch, PAGE);
    SHA256_Final(md, &h);
}

/* The end of the last page of the heap below the canary that is not zero. */
static uintptr_t
heap_in_use_end(void)
{
    uintptr_t lo = ranges[R_HEAP].start, p = ctx.canary_page, q;

    while (p > lo) {
        size_t n = p - lo < CHUNK ? p - lo : CHUNK;

        peek(p - n, scratch, n);
        for (q = n; q > 0; q--) {
            if (scratch[q - 1] != 0) {
                return (p - n + q + PAGE - 1) & ~(uintptr_t) (PAGE - 1);
            }
        }
        p -= n;
    }
    return lo;
}

static int
setup(void **state)
{
    if (setup_keystore(state) != 0) {
        return -1;
    }
    sh = mmap(NULL, (sizeof(*sh) + PAGE - 1) & ~(size_t) (PAGE - 1),
              PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED
        || getrandom(ctx.canary_bytes, LK_CANARY_LEN, 0) != LK_CANARY_LEN
        || lk_find_ks_text(&ctx) != 0)
    {
        return -1;
    }
    /* the heap's last page: beyond the bump allocator's reach here */
    ctx.canary_page = ranges[R_HEAP].start + ranges[R_HEAP].len - PAGE;
    ctx.canary = ctx.canary_page + 64;
    poke(ctx.canary, ctx.canary_bytes, LK_CANARY_LEN);
    hash_end = heap_in_use_end();
    return 0;
}

/* ---- one run in a child ------------------------------------------------- */

static void
on_segv(int sig, siginfo_t *si, void *uc)
{
    (void) sig; (void) uc;
    sh->segv_code = si->si_code;
    _exit(EXIT_SEGV);
}

/* As NGINX makes a worker: unprivileged, then dumpable again. */
static int
become_worker(void)
{
    if (geteuid() == 0
        && (setgroups(0, NULL) != 0 || setgid(65534) != 0
            || setuid(65534) != 0))
    {
        return -1;
    }
    return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

/* The start of a child: its SIGSEGV handler (which never returns through
 * a signal frame) and its credentials.  Returns only on success. */
static void
child_start(int root)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (!root && become_worker() != 0) {
        _exit(EXIT_SETUP);
    }
}

/* With KS_LOCKDOWN_SIGNALS no handler may remain (ours, cmocka's): as
 * a worker that takes its signals from a signalfd. */
static void
drop_handlers(void)
{
    struct sigaction sa;
    int sig;

    for (sig = 1; sig < NSIG; sig++) {
        if (sigaction(sig, NULL, &sa) == 0 && (sa.sa_flags & SA_SIGINFO
            || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)))
        {
            signal(sig, SIG_DFL);
        }
    }
}

static void
child_lockdown(unsigned flags)
{
    if (flags & KS_LOCKDOWN_SIGNALS) {
        drop_handlers();
    }
    sh->ld_rc = ks_lockdown(flags, sh->ld_err, sizeof(sh->ld_err));
    if (sh->ld_rc != 0) {
        _exit(EXIT_LOCKDOWN);
    }
}

/* Run fn(arg, n) in a forked child, the shared page cleared: its wait
 * status. */
static int
run_child(void (*fn)(const void *arg, long n), const void *arg, long n)
{
    pid_t pid;
    int st;

    memset(sh, 0, sizeof(*sh));
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(arg, n);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void
attack_child(const void *arg, long on)
{
    const struct attack *a = arg;

    child_start(a->root);
    if (a->prep != NULL) {
        a->prep(&ctx, &sh->o);
    }
    t_hash(sh->before);
    if (on) {
        child_lockdown(a->flags);
    }
    a->run(&ctx, &sh->o);
    t_hash(sh->after);
    sh->hashed = 1;
}

static void
describe_end(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status)) {
        snprintf(buf, len, "killed by SIG%s", sigabbrev_np(WTERMSIG(status))
                 ? sigabbrev_np(WTERMSIG(status)) : "?");
    } else if (WEXITSTATUS(status) == EXIT_SEGV) {
        snprintf(buf, len, "U's load from T faulted (si_code %d)",
                 sh->segv_code);
    } else if (WEXITSTATUS(status) == EXIT_LOCKDOWN) {
        snprintf(buf, len, "ks_lockdown failed: %.100s", sh->ld_err);
    } else {
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    }
}

static void
run_attack(const struct attack *a, int on, struct run *r)
{
    r->status = run_child(attack_child, a, on);
    r->o = sh->o;
    r->hashed = sh->hashed;
    r->hash_same = sh->hashed && memcmp(sh->before, sh->after, 32) == 0;
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0 && r->o.success) {
        snprintf(r->text, sizeof(r->text), "%s%s", r->o.detail,
                 r->hashed && !r->hash_same ? "; T changed" : "");
    } else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0) {
        snprintf(r->text, sizeof(r->text), "%s: %s; T %s", r->o.step,
                 r->o.err ? strerrorname_np(r->o.err) : "no error",
                 r->hash_same ? "unchanged" : "CHANGED");
    } else {
        describe_end(r->status, r->text, sizeof(r->text));
    }
}

static void
add_row(const char *cls, const char *what, const char *off, const char *on)
{
    if (nrows < sizeof(table) / sizeof(table[0])) {
        table_cls[nrows] = cls;
        table_what[nrows] = what;
        snprintf(table[nrows][0], sizeof(table[0][0]), "%s", off);
        snprintf(table[nrows][1], sizeof(table[0][1]), "%s", on);
        nrows++;
    }
}

static void
attack_test(void **state)
{
    const struct attack *a = *state;
    struct run off, on;

    if (a->root && geteuid() != 0) {
        add_row(a->cls, a->what, "skipped: the control needs root", "-");
        skip();
    }
    run_attack(a, 0, &off);
    run_attack(a, 1, &on);
    add_row(a->cls, a->what, off.text, on.text);

    /* the positive control: without lockdown the attack works */
    assert_true(WIFEXITED(off.status));
    assert_int_equal(WEXITSTATUS(off.status), 0);
    assert_int_equal(off.o.success, 1);

    /* with lockdown: the expected signal, or errno and T unchanged */
    if (a->on_signal) {
        assert_true(WIFSIGNALED(on.status));
        assert_int_equal(WTERMSIG(on.status), a->on_signal);
    } else {
        assert_true(WIFEXITED(on.status));
        assert_int_equal(WEXITSTATUS(on.status), 0);
        assert_int_equal(on.o.success, 0);
        assert_int_equal(on.o.err, a->on_errno);
        assert_true(on.hashed);
        assert_true(on.hash_same);
    }
    if (a->check != NULL) {
        a->check(&off.o, &on.o);
    }
}

/* ---- attack-specific checks ----------------------------------------------- */

static void
check_seccomp(const struct lk_outcome *off, const struct lk_outcome *on)
{
    assert_int_equal(off->aux[0], 0);               /* prctl way worked */
    assert_int_equal(on->aux[0], EPERM);
}

static void
check_perf(const struct lk_outcome *off, const struct lk_outcome *on)
{
    (void) on;
    assert_true(off->aux[1] > 0);                   /* samples in T */
}

static void
check_io_uring(const struct lk_outcome *off, const struct lk_outcome *on)
{
    assert_true(off->aux[0] >= 0 && on->aux[0] >= 0);  /* earlier rings */
    assert_int_equal(off->aux[1], 0);               /* entered */
    assert_int_equal(on->aux[2], EPERM);            /* refused */
}

static void
check_fork(const struct lk_outcome *off, const struct lk_outcome *on)
{
    assert_int_equal(off->aux[0], 1);               /* threads in both */
    assert_int_equal(on->aux[0], 1);
    assert_int_equal(on->aux[1], ENOSYS);           /* clone3 */
}

static void
check_ptrace(const struct lk_outcome *off, const struct lk_outcome *on)
{
    assert_int_equal(off->aux[6], 1);               /* POKEDATA wrote T */
    assert_int_equal(on->aux[2], EPERM);            /* PR_SET_PTRACER */
}

/* an attack that lockdown must stop with an errno, or with SIGSYS */
#define ERR(cls, what, run, e)  { cls, what, NULL, run, 0, 0, e, 0, NULL }
#define SYS(cls, what, prep, run, flags) \
    { cls, what, prep, run, flags, 0, 0, SIGSYS, NULL }

static const struct attack attacks[] = {
    ERR("1", "/proc/self/mem read of T", lk_proc_mem_read, EACCES),
    ERR("1", "process_vm_readv(self) of T", lk_vm_readv, EPERM),
    ERR("1", "process_vm_writev(self) into T", lk_vm_writev, EPERM),
    ERR("2", "/proc/self/mem write into r-x code", lk_proc_mem_code, EACCES),
    ERR("3", "pkey_mprotect T page to key 0", lk_pkey_mprotect, EPERM),
    ERR("3", "mprotect T page PROT_EXEC, then RW", lk_mprotect_xonly, EPERM),
    ERR("3", "mremap T page away, map over it", lk_mremap, EPERM),
    ERR("3", "munmap T page, map over it", lk_munmap_remap, EPERM),
    ERR("3", "mmap MAP_FIXED over T page", lk_map_fixed, EPERM),
    ERR("3", "madvise(MADV_DONTNEED) on T page", lk_madvise, EPERM),
    ERR("3", "userfaultfd", lk_userfaultfd, EPERM),
    ERR("3", "gate page made writable, PKRU forged", lk_gate_page, EPERM),
    ERR("4", "mmap PROT_EXEC: code with WRPKRU", lk_mmap_exec, EPERM),
    ERR("4", "mprotect PROT_EXEC: code with WRPKRU", lk_mprotect_exec, EPERM),
    { "4", "code made writable (mprotect RW)", lk_code_prep, lk_code_rw, 0, 0,
      EPERM, 0, NULL },
    SYS("4", "int 0x80 mprotect PROT_EXEC", lk_int80_prep, lk_int80, 0),
    SYS("4", "x32 syscall", NULL, lk_x32, 0),
    SYS("5", "forged rt_sigreturn frame (PKRU 0)", NULL, lk_sigreturn,
        KS_LOCKDOWN_SIGNALS),
    { "8", "U installs its own seccomp filter", NULL, lk_seccomp, 0, 0,
      EPERM, 0, check_seccomp },
    /* root: this kernel's perf_event_paranoid (3) refuses anyone else */
    { "9", "perf_event_open sampling T's registers", NULL, lk_perf, 0, 1,
      EPERM, 0, check_perf },
    { "10", "io_uring setup and enter", lk_io_uring_prep, lk_io_uring, 0, 0,
      EPERM, 0, check_io_uring },
    { "11", "fork (threads still work)", NULL, lk_fork, 0, 0, EPERM, 0,
      check_fork },
    { "13", "ptrace from a child forked earlier", lk_ptrace_prep, lk_ptrace,
      0, 0, EPERM, 0, check_ptrace },
};

#define NATTACKS  (sizeof(attacks) / sizeof(attacks[0]))

/* ---- the policy, call by call ------------------------------------------- */

static void
policy_child(const void *arg, long mode)
{
    (void) arg;
    child_start(1);
    lk_policy_prep(&sh->policy);
    if (mode > 0) {
        child_lockdown(mode == 2 ? KS_LOCKDOWN_SIGNALS : 0);
    }
    lk_policy_run(&sh->policy);
}

static void
policy(void **state)
{
    struct lk_policy res[3];
    char why[200];
    int mode, st;
    unsigned i;

    (void) state;
    for (mode = 0; mode < 3; mode++) {
        st = run_child(policy_child, NULL, mode);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            describe_end(st, why, sizeof(why));
            fail_msg("policy child (mode %d): %s", mode, why);
        }
        res[mode] = sh->policy;
    }
    lk_policy_print(res);
    for (i = 0; i < res[0].n; i++) {
        for (mode = 0; mode < 3; mode++) {
            if (res[mode].err[i] != lk_policy_expected(i, mode)) {
                fail_msg("%s (mode %d): errno %d, expected %d",
                         lk_policy_name(i), mode, res[mode].err[i],
                         lk_policy_expected(i, mode));
            }
        }
    }
}

/* ---- refusals and the status --------------------------------------------- */

enum refusal { RF_NONE, RF_WX, RF_ALIAS, RF_READ_IMPLIES_EXEC, RF_FLAGS,
               RF_TWICE, RF_NO_ERR_BUFFER, RF_HANDLER, RF_HANDLER_NO_FLAG };

static void
on_usr1(int sig)
{
    (void) sig;
}

/* Set up what lockdown must refuse (nothing for RF_NONE), lock down;
 * rc and message in sh->ld_*, the status afterwards in sh->o. */
static void
refusal_child(const void *arg, long kind)
{
    unsigned flags = 0;
    int fd;

    (void) arg;
    child_start(0);
    switch (kind) {
    case RF_WX:
        mmap(NULL, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        break;
    case RF_ALIAS:
        fd = memfd_create("code", 0);
        if (fd < 0 || ftruncate(fd, PAGE) != 0
            || mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0)
               == MAP_FAILED
            || mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
               == MAP_FAILED)
        {
            _exit(EXIT_SETUP);
        }
        break;
    case RF_READ_IMPLIES_EXEC:
        personality(personality(0xffffffff) | READ_IMPLIES_EXEC);
        break;
    case RF_FLAGS:
        flags = 0x100;
        break;
    case RF_TWICE:
        child_lockdown(0);
        break;
    case RF_HANDLER:
        flags = KS_LOCKDOWN_SIGNALS;
        /* fall through */
    case RF_HANDLER_NO_FLAG:
        signal(SIGUSR1, on_usr1);           /* besides cmocka's and ours */
        break;
    default:
        break;
    }
    sh->ld_rc = kind == RF_NO_ERR_BUFFER ? ks_lockdown(0, NULL, 0)
                : ks_lockdown(flags, sh->ld_err, sizeof(sh->ld_err));
    sh->o.aux[0] = ks_lockdown_status(sh->o.detail, sizeof(sh->o.detail));
}

static int
run_refusal(enum refusal kind)
{
    int st = run_child(refusal_child, NULL, kind);

    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return sh->ld_rc;
}

/* Refused before anything changed: nothing sealed, still dumpable, no
 * filter. */
static void
assert_refused(enum refusal kind, const char *why)
{
    const unsigned changed = KS_LOCKDOWN_SEALED | KS_LOCKDOWN_NODUMP
                             | KS_LOCKDOWN_SECCOMP;

    assert_int_equal(run_refusal(kind), -1);
    print_message("refused: %s (status: %s)\n", sh->ld_err, sh->o.detail);
    if (why != NULL && strstr(sh->ld_err, why) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", sh->ld_err, why);
    }
    assert_int_equal(sh->o.aux[0] & changed, 0);
}

static void
refusals(void **state)
{
    (void) state;
    /* the control: the same child without the mapping locks down */
    assert_int_equal(run_refusal(RF_NONE), 0);
    assert_int_equal(sh->o.aux[0], KS_LOCKDOWN_ALL & ~KS_LOCKDOWN_SIGNALS);

    assert_refused(RF_WX, "is writable and executable");
    assert_refused(RF_ALIAS, "also mapped shared and writable");
    assert_refused(RF_READ_IMPLIES_EXEC, "READ_IMPLIES_EXEC");
    assert_refused(RF_FLAGS, "unknown lockdown flags");
    assert_refused(RF_NO_ERR_BUFFER, NULL);
    /* a handler: refused with KS_LOCKDOWN_SIGNALS, accepted without */
    assert_refused(RF_HANDLER, "has a handler");
    assert_int_equal(run_refusal(RF_HANDLER_NO_FLAG), 0);

    /* once per process: the second call is refused, the first stays */
    assert_int_equal(run_refusal(RF_TWICE), -1);
    assert_non_null(strstr(sh->ld_err, "already locked down"));
    assert_int_equal(sh->o.aux[0], KS_LOCKDOWN_ALL & ~KS_LOCKDOWN_SIGNALS);
}

/* What a worker does after lockdown still works: a digest, and a key
 * share (the DRBG's getrandom) through the gate.  1 if both did. */
static long
keystore_works(void)
{
    unsigned char md[32], pub[64];
    uint64_t h = 0;
    size_t publen = 0;
    struct ks_args_kex_keygen a = { KS_GROUP_X25519, &h, pub, sizeof(pub),
                                    &publen };

    return ks_selftest_sha256("abc", 3, md) == 0 && md[0] == 0xba
           && ks_gate_call(KS_OP_KEX_KEYGEN, &a) == 0 && publen == 32
           && free_handle(h) == 0;
}

static void
status_child(const void *arg, long n)
{
    (void) arg; (void) n;
    child_start(0);
    sh->o.aux[0] = ks_lockdown_status(sh->o.step, sizeof(sh->o.step));
    child_lockdown(KS_LOCKDOWN_SIGNALS);
    sh->o.aux[1] = ks_lockdown_status(sh->o.detail, sizeof(sh->o.detail));
    sh->o.aux[2] = keystore_works();
}

static void
status(void **state)
{
    int st;

    (void) state;
    st = run_child(status_child, NULL, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    print_message("status before: %s; after: %s\n", sh->o.step,
                  sh->o.detail);
    /* before: nothing of lockdown in force (this process has no W+X) */
    assert_int_equal(sh->o.aux[0], KS_LOCKDOWN_NO_WX);
    assert_string_equal(sh->o.step, "no-wx");
    assert_int_equal(sh->o.aux[1], KS_LOCKDOWN_ALL);
    assert_string_equal(sh->o.detail, "signals sealed no-wx nodump seccomp");
    assert_int_equal(sh->o.aux[2], 1);          /* and T still serves */
}

/* ---- the table, and main ---------------------------------------------- */

static int
print_table(void **state)
{
    unsigned i;

    (void) state;
    printf("# %-3s %-40s %-56s %s\n", "#", "attack (pku-attacks.md class)",
           "lockdown off (the control)", "lockdown on");
    for (i = 0; i < nrows; i++) {
        printf("# %-3s %-40s %-56s %s\n", table_cls[i], table_what[i],
               table[i][0], table[i][1]);
    }
    return 0;
}

int
main(void)
{
    static struct CMUnitTest tests[NATTACKS + 3];
    static char names[NATTACKS][80];
    unsigned i;

    for (i = 0; i < NATTACKS; i++) {
        snprintf(names[i], sizeof(names[i]), "class %s: %s", attacks[i].cls,
                 attacks[i].what);
        tests[i].name = names[i];
        tests[i].test_func = attack_test;
        tests[i].initial_state = (void *) &attacks[i];
    }
    tests[i].name = "policy";
    tests[i++].test_func = policy;
    tests[i].name = "refusals";
    tests[i++].test_func = refusals;
    tests[i].name = "status";
    tests[i++].test_func = status;
    return _cmocka_run_group_tests("ks_lockdown", tests, i, setup,
                                   print_table);
}
