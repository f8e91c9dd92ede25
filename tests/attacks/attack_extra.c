/*
 * The attacks that only make sense in a whole worker (see attack.h):
 * a signal that lands while T runs (class 6) and a thread started with
 * T's PKRU from its frame (class 11), T's internals called without the
 * gate (7), a denied syscall from the instruction T itself uses (12), a
 * WRPKRU hidden inside an instruction (the inspector's business), and the
 * gate's own checks: pointers into T, forged handles, forged tokens.
 */

#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "../../keystore/ks_range.h"
#include "attack.h"
#include "../../keystore/ks_pkru.h"

#define STACK  65536

/* PKRU with T's key open for access (its AD and WD bits clear). */
static int
t_open(uint32_t pkru)
{
    return (pkru & (3u << (2 * at->pkey))) == 0;
}

/* ---- 6 and 11: a signal in T, and a thread with T's PKRU ------------------ */

static struct {
    int                   thread;           /* at_thread_in_t */
    volatile int          caught;
    uint32_t              pkru_off;         /* of PKRU in the XSAVE area */
    struct lk_outcome    *o;
    const struct lk_ctx  *c;
} sig;

static unsigned char  alt_stack[STACK] __attribute__((aligned(16)));
static unsigned char  resume_stack[STACK] __attribute__((aligned(16)));

static void *
thread_reads_canary(void *arg)
{
    struct lk_outcome *o = arg;

    o->aux[7] = 3;
    o->aux[2] = ks_rdpkru();
    o->success = lk_u_reads_canary(sig.c, o);   /* faults if T is closed */
    return NULL;
}

/* Where the edited frame resumes: U's code, on U's stack, with the PKRU
 * that T had when the signal came.  It starts a thread, which inherits
 * this PKRU, and ends the worker (there is no T call to go back to). */
static void __attribute__((noreturn))
resume_with_t_pkru(void)
{
    pthread_t t;

    sig.o->aux[1] = ks_rdpkru();
    sig.o->aux[7] = 1;
    if (pthread_create(&t, NULL, thread_reads_canary, sig.o) == 0) {
        sig.o->aux[7] = sig.o->aux[7] == 3 ? 4 : 2;
        pthread_join(t, NULL);
        sig.o->aux[7] += 10;
    }
    snprintf(sig.o->detail, sizeof(sig.o->detail),
             "a thread started with T's PKRU %#lx read T's canary",
             sig.o->aux[2]);
    at->state = 2;
    _exit(0);
}

static void
on_prof(int signo, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    const unsigned char *fx = (const unsigned char *) uc->uc_mcontext.fpregs;
    greg_t *r = uc->uc_mcontext.gregs;
    uint64_t bv;
    uint32_t pkru, magic;

    (void) signo; (void) si;
    memcpy(&magic, fx + 464, 4);
    memcpy(&bv, fx + 512, 8);
    if (sig.caught || magic != FP_XSTATE_MAGIC1 || !(bv & (1u << 9))) {
        return;
    }
    memcpy(&pkru, fx + sig.pkru_off, 4);
    if (!t_open(pkru)) {
        return;                             /* not in T this time */
    }
    sig.caught = 1;
    sig.o->aux[0] = pkru;
    sig.o->aux[3] = r[REG_RIP];
    sig.o->aux[4] = r[REG_R12];
    sig.o->aux[5] = (uintptr_t) r[REG_RIP] >= sig.c->ks_text_start
                    && (uintptr_t) r[REG_RIP] < sig.c->ks_text_end;
    if (sig.thread) {
        r[REG_RIP] = (greg_t) (uintptr_t) resume_with_t_pkru;
        r[REG_RSP] = (greg_t) (uintptr_t) (resume_stack + STACK - 8);
    }
}

/* Keep T busy (SHA-256 of 1 MiB in the private libcrypto, over and over)
 * with a CPU-time timer running, until a SIGPROF lands inside T. */
