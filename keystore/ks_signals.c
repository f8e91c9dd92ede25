/* ks_signals: no handler under KS_LOCKDOWN_SIGNALS.  See ks_signals.h. */

#define _GNU_SOURCE
#include "ks_signals.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The signals that have a handler (/proc/self/status, SigCgt): a mask
 * with bit n-1 for signal n; ~0 if it cannot be read (fail closed). */
static unsigned long long
caught_signals(void)
{
    unsigned long long mask = ~0ULL;
    char line[128];
    FILE *f = fopen("/proc/self/status", "re");

    if (f == NULL) {
        return mask;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "SigCgt: %llx", &mask) == 1) {
            break;
        }
    }
    fclose(f);
    return mask;
}

/* glibc's internal signals, SIGRTMIN-2 and SIGRTMIN-1 as glibc counts */
#define LIBC_SIGNALS  (1ULL << (32 - 1) | 1ULL << (33 - 1))

/* struct sigaction as the kernel reads it (x86-64) */
struct k_sigaction {
    void           (*handler)(int);
    unsigned long    flags;
    void           (*restorer)(void);
    unsigned long    mask;
};

int
ks_signals_reset_libc(char *err, size_t errlen)
{
    struct k_sigaction dfl = { SIG_DFL, 0, NULL, 0 };
    int sig;

    for (sig = 32; sig <= 33; sig++) {
        if (syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask))
            != 0)
        {
            snprintf(err, errlen, "rt_sigaction(%d, SIG_DFL): %s", sig,
                     strerror(errno));
            return -1;
        }
    }
    return 0;
}

int
ks_signals_check(char *err, size_t errlen)
{
    unsigned long long mask = caught_signals();

    if (mask == ~0ULL) {
        snprintf(err, errlen, "cannot read SigCgt from /proc/self/status");
        return -1;
    }
    mask &= ~LIBC_SIGNALS;
    if (mask != 0) {
        snprintf(err, errlen, "signal %d has a handler (SigCgt %#llx): with "
                 "KS_LOCKDOWN_SIGNALS none may remain",
                 __builtin_ctzll(mask) + 1, mask);
        return -1;
    }
    return 0;
}

int
ks_signals_none_caught(void)
{
    return caught_signals() == 0;
}
