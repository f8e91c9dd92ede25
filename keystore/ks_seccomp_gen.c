/*
 * ks_seccomp_gen: the worker's syscall policy, built with libseccomp at
 * build time.  (a build tool; never part of libkeystore.so)
 *
 *     ks_seccomp_gen OUT.h OUT.pfc
 *
 * writes the two seccomp-bpf programs of ks_lockdown() (without and with
 * KS_LOCKDOWN_SIGNALS) as C arrays to OUT.h, and libseccomp's readable
 * listing of them to OUT.pfc.
 *
 * Why at build time and not in the library: libkeystore.so tags its own
 * .data/.bss with T's key (ks_domain.c), so libseccomp linked into it
 * statically would keep its state in T memory and fault when lockdown
 * runs in U; linked dynamically, the library would import something
 * besides glibc (tests/unit/check_exports.sh).  A program made here is a
 * constant in the library's read-only data, sealed at lockdown, and the
 * worker runs no libseccomp code and no allocator to load it.
 *
 * The policy (DESIGN.md, "Lockdown and syscall policy"): allow by
 * default, x86-64 only, deny what lets the kernel act as a deputy on T.
 * Where a rule tests an argument the kernel reads as an int (prctl's
 * option), only the low 32 bits are compared, or 1 << 32 | PR_SET_SECCOMP
 * would pass the filter and still reach PR_SET_SECCOMP.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <unistd.h>

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH  59
#endif

#define LOW32  0xffffffffULL
#define EPERM_  SCMP_ACT_ERRNO(EPERM)

struct rule {
    const char           *name;             /* the syscall */
    uint32_t              action;
    unsigned              ncmp;             /* all must hold */
    struct scmp_arg_cmp   cmp[2];
};

/* a call refused outright, or when one argument test holds (two: both) */
#define DENY(name)            { name, EPERM_, 0, { { 0 } } }
#define DENY_IF(name, a)      { name, EPERM_, 1, { a } }
#define DENY_IF2(name, a, b)  { name, EPERM_, 2, { a, b } }
#define PROT_EXEC_IN(arg)     SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, PROT_EXEC, \
                                         PROT_EXEC)
#define PRCTL_OPTION(opt)     SCMP_A0_64(SCMP_CMP_MASKED_EQ, LOW32, opt)

/*
 * EPERM for everything a library could try in good faith (dlopen maps
 * code, posix_spawn clones): the call fails and the caller's error path
 * runs; nothing is gained by retrying.  clone3 gets ENOSYS, the answer
 * glibc takes as "use clone instead", so pthread_create still works and
 * clone's flags can be checked (clone3's are behind a pointer).
 */
static const struct rule base_rules[] = {
    /* the kernel reading or writing T for U (pku-attacks.md #1, #2, #13) */
    DENY("process_vm_readv"),
    DENY("process_vm_writev"),
    DENY("ptrace"),
    DENY("pidfd_getfd"),
    DENY("process_madvise"),
    /* T's registers sampled, T's buffers through rings (#9, #10) */
    DENY("perf_event_open"),
    DENY("io_uring_setup"),
    DENY("io_uring_enter"),
    DENY("io_uring_register"),
    /* pages re-tagged or supplied behind T's back (#3) */
    DENY("userfaultfd"),
    DENY("pkey_alloc"),
    DENY("pkey_free"),
    DENY("pkey_mprotect"),
    /* new code, which could hold a WRPKRU the inspector never saw (#4) */
    DENY_IF("mmap", PROT_EXEC_IN(2)),
    DENY_IF("mprotect", PROT_EXEC_IN(2)),
    DENY_IF("shmat", SCMP_A2_64(SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)),
    /* READ_IMPLIES_EXEC would make every PROT_READ mapping executable
     * without PROT_EXEC in the argument: only the query is allowed */
    DENY_IF("personality", SCMP_A0_64(SCMP_CMP_NE, LOW32)),
    /* U's own filter could make T's syscalls fail silently (#8) */
    DENY("seccomp"),
    DENY_IF("prctl", PRCTL_OPTION(PR_SET_SECCOMP)),
    DENY_IF("prctl", PRCTL_OPTION(PR_SET_PTRACER)),
    DENY_IF("prctl", PRCTL_OPTION(PR_SET_SYSCALL_USER_DISPATCH)),
    DENY_IF("prctl", PRCTL_OPTION(PR_SET_MM)),
    DENY_IF2("prctl", PRCTL_OPTION(PR_SET_DUMPABLE),
             SCMP_A1_64(SCMP_CMP_NE, 0)),
    /* other processes: a new image, or a child with T's pages (#13) */
    DENY("execve"),
    DENY("execveat"),
    DENY("fork"),
    DENY("vfork"),
    DENY_IF("clone", SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)),
    { "clone3", SCMP_ACT_ERRNO(ENOSYS), 0, { { 0 } } },
};