static void
signal_in_t(const struct lk_ctx *c, struct lk_outcome *o, int thread)
{
    static unsigned char buf[1 << 20];
    struct itimerval it = { { 0, 500 }, { 0, 500 } };
    stack_t ss = { alt_stack, 0, STACK };
    struct sigaction sa;
    unsigned char md[32];
    sigset_t set;
    unsigned a, b, cx, d;
    long rc;
    int i;

    sig.thread = thread;
    sig.o = o;
    sig.c = c;
    __cpuid_count(0xd, 9, a, b, cx, d);
    sig.pkru_off = b;
    rc = sigaltstack(&ss, NULL);
    lk_record(o, "sigaltstack", rc);
    if (rc != 0) {
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    rc = sigaction(SIGPROF, &sa, NULL);
    lk_record(o, "rt_sigaction(SIGPROF)", rc);
    if (rc != 0) {
        return;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGPROF);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    setitimer(ITIMER_PROF, &it, NULL);
    for (i = 0; i < 2000 && !sig.caught; i++) {
        ks_selftest_sha256(buf, sizeof(buf), md);
    }
    memset(&it, 0, sizeof(it));
    setitimer(ITIMER_PROF, &it, NULL);
    lk_record(o, "a SIGPROF in T", sig.caught ? 0 : -1);
    o->success = sig.caught && o->aux[5];
    snprintf(o->detail, sizeof(o->detail),
             "T's frame on U's stack: PKRU %#lx, RIP in T, r12 %#lx",
             o->aux[0], o->aux[4]);
}

void
at_signal_in_t(const struct lk_ctx *c, struct lk_outcome *o)
{
    signal_in_t(c, o, 0);
}

void
at_thread_in_t(const struct lk_ctx *c, struct lk_outcome *o)
{
    signal_in_t(c, o, 1);
    o->success = 0;                         /* only the thread's read counts */
    snprintf(o->detail, sizeof(o->detail), "no thread with T's PKRU");
}

/* ---- 7: T's internals without the gate ---------------------------------- */

/* ks_dispatch is hidden; an attacker finds it in the file's symbol table,
 * as the test does (at_dispatch_offset: its offset from ks_gate_call). */
void
at_t_internal(const struct lk_ctx *c, struct lk_outcome *o)
{
    long (*dispatch)(unsigned, void *);
    struct ks_stats_out st;
    struct ks_args_stats a = { &st };

    (void) c;
    if (at_dispatch_offset == 0) {
        lk_record(o, "find ks_dispatch", -1);
        return;
    }
    dispatch = (long (*)(unsigned, void *))
               ((uintptr_t) ks_gate_call + at_dispatch_offset);
    o->aux[6] = ks_gate_call(KS_OP_STATS, &a);  /* control: the gate */
    lk_record(o, "ks_dispatch(KS_OP_STATS) called from U", 0);
    o->rc = dispatch(KS_OP_STATS, &a);      /* T's data: faults from U */
    o->success = o->rc == 0;
    snprintf(o->detail, sizeof(o->detail),
             "T's dispatcher ran from U: %lu crossings",
             (unsigned long) st.gate_crossings);
}

/* ---- 12: the instruction pointer is no credential ------------------------ */

/* libkeystore makes its syscalls through libc's syscall() (T's getrandom,
 * its file reads): the same instruction, issued by U for a denied call. */
void
at_ip_syscall(const struct lk_ctx *c, struct lk_outcome *o)
{
    unsigned char buf[LK_CANARY_LEN];
    struct iovec l = { buf, sizeof(buf) };
    struct iovec r = { (void *) c->canary, sizeof(buf) };
    long n = syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0);

    lk_record(o, "process_vm_readv via T's syscall()", n);
    o->success = n == sizeof(buf) && memcmp(buf, c->canary_bytes, n) == 0;
    snprintf(o->detail, sizeof(o->detail), "read T's canary");
}

