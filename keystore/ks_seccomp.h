/*
 * ks_seccomp: load the worker's syscall filter and ask whether it is in
 * force.  (U, at lockdown and for the status line)
 *
 * The two programs (with and without the signal rules) are made at build
 * time by ks_seccomp_gen.c, with libseccomp, from the policy written there;
 * here they are constants.  Loading sets NO_NEW_PRIVS (the kernel requires
 * it of an unprivileged caller, and it keeps execve from gaining
 * privileges) and uses SECCOMP_FILTER_FLAG_TSYNC, libseccomp's
 * SCMP_FLTATR_CTL_TSYNC: every thread of the process gets the filter at
 * once (NGINX's thread pools exist before the worker's lockdown), or none
 * does and the load fails.
 */

#ifndef KS_SECCOMP_H
#define KS_SECCOMP_H

#include <stddef.h>

/* Load the filter (signals: with the rt_sigreturn/rt_sigaction/
 * sigaltstack rules) for every thread: 0, or -1 with the reason in err. */
int ks_seccomp_load(int signals, char *err, size_t errlen);

/* 1 if the calling thread is under a filter that denies what ours denies
 * (NO_NEW_PRIVS set, process_vm_readv refused with EPERM), else 0.  The
 * probe calls are harmless where they are allowed. */
int ks_seccomp_active(void);

/* 1 if sigaltstack (a query) is refused with EPERM: the signal rules are
 * in force.  Never touches rt_sigreturn. */
int ks_seccomp_signals_active(void);

#endif /* KS_SECCOMP_H */
