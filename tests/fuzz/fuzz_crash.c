/*
 * Keep the input when the process dies inside T.  (the fuzzer's U side)
 *
 * A fault in T (T touching a byte beyond what it was given hits a guard
 * page) is delivered on the T stack unless the handler asks for an
 * alternate stack, and since Linux 6.12 the handler runs with the default
 * PKRU, which denies T: libFuzzer's own handlers (no SA_ONSTACK) then die
 * at their first push, and ASan's, on its alternate stack, dies while
 * unwinding T's stack for the report.  Either way libFuzzer never writes
 * its crash-* file.  So the harness handles the deadly signals itself, on
 * an alternate stack in U (run_fuzz.py passes -handle_segv=0 and the
 * like to libFuzzer): it writes the current input to
 * <artifact_prefix>crash-t-<hash> with async-signal-safe calls, says so,
 * and then lets ASan's handler (if any) report, or the default action end
 * the process.
 */

#define _GNU_SOURCE
#include "fuzz.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const uint8_t     *cur_data;
static size_t             cur_size;
static char               prefix[256] = "./";
static struct sigaction   old[32];
static unsigned char      altstack[1 << 16] __attribute__((aligned(16)));

/*
 * libFuzzer's own handlers for asynchronous signals (SIGALRM for its
 * -timeout, SIGINT, ...) have no SA_ONSTACK either: a SIGALRM that lands
 * while T runs is delivered on the T stack, and its handler, running
 * with the default PKRU, faults at its first push (class 6 of
 * pku-attacks.md; the first long run died of it).  They get the
 * alternate stack too, once libFuzzer has installed them.
 */
static void
async_handlers_onstack(void)
{
    static const int sigs[] = { SIGALRM, SIGINT, SIGTERM, SIGXFSZ, SIGUSR1,
                                SIGUSR2 };
    struct sigaction sa;
    unsigned i;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], NULL, &sa) == 0
            && (sa.sa_flags & SA_SIGINFO ? sa.sa_sigaction != NULL
                : sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN))
        {
            sa.sa_flags |= SA_ONSTACK;
            sigaction(sigs[i], &sa, NULL);
        }
    }
}

void
fz_crash_current(const uint8_t *data, size_t size)
{
    static int onstack;

    if (!onstack) {
        async_handlers_onstack();
        onstack = 1;
    }
    cur_data = data;
    cur_size = size;
}

static size_t
append(char *buf, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s);

    if (at + n >= cap) {
        n = cap - at - 1;
    }
    memcpy(buf + at, s, n);
    buf[at + n] = '\0';
    return at + n;
}

__attribute__((no_sanitize("address", "undefined")))
static void
on_deadly(int sig, siginfo_t *si, void *uc)
{
    char path[384], hex[17], msg[512], num[3];
    uint64_t h = 1469598103934665603ULL;    /* FNV-1a of the input */
    size_t i, n;
    int fd;

    for (i = 0; i < cur_size; i++) {
        h = (h ^ cur_data[i]) * 1099511628211ULL;
    }
    for (i = 0; i < 16; i++) {
        hex[i] = "0123456789abcdef"[(h >> (60 - 4 * i)) & 15];
    }
    hex[16] = '\0';
    n = append(path, 0, sizeof(path), prefix);
    n = append(path, n, sizeof(path), "crash-t-");
    append(path, n, sizeof(path), hex);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (cur_size > 0 && write(fd, cur_data, cur_size) < 0) {
            /* nothing more a dying handler can do */
        }
        close(fd);
    }
    num[0] = (char) ('0' + sig / 10 % 10);
    num[1] = (char) ('0' + sig % 10);
    num[2] = '\0';
    n = append(msg, 0, sizeof(msg), "\nfuzz: deadly signal ");
    n = append(msg, n, sizeof(msg), num);
    n = append(msg, n, sizeof(msg), "; the input is in ");
    n = append(msg, n, sizeof(msg), path);
    n = append(msg, n, sizeof(msg), "\n");
    if (write(2, msg, n) < 0) {
        /* as above */
    }
    if (sig < 32 && (old[sig].sa_flags & SA_SIGINFO)
        && old[sig].sa_sigaction != NULL)
    {
        old[sig].sa_sigaction(sig, si, uc);     /* ASan's report */
    }
    signal(sig, SIG_DFL);                   /* then the default end */
    if (sig == SIGABRT) {
        raise(sig);
    }
}

void
fz_crash_init(int argc, char **argv)
{
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
    struct sigaction sa;
    stack_t ss, cur;
    unsigned i;
    int k;

    for (k = 1; k < argc; k++) {
        if (strncmp(argv[k], "-artifact_prefix=", 17) == 0) {
            snprintf(prefix, sizeof(prefix), "%s", argv[k] + 17);
        }
    }
    if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
        ss.ss_sp = altstack;
        ss.ss_size = sizeof(altstack);
        ss.ss_flags = 0;
        sigaltstack(&ss, NULL);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_deadly;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, &old[sigs[i]]);
    }
}