/* ---- an unsafe WRPKRU site ---------------------------------------------- */

/*
 * movabs $imm, %rax whose immediate holds 0f 01 ef c3: from its 4th byte
 * on, "wrpkru; ret".  The worker's inspector finds it at that offset and
 * rewrites the instruction (inspect/), so the site is gone by the first
 * request; before inspection it is a working gadget (the control).
 */
__asm__(".text\n"
        ".globl at_hidden_wrpkru\n"
        ".type at_hidden_wrpkru, @function\n"
        "at_hidden_wrpkru:\n"
        "    movabs $0xccccccc3ef010f90, %rax\n"
        "    ret\n"
        ".size at_hidden_wrpkru, .-at_hidden_wrpkru\n");

void at_hidden_wrpkru(void);

static void
gadget(uint32_t pkru)
{
    void *g = (unsigned char *) (uintptr_t) at_hidden_wrpkru + 3;

    __asm__ volatile ("call *%0" : : "r" (g), "a" (pkru), "c" (0), "d" (0)
                      : "memory", "cc");
}

void
at_unsafe_site_control(struct lk_outcome *o)
{
    const unsigned char *heap = (const unsigned char *) at->t_start[0];
    uint32_t old = ks_rdpkru();
    unsigned i;

    lk_record(o, "jump to the hidden WRPKRU, before inspection", 0);
    gadget(0);
    o->aux[0] = ks_rdpkru();
    for (i = 0; i < 4096 - 32 && heap[i] == 0; i++) {
    }
    o->aux[1] = (long) (uintptr_t) (heap + i);
    memcpy(&o->aux[2], heap + i, 32);       /* checked from outside */
    gadget(old);
    o->success = 1;
    snprintf(o->detail, sizeof(o->detail),
             "the site opened T (PKRU %#lx): read T's heap", o->aux[0]);
}

void
at_unsafe_site(const struct lk_ctx *c, struct lk_outcome *o)
{
    lk_record(o, "jump to the hidden WRPKRU, after inspection", 0);
    gadget(0);
    o->aux[0] = ks_rdpkru();
    o->success = lk_u_reads_canary(c, o);   /* faults if T stayed closed */
}

/* ---- the gate's checks -------------------------------------------------- */

/* T's results here: >= 0 means T did what U asked. */
static int
t_did(long rc)
{
    return rc >= 0;
}

void
at_gate_t_pointers(const struct lk_ctx *c, struct lk_outcome *o)
{
    static unsigned char u_in[32];
    unsigned char md[32];
    struct ks_stats_out st;
    struct ks_args_digest d = { u_in, sizeof(u_in), md };
    struct ks_args_stats s = { &st };
    struct ks_range_out r[KS_RANGE_MAX];
    uint32_t n;
    struct ks_args_ranges ra = { r, &n };

    /* control: the same calls with U's pointers */
    o->aux[0] = ks_gate_call(KS_OP_SELFTEST_SHA256, &d);
    /* T's canary as input: its digest would be an oracle */
    d.in = (const void *) c->canary;
    o->aux[1] = ks_gate_call(KS_OP_SELFTEST_SHA256, &d);
    /* outputs into T: the stats, the ranges, over the canary */
    s.out = (struct ks_stats_out *) c->canary;
    o->aux[2] = ks_gate_call(KS_OP_STATS, &s);
    ra.out = (struct ks_range_out *) c->canary_page;
    o->aux[3] = ks_gate_call(KS_OP_RANGES, &ra);
    /* the argument block itself in T; then one that ends in T's guard */
    o->aux[4] = ks_gate_call(KS_OP_STATS, (void *) c->canary);
    d.in = (const void *) (uintptr_t) (at->t_start[0] - 16);
    o->aux[5] = ks_gate_call(KS_OP_SELFTEST_SHA256, &d);
    lk_record(o, "gate calls with pointers into T", 0);
    o->rc = o->aux[1];
    o->success = t_did(o->aux[1]) || t_did(o->aux[2]) || t_did(o->aux[3])
                 || t_did(o->aux[4]) || t_did(o->aux[5]);
    snprintf(o->detail, sizeof(o->detail),
             "T used pointers into T (control with U's: %ld)", o->aux[0]);
}