/*
 * With KS_LOCKDOWN_SIGNALS (once the worker takes its signals from a
 * signalfd): no handler runs, so nothing returns through a signal frame,
 * and a frame U forged (PKRU = 0 in its XSAVE area, #5) must never be
 * loaded.  rt_sigreturn has no error path (the restorer would run on
 * into whatever follows it), so it ends the process.
 */
static const struct rule signal_rules[] = {
    { "rt_sigreturn", SCMP_ACT_KILL_PROCESS, 0, { { 0 } } },
    DENY("rt_sigaction"),
    DENY("sigaltstack"),
};

static void
die(const char *what, int rc)
{
    fprintf(stderr, "ks_seccomp_gen: %s: %s\n", what, strerror(-rc));
    exit(1);
}

static void
add_rules(scmp_filter_ctx ctx, const struct rule *r, size_t n)
{
    size_t i;
    int nr, rc;

    for (i = 0; i < n; i++) {
        nr = seccomp_syscall_resolve_name(r[i].name);
        if (nr == __NR_SCMP_ERROR) {        /* fail the build, never skip */
            fprintf(stderr, "ks_seccomp_gen: unknown syscall %s\n", r[i].name);
            exit(1);
        }
        rc = seccomp_rule_add_exact_array(ctx, r[i].action, nr, r[i].ncmp,
                                          r[i].cmp);
        if (rc != 0) {
            die(r[i].name, rc);
        }
    }
}

/* One program: its instructions as a C array, its listing to pfc. */
static void
emit(FILE *h, FILE *pfc, const char *name, int signals)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    FILE *bpf = tmpfile();
    unsigned char ins[8];
    unsigned n = 0;
    int rc;

    if (ctx == NULL || bpf == NULL) {
        die("seccomp_init/tmpfile", -ENOMEM);
    }
    /* Only the native ABI: x86-64 (SCMP_ARCH_NATIVE, nothing added).
     * libseccomp sends a call with another AUDIT_ARCH (int 0x80, i386)
     * and an x86-64 call with the x32 bit (nr >= 0x40000000) to the
     * bad-arch action: never a legitimate call from this process, so it
     * ends the process. */
    if (seccomp_arch_native() != SCMP_ARCH_X86_64) {
        die("the build machine is not x86-64", -EINVAL);
    }
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                          SCMP_ACT_KILL_PROCESS);
    if (rc != 0) {
        die("SCMP_FLTATR_ACT_BADARCH", rc);
    }
    add_rules(ctx, base_rules, sizeof(base_rules) / sizeof(base_rules[0]));
    if (signals) {
        add_rules(ctx, signal_rules,
                  sizeof(signal_rules) / sizeof(signal_rules[0]));
    }
    fprintf(pfc, "# ---- %s ----\n", name);
    fflush(pfc);
    if ((rc = seccomp_export_pfc(ctx, fileno(pfc))) != 0
        || (rc = seccomp_export_bpf(ctx, fileno(bpf))) != 0)
    {
        die("export", rc);
    }
    rewind(bpf);
    fprintf(h, "static const struct sock_filter %s[] = {\n", name);
    while (fread(ins, 1, sizeof(ins), bpf) == sizeof(ins)) {
        /* struct sock_filter: u16 code, u8 jt, u8 jf, u32 k (host order) */
        unsigned code = ins[0] | ins[1] << 8;
        unsigned long k = ins[4] | ins[5] << 8 | ins[6] << 16
                          | (unsigned long) ins[7] << 24;

        fprintf(h, "    { 0x%04x, %3u, %3u, 0x%08lx },\n", code, ins[2], ins[3],
                k);
        n++;
    }
    fprintf(h, "};\n\n");
    if (n == 0) {
        die("empty program", -EINVAL);
    }
    fclose(bpf);
    seccomp_release(ctx);
}

int
main(int argc, char **argv)
{
    FILE *h, *pfc;

    if (argc != 3) {
        fprintf(stderr, "usage: ks_seccomp_gen OUT.h OUT.pfc\n");
        return 2;
    }
    h = fopen(argv[1], "w");
    pfc = fopen(argv[2], "w");
    if (h == NULL || pfc == NULL) {
        perror("ks_seccomp_gen");
        return 1;
    }
    fprintf(h, "/* Generated by ks_seccomp_gen (keystore/ks_seccomp_gen.c) "
               "with libseccomp %u.%u.%u: do not edit. */\n\n",
            seccomp_version()->major, seccomp_version()->minor,
            seccomp_version()->micro);
    emit(h, pfc, "ks_filter_base", 0);
    emit(h, pfc, "ks_filter_signals", 1);
    if (fclose(h) != 0 || fclose(pfc) != 0) {
        perror("ks_seccomp_gen");
        return 1;
    }
    return 0;
}
