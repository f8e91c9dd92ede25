/* ks_seccomp: load and probe the worker's filter.  See ks_seccomp.h. */

#define _GNU_SOURCE
#include "ks_seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ks_filter_base[], ks_filter_signals[]: made by ks_seccomp_gen */
#include "ks_seccomp_filter.h"

#define COUNT(a)  (sizeof(a) / sizeof((a)[0]))

int
ks_seccomp_load(int signals, char *err, size_t errlen)
{
    struct sock_fprog prog;
    long rc;

    /* read-only data of the library: the kernel copies it */
    prog.filter = (struct sock_filter *) (signals ? ks_filter_signals
                                                  : ks_filter_base);
    prog.len = (unsigned short) (signals ? COUNT(ks_filter_signals)
                                         : COUNT(ks_filter_base));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s",
                 strerror(errno));
        return -1;
    }
    rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                 SECCOMP_FILTER_FLAG_TSYNC, &prog);
    if (rc > 0) {
        /* TSYNC: that thread cannot take it (it has an unrelated
         * filter); no thread got it */
        snprintf(err, errlen, "seccomp: thread %ld cannot take the filter",
                 rc);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): %s",
                 strerror(errno));
        return -1;
    }
    return 0;
}

int
ks_seccomp_active(void)
{
    long rc;

    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1
        || prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER)
    {
        return 0;
    }
    /* no iovec: reads nothing where it is allowed */
    rc = syscall(SYS_process_vm_readv, getpid(), NULL, 0UL, NULL, 0UL, 0UL);
    return rc == -1 && errno == EPERM;
}

int
ks_seccomp_signals_active(void)
{
    stack_t old;

    return sigaltstack(NULL, &old) == -1 && errno == EPERM;
}