/* An X25519 key in T, its public key, and a SECRET token from it. */
static long
kex(uint64_t *h, unsigned char pub[32], unsigned char secret[32])
{
    size_t publen = 0;
    struct ks_args_kex_keygen g = { KS_GROUP_X25519, h, pub, 32, &publen };
    struct ks_args_kex_derive dv = { 0, pub, 32, secret, 32 };
    long rc = ks_gate_call(KS_OP_KEX_KEYGEN, &g);

    if (rc < 0) {
        return rc;
    }
    dv.handle = *h;
    return ks_gate_call(KS_OP_KEX_DERIVE, &dv);
}

static long
derive(uint64_t h, const unsigned char pub[32])
{
    unsigned char secret[32];
    struct ks_args_kex_derive dv = { h, pub, 32, secret, 32 };

    return ks_gate_call(KS_OP_KEX_DERIVE, &dv);
}

void
at_forged_handles(const struct lk_ctx *c, struct lk_outcome *o)
{
    unsigned char pub[32], secret[32], nonce[12] = { 0 }, in[16] = { 0 };
    unsigned char out[16], tag[16];
    uint64_t h = 0;
    struct ks_args_aead_record rec = { 0, nonce, NULL, 0, in, sizeof(in),
                                       out, tag };
    struct ks_args_free f;

    (void) c;
    o->aux[0] = kex(&h, pub, secret);       /* control: the real handle */
    o->aux[1] = derive(h ^ 1, pub);         /* another slot */
    o->aux[2] = derive(h ^ (1ULL << 40), pub);  /* another generation */
    o->aux[3] = derive(0x4141414141414141ULL, pub);
    rec.handle = h;                         /* a key share as a cipher */
    o->aux[4] = ks_gate_call(KS_OP_AEAD_RECORD, &rec);
    f.handle = h;
    ks_gate_call(KS_OP_FREE, &f);
    o->aux[5] = derive(h, pub);             /* after its end */
    lk_record(o, "forged, confused and stale handles", 0);
    o->rc = o->aux[1];
    o->success = t_did(o->aux[1]) || t_did(o->aux[2]) || t_did(o->aux[3])
                 || t_did(o->aux[4]) || t_did(o->aux[5]);
    snprintf(o->detail, sizeof(o->detail),
             "T used a forged handle (control with the real one: %ld)",
             o->aux[0]);
}

/* A KDF over a SECRET token asking for clear output: rc, and whether the
 * output buffer changed. */
static long
kdf_clear(const unsigned char *token, const char *label, uint32_t mode,
          uint32_t kdf, size_t outlen, int *wrote)
{
    unsigned char out[64];
    struct ks_args_kdf k;
    long rc;

    memset(&k, 0, sizeof(k));
    memset(out, 0xee, sizeof(out));
    k.kdf = kdf;
    k.md = KS_MD_SHA256;
    k.mode = mode;
    k.key_is_token = 1;
    k.out_class = KS_OUT_CLEAR;
    k.key = token;
    k.keylen = 32;
    k.label = (const unsigned char *) label;
    k.labellen = strlen(label);
    k.out = out;
    k.outlen = outlen;
    rc = ks_gate_call(KS_OP_KDF, &k);
    *wrote = out[0] != 0xee || out[1] != 0xee;
    return rc;
}

