/*
 * ks_signals: with KS_LOCKDOWN_SIGNALS, no signal handler may remain.
 * (U, at lockdown and for the status line)
 *
 * None could return (the filter ends the process at rt_sigreturn), and a
 * handler that never returns (longjmp) would still be handed the frame of
 * a fault inside T, T's registers included (pku-attacks.md #6): U can
 * make T fault on purpose with a pointer to unmapped U memory, which the
 * gate's range check cannot see.  glibc's own two handlers (SIGCANCEL,
 * and SIGSETXID, which the first pthread_create installs) cannot be
 * removed through sigaction(); lockdown puts them back to the default, so
 * afterwards pthread_cancel() and setuid() in a threaded process end it:
 * neither has a use in a locked-down worker.
 */

#ifndef KS_SIGNALS_H
#define KS_SIGNALS_H

#include <stddef.h>

/* 0 if no signal but glibc's two has a handler; else -1, err names one. */
int ks_signals_check(char *err, size_t errlen);

/* glibc's SIGCANCEL and SIGSETXID back to SIG_DFL: 0, or -1 and err. */
int ks_signals_reset_libc(char *err, size_t errlen);

/* 1 if no signal at all has a handler (/proc/self/status, SigCgt). */
int ks_signals_none_caught(void);

#endif /* KS_SIGNALS_H */