void
at_forged_tokens(const struct lk_ctx *c, struct lk_outcome *o)
{
    unsigned char pub[32], secret[32];
    uint64_t h = 0;
    struct ks_args_free f;
    int w[5] = { 0 }, i;

    (void) c;
    if (kex(&h, pub, secret) < 0) {
        lk_record(o, "make a SECRET token", -1);
        return;
    }
    f.handle = h;
    ks_gate_call(KS_OP_FREE, &f);
    /* control: what may leave T in clear does (a TLS 1.3 "iv") */
    o->aux[0] = kdf_clear(secret, "iv", KS_KDF_EXPAND_ONLY, KS_KDF_TLS13, 12,
                          &w[0]);
    /* the secret's expansions in clear: a traffic secret, a key */
    o->aux[1] = kdf_clear(secret, "s ap traffic", KS_KDF_EXPAND_ONLY,
                          KS_KDF_TLS13, 32, &w[1]);
    o->aux[2] = kdf_clear(secret, "key", KS_KDF_EXPAND_ONLY, KS_KDF_TLS13,
                          16, &w[2]);
    o->aux[3] = kdf_clear(secret, "", KS_KDF_EXTRACT_ONLY, KS_KDF_HKDF, 32,
                          &w[3]);
    secret[0] ^= 1;                         /* a forged token */
    o->aux[4] = kdf_clear(secret, "s ap traffic", KS_KDF_EXPAND_ONLY,
                          KS_KDF_TLS13, 32, &w[4]);
    lk_record(o, "clear output from SECRET tokens", 0);
    o->rc = o->aux[1];
    o->aux[5] = w[0];
    for (i = 1; i < 5; i++) {
        o->success |= t_did(o->aux[i]) || w[i];
    }
    snprintf(o->detail, sizeof(o->detail),
             "a secret left T in clear (control, an IV: %ld)", o->aux[0]);
}

/* ---- signals while a worker starts ----------------------------------------
 * NGINX unblocks every signal as a worker starts, and timer_resolution's
 * SIGALRM comes each millisecond from then on.  A handler that runs while
 * T does gets its frame on T's stack, with U's PKRU: the worker dies when
 * the handler returns.  So the module moves the signals to a signalfd
 * before the worker's first gate call.  Here that first call is repeated
 * for 2 s: as shipped, SIGALRM stays pending for the signalfd; in the
 * control a handler is installed and SIGALRM unblocked (the order before
 * commit e2387e2), and the worker must die. */

static volatile sig_atomic_t  alarms;

static void
count_alarm(int signo)
{
    (void) signo;
    alarms++;
}

void
at_signals_at_start(int (*stats)(struct ks_stats *), int control,
                    struct lk_outcome *o)
{
    struct ks_stats st;
    struct sigaction sa;
    struct timespec t0, now;
    sigset_t set, mask, pending;
    long calls = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = count_alarm;
    sigemptyset(&sa.sa_mask);
    if (control) {
        lk_record(o, "sigaction(SIGALRM), unblocked", sigaction(SIGALRM, &sa,
                  NULL) == 0 ? sigprocmask(SIG_UNBLOCK, &set, NULL) : -1);
    }
    sigprocmask(SIG_BLOCK, NULL, &mask);
    o->aux[0] = sigismember(&mask, SIGALRM);    /* blocked while T runs */
    o->aux[4] = 1;                              /* the loop started */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (stats(&st) != 0) {
            break;
        }
        calls++;
        o->aux[1] = calls;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < 2);
    sigpending(&pending);
    o->aux[2] = sigismember(&pending, SIGALRM); /* generated meanwhile */
    o->aux[3] = alarms;                         /* handler runs */
    o->aux[5] = 1;                              /* the worker lived on */
    snprintf(o->detail, sizeof(o->detail), "%ld gate calls in 2 s, SIGALRM "
             "%s, %d handler runs", calls, o->aux[2] ? "pending after" :
             "not pending", (int) alarms);
    if (control) {                              /* as shipped again */
        sa.sa_handler = SIG_DFL;
        sigprocmask(SIG_BLOCK, &set, NULL);
        sigaction(SIGALRM, &sa, NULL);
    }
}
