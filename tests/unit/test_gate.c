/*
 * Tests of the protection domain and the gate (needs MPK: runs natively on
 * a CPU with pku, else in a QEMU guest that emulates it; see run_all.py).
 *
 * Linked against libkeystore-test.so, the keystore built with the test
 * operations (peek/poke at T addresses, AES with a given key, a sleep in
 * T), which exist only so that each refusal below has its positive
 * control: the same access inside a gate works, the same key material is
 * found where nothing scrubs it.
 *
 * Built twice: test_gate (the real gate) and test_gate_noscrub (a gate
 * assembled without the register scrub), which must find key bytes in the
 * vector registers — the control that shows the register test can fail.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* the system's libcrypto (U); its low-level AES API gives the schedule */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/aes.h>

#include "../../keystore/ks_pkru.h"
#include "ks_test.h"

static int  pkey;                       /* the keystore's, from ks_stats() */

static const unsigned char test_key[16] = {
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
    0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
};

/* The keystore and its T ranges (ks_test.h), and its protection key. */
static int
setup_gate(void **state)
{
    struct ks_stats st;

    if (setup_keystore(state) != 0 || ks_stats(&st) != 0) {
        return -1;
    }
    pkey = st.pkey;
    return 0;
}

/* ---- access from U faults, the same access inside a gate works -------- */

static void
segv_handler(int sig, siginfo_t *si, void *ctx)
{
    (void) sig; (void) ctx;
    /* 42: the pkey fault on the keystore's key; 43: any other fault */
    _exit(si->si_code == SEGV_PKUERR && (int) si->si_pkey == pkey ? 42 : 43);
}

/* fork(); in the child (0 returned) a SIGSEGV ends it through
 * segv_handler, with 42 for the pkey fault. */
static pid_t
fork_catching_segv(void)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
    }
    return pid;
}

/* In a child: read or write one byte of addr.  Returns its exit code. */
static int
child_access(uintptr_t addr, int write)
{
    pid_t pid = fork_catching_segv();

    if (pid == 0) {
        if (write) {
            *(volatile unsigned char *) addr = 0x5a;
        } else {
            (void) *(volatile unsigned char *) addr;
        }
        _exit(0);
    }
    return child_exit_code(pid);
}

static void
u_access_to_t_faults(void **state)
{
    /* a byte in the T heap's unused end, deep in the T stack, in data,
     * and in the last data range (.bss: the private libcrypto's state) */
    uintptr_t targets[4] = {
        ranges[R_HEAP].start + ranges[R_HEAP].len - 16,
        ranges[R_STACK].start + 64,
        ranges[R_DATA].start,
        ranges[nranges - 1].start + ranges[nranges - 1].len - 1,
    };
    unsigned char b, mark = 0xa5, back;
    unsigned i;

    (void) state;
    for (i = 0; i < 4; i++) {
        assert_int_equal(child_access(targets[i], 0), 42);
        assert_int_equal(child_access(targets[i], 1), 42);
        peek(targets[i], &b, 1);                /* control: T can read it */
    }
    for (i = 0; i < 2; i++) {                   /* and write (heap, stack) */
        peek(targets[i], &b, 1);
        poke(targets[i], &mark, 1);
        peek(targets[i], &back, 1);
        assert_int_equal(back, mark);
        poke(targets[i], &b, 1);
    }
    /* control: the same child code on U memory does not fault */
    assert_int_equal(child_access((uintptr_t) &b, 1), 0);
}

static void
pkru_denies_t_outside_gate(void **state)
{
    uint32_t bits = 3u << (2 * pkey);

    (void) state;
    assert_true(pkey >= 1 && pkey < 16);
    assert_int_equal(ks_rdpkru() & bits, bits);
    assert_int_equal(ks_gate_call(KS_OP_NOP, NULL), 0);
    assert_int_equal(ks_rdpkru() & bits, bits);
}

/* ---- arguments from U ---------------------------------------------------- */

static void
t_pointers_rejected_and_t_unchanged(void **state)
{
    struct ks_stats_out ok_out;
    struct ks_args_stats a;
    unsigned char before[64], after[64];
    uint32_t i;

    (void) state;
    for (i = 0; i < nranges; i++) {
        uintptr_t s = ranges[i].start, e = s + ranges[i].len;
        /* at the start, in the middle, overlapping the start, the end */
        uintptr_t probes[4] = { s, s + ranges[i].len / 2, s - 8, e - 8 };
        unsigned j;

        if (i == R_GUARD_LO || i == R_GUARD_HI) {
            continue;               /* nothing to read there, but see below */
        }
        for (j = 0; j < 4; j++) {
            uintptr_t p = probes[j], from = p < s ? s : p;
            size_t n = sizeof(*a.out);

            n = from + n > e ? e - from : n;        /* the bytes inside T */
            n = from + n > p + sizeof(*a.out) ? p + sizeof(*a.out) - from : n;
            peek(from, before, n);
            a.out = (struct ks_stats_out *) p;      /* into or overlapping T */
            assert_int_equal(ks_gate_call(KS_OP_STATS, &a), KS_ERR_ARG);
            peek(from, after, n);
            assert_memory_equal(before, after, n);
        }
        /* the argument block itself in T */
        assert_int_equal(ks_gate_call(KS_OP_STATS, (void *) s), KS_ERR_ARG);
    }
    /* guard pages count as T */
    a.out = (struct ks_stats_out *) ranges[R_GUARD_HI].start;
    assert_int_equal(ks_gate_call(KS_OP_STATS, &a), KS_ERR_ARG);

    /* wrapping and non-user addresses */
    a.out = (struct ks_stats_out *) (UINTPTR_MAX - 8);
    assert_int_equal(ks_gate_call(KS_OP_STATS, &a), KS_ERR_ARG);
    a.out = NULL;
    assert_int_equal(ks_gate_call(KS_OP_STATS, &a), KS_ERR_ARG);

    /* control: a U pointer is written */
    memset(&ok_out, 0xff, sizeof(ok_out));
    a.out = &ok_out;
    assert_int_equal(ks_gate_call(KS_OP_STATS, &a), 0);
    assert_int_equal(ok_out.pkey, pkey);
}

static void
lengths_bounded(void **state)
{
    static const unsigned char abc_sha256[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    unsigned char md[32];
    unsigned char *big = malloc(KS_ARG_LEN_MAX + 1);
    struct ks_args_digest a = { "abc", 3, md };

    (void) state;
    assert_non_null(big);
    assert_int_equal(ks_gate_call(KS_OP_SELFTEST_SHA256, &a), 0);
    assert_memory_equal(md, abc_sha256, 32);                /* control */

    a.in = big;
    a.inlen = KS_ARG_LEN_MAX + 1;
    assert_int_equal(ks_gate_call(KS_OP_SELFTEST_SHA256, &a), KS_ERR_ARG);
    a.inlen = SIZE_MAX;
    assert_int_equal(ks_gate_call(KS_OP_SELFTEST_SHA256, &a), KS_ERR_ARG);
    /* an input that runs into T */
    a.in = (const void *) (ranges[R_HEAP].start - 1);
    a.inlen = 2;
    assert_int_equal(ks_gate_call(KS_OP_SELFTEST_SHA256, &a), KS_ERR_ARG);
    free(big);
}

static void
unknown_operations_rejected(void **state)
{
    (void) state;
    assert_int_equal(ks_gate_call(KS_OP_COUNT, NULL), KS_ERR_OP);
    assert_int_equal(ks_gate_call(0xffffffffu, NULL), KS_ERR_OP);
}

static void
crossings_counted(void **state)
{
    struct ks_stats s1, s2;

    (void) state;
    assert_int_equal(ks_stats(&s1), 0);
    assert_int_equal(ks_gate_call(KS_OP_NOP, NULL), 0);
    assert_int_equal(ks_stats(&s2), 0);
    assert_int_equal(s2.gate_crossings - s1.gate_crossings, 2);
}

/* ---- nothing of T's stays in registers or on the U stack ------------------ */

/*
 * The AES-128 key schedule of test_key (11 round keys), from the system's
 * libcrypto, in both byte orders an implementation may keep it in: as
 * AES-NI does (the natural order) and as 32-bit words in host order.
 */
static void
round_keys(unsigned char rk[2][11][16])
{
    AES_KEY k;
    unsigned i, j;

    AES_set_encrypt_key(test_key, 128, &k);
    memcpy(rk[0], k.rd_key, 11 * 16);
    for (i = 0; i < 11 * 4; i++) {
        for (j = 0; j < 4; j++) {
            ((unsigned char *) rk[1])[4 * i + j] =
                ((unsigned char *) k.rd_key)[4 * i + 3 - j];
        }
    }
    explicit_bzero(&k, sizeof(k));
}

/* How many of the 11 round keys appear anywhere in buf (either order). */
static unsigned
round_keys_in(const unsigned char *buf, size_t len)
{
    unsigned char rk[2][11][16];
    unsigned i, found = 0;

    round_keys(rk);
    for (i = 0; i < 11; i++) {
        found += memmem(buf, len, rk[0][i], 16) != NULL
                 || memmem(buf, len, rk[1][i], 16) != NULL;
    }
    explicit_bzero(rk, sizeof(rk));
    return found;
}

/* AES in T, then the vector registers dumped before anything touches them. */
static void __attribute__((noinline))
aes_then_dump(unsigned char *regs, int level)
{
    struct ks_args_test_aes a;
    unsigned char out[16];

    memcpy(a.key, test_key, 16);
    memset(a.in, 0, 16);
    a.out = out;
    if (ks_gate_call(KS_OP_TEST_AES128, &a) != 0) {
        abort();
    }
    /* dump first: any libc call (even explicit_bzero) uses vector regs */
    if (level == 2) {
        __asm__ volatile (
            "vmovdqu64 %%zmm0, 0*64(%0)\n vmovdqu64 %%zmm1, 1*64(%0)\n"
            "vmovdqu64 %%zmm2, 2*64(%0)\n vmovdqu64 %%zmm3, 3*64(%0)\n"
            "vmovdqu64 %%zmm4, 4*64(%0)\n vmovdqu64 %%zmm5, 5*64(%0)\n"
            "vmovdqu64 %%zmm6, 6*64(%0)\n vmovdqu64 %%zmm7, 7*64(%0)\n"
            "vmovdqu64 %%zmm8, 8*64(%0)\n vmovdqu64 %%zmm9, 9*64(%0)\n"
            "vmovdqu64 %%zmm10, 10*64(%0)\n vmovdqu64 %%zmm11, 11*64(%0)\n"
            "vmovdqu64 %%zmm12, 12*64(%0)\n vmovdqu64 %%zmm13, 13*64(%0)\n"
            "vmovdqu64 %%zmm14, 14*64(%0)\n vmovdqu64 %%zmm15, 15*64(%0)\n"
            "vmovdqu64 %%zmm16, 16*64(%0)\n vmovdqu64 %%zmm17, 17*64(%0)\n"
            "vmovdqu64 %%zmm18, 18*64(%0)\n vmovdqu64 %%zmm19, 19*64(%0)\n"
            "vmovdqu64 %%zmm20, 20*64(%0)\n vmovdqu64 %%zmm21, 21*64(%0)\n"
            "vmovdqu64 %%zmm22, 22*64(%0)\n vmovdqu64 %%zmm23, 23*64(%0)\n"
            "vmovdqu64 %%zmm24, 24*64(%0)\n vmovdqu64 %%zmm25, 25*64(%0)\n"
            "vmovdqu64 %%zmm26, 26*64(%0)\n vmovdqu64 %%zmm27, 27*64(%0)\n"
            "vmovdqu64 %%zmm28, 28*64(%0)\n vmovdqu64 %%zmm29, 29*64(%0)\n"
            "vmovdqu64 %%zmm30, 30*64(%0)\n vmovdqu64 %%zmm31, 31*64(%0)\n"
            : : "r" (regs) : "memory");
    } else if (level == 1) {
        __asm__ volatile (
            "vmovdqu %%ymm0, 0*32(%0)\n vmovdqu %%ymm1, 1*32(%0)\n"
            "vmovdqu %%ymm2, 2*32(%0)\n vmovdqu %%ymm3, 3*32(%0)\n"
            "vmovdqu %%ymm4, 4*32(%0)\n vmovdqu %%ymm5, 5*32(%0)\n"
            "vmovdqu %%ymm6, 6*32(%0)\n vmovdqu %%ymm7, 7*32(%0)\n"
            "vmovdqu %%ymm8, 8*32(%0)\n vmovdqu %%ymm9, 9*32(%0)\n"
            "vmovdqu %%ymm10, 10*32(%0)\n vmovdqu %%ymm11, 11*32(%0)\n"
            "vmovdqu %%ymm12, 12*32(%0)\n vmovdqu %%ymm13, 13*32(%0)\n"
            "vmovdqu %%ymm14, 14*32(%0)\n vmovdqu %%ymm15, 15*32(%0)\n"
            : : "r" (regs) : "memory");
    } else {
        __asm__ volatile (
            "movdqu %%xmm0, 0*16(%0)\n movdqu %%xmm1, 1*16(%0)\n"
            "movdqu %%xmm2, 2*16(%0)\n movdqu %%xmm3, 3*16(%0)\n"
            "movdqu %%xmm4, 4*16(%0)\n movdqu %%xmm5, 5*16(%0)\n"
            "movdqu %%xmm6, 6*16(%0)\n movdqu %%xmm7, 7*16(%0)\n"
            "movdqu %%xmm8, 8*16(%0)\n movdqu %%xmm9, 9*16(%0)\n"
            "movdqu %%xmm10, 10*16(%0)\n movdqu %%xmm11, 11*16(%0)\n"
            "movdqu %%xmm12, 12*16(%0)\n movdqu %%xmm13, 13*16(%0)\n"
            "movdqu %%xmm14, 14*16(%0)\n movdqu %%xmm15, 15*16(%0)\n"
            : : "r" (regs) : "memory");
    }
    explicit_bzero(&a, sizeof(a));          /* the key copy we made */
}

/* 2: zmm0-31, 1: ymm0-15, 0: xmm0-15 — what this CPU has. */
static int
vector_level(void)
{
    return __builtin_cpu_supports("avx512f") ? 2
           : __builtin_cpu_supports("avx") ? 1 : 0;
}

static void
vector_registers_scrubbed(void **state)
{
    unsigned char regs[32 * 64];
    unsigned found;

    (void) state;
    memset(regs, 0, sizeof(regs));
    aes_then_dump(regs, vector_level());
    found = round_keys_in(regs, sizeof(regs));
#ifdef KS_TEST_NO_SCRUB
    /* the control: without the scrub, AES-NI's round keys are still there */
    assert_true(found > 0);
#else
    assert_int_equal(found, 0);
#endif
}

/* Fill the U stack below us with an AES key schedule and leave it there. */
static void __attribute__((noinline))
stack_aes_without_cleanup(void)
{
    AES_KEY k;
    unsigned char in[16] = { 0 }, out[16];

    AES_set_encrypt_key(test_key, 128, &k);
    AES_encrypt(in, out, &k);
    __asm__ volatile ("" : : "r" (&k), "r" (out) : "memory");
}

static void __attribute__((noinline))
clear_stack_below(void)
{
    unsigned char buf[70000];

    memset(buf, 0, sizeof(buf));
    __asm__ volatile ("" : : "r" (buf) : "memory");
}

#define SCAN  65536

/* Copy the SCAN bytes of U stack below the stack pointer of the caller:
 * one memcpy, whose own frame is a return address, so nothing of ours
 * overwrites what the callees before us left there. */
#define COPY_STACK_BELOW(buf)                                            \
    do {                                                                 \
        uintptr_t sp_;                                                   \
        __asm__ volatile ("mov %%rsp, %0" : "=r" (sp_));                 \
        memcpy((buf), (const void *) (sp_ - SCAN), SCAN - 64);           \
    } while (0)

static void
u_stack_holds_no_key(void **state)
{
    unsigned char regs[32 * 64];
    unsigned char *copy;

    (void) state;
#ifdef KS_TEST_NO_SCRUB
    /* Without the scrub, key bytes left in registers can be spilled onto
     * the U stack by the next U code (ld.so's lazy-binding trampoline
     * saves every vector register): this test presumes the scrub. */
    skip();
#endif
    copy = calloc(1, SCAN);
    assert_non_null(copy);
    clear_stack_below();
    aes_then_dump(regs, 0);                 /* AES in T */
    COPY_STACK_BELOW(copy);
    assert_int_equal(round_keys_in(copy, SCAN), 0);

    /* control: the same AES done in U leaves its schedule on the stack */
    clear_stack_below();
    stack_aes_without_cleanup();
    COPY_STACK_BELOW(copy);
    assert_true(round_keys_in(copy, SCAN) > 0);
    free(copy);
}

/* ---- jumping into the gate ------------------------------------------------ */

/* The gate's two WRPKRU sites, found in its code like an attacker would. */
static void
gate_sites(uintptr_t *enter, uintptr_t *leave)
{
    const unsigned char *p = (const unsigned char *) (uintptr_t) ks_gate_call;
    unsigned i, n = 0;

    for (i = 0; i < 2048 && n < 3; i++) {
        if (p[i] == 0x0f && p[i + 1] == 0x01 && p[i + 2] == 0xef) {
            if (n == 0) {
                *enter = (uintptr_t) (p + i);
            } else if (n == 1) {
                *leave = (uintptr_t) (p + i);
            }
            n++;
        }
    }
    assert_int_equal(n, 2);                 /* exactly two, as documented */
}

/*
 * Jump to target with EAX = eax, ECX = EDX = 0, R12/R13 as given and a
 * stack laid out like the gate's own frame (six saved registers, then a
 * return address back here), so that if the gate carries on to its end it
 * returns to us.
 */
static void __attribute__((noinline))
jump_into(uintptr_t target, uint32_t eax, uint64_t r12v, uint64_t r13v)
{
    register uint64_t t asm("rdi") = target;
    register uint64_t a asm("rsi") = eax;
    register uint64_t v12 asm("r8") = r12v;
    register uint64_t v13 asm("r9") = r13v;

    __asm__ volatile (
        "sub $128, %%rsp\n\t"                 /* keep off the red zone */
        "lea 1f(%%rip), %%rax\n\t"
        "push %%rax\n\t"
        "push %%rbp\n\t push %%rbx\n\t push %%r12\n\t"
        "push %%r13\n\t push %%r14\n\t push %%r15\n\t"
        "mov %%r8, %%r12\n\t"
        "mov %%r9, %%r13\n\t"
        "mov %%esi, %%eax\n\t"
        "xor %%ecx, %%ecx\n\t"
        "xor %%edx, %%edx\n\t"
        "jmp *%%rdi\n"
        "1:\n\t"
        "add $128, %%rsp\n\t"
        : "+r" (t), "+r" (a), "+r" (v12), "+r" (v13)
        :
        : "rax", "rcx", "rdx", "r10", "r11", "memory", "cc",
          "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
          "xmm15");
}

/* Run one jump in a child; its exit status tells what happened:
 * 0 back with T closed, 1 back with T open, 42 pkey fault, 70 the
 * gate's abort. */
static int
jump_in_child(uintptr_t target, uint32_t eax, uint64_t r12v, uint64_t r13v)
{
    uint32_t bits = 3u << (2 * pkey);
    pid_t pid = fork_catching_segv();

    if (pid == 0) {
        jump_into(target, eax, r12v, r13v);
        _exit((ks_rdpkru() & bits) == bits ? 0 : 1);
    }
    return child_exit_code(pid);
}

static void
jumps_into_gate_gain_nothing(void **state)
{
    uint32_t bits = 3u << (2 * pkey), pkru_u = ks_rdpkru();
    uintptr_t enter = 0, leave = 0;
    struct ks_stats_out out;
    struct ks_args_stats a = { &out };

    (void) state;
    gate_sites(&enter, &leave);
    assert_int_equal(pkru_u & bits, bits);

    /* the leave WRPKRU with U's own value: harmless (the control) */
    assert_int_equal(jump_in_child(leave, pkru_u, 0, 0), 0);
    /* with a value that opens T: ERIM's check aborts the process */
    assert_int_equal(jump_in_child(leave, pkru_u & ~bits, 0, 0), 70);
    assert_int_equal(jump_in_child(leave, 0, 0, 0), 70);

    /* the enter WRPKRU with everything open: just a gate call, which
     * runs the operation and leaves with T closed */
    memset(&out, 0, sizeof(out));
    assert_int_equal(jump_in_child(enter, 0, KS_OP_STATS, (uintptr_t) &a), 0);
    /* ... also with an operation that does not exist */
    assert_int_equal(jump_in_child(enter, 0, 9999, 0), 0);

    /* past the enter WRPKRU, T is still closed: the first T access faults */
    assert_int_equal(jump_in_child(enter + 3, pkru_u, KS_OP_NOP, 0), 42);
}

/* ---- threads and processes -------------------------------------------------- */

static void *
sleep_in_t(void *arg)
{
    (void) arg;
    ks_gate_call(KS_OP_TEST_SLEEP, NULL);
    return NULL;
}

/* In a child: one thread sleeps in T, another enters meanwhile (or after
 * the first left, if !overlap).  Returns the child's exit code. */
static int
two_threads(int overlap)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        pthread_t t;

        pthread_create(&t, NULL, sleep_in_t, NULL);
        if (!overlap) {
            pthread_join(t, NULL);
        } else {
            usleep(50 * 1000);              /* the other is in T now */
        }
        ks_gate_call(KS_OP_NOP, NULL);
        if (overlap) {
            pthread_join(t, NULL);
        }
        _exit(0);
    }
    return child_exit_code(pid);
}

static void
concurrent_entry_never_shares_stack(void **state)
{
    (void) state;
    assert_int_equal(two_threads(1), 70);           /* the gate's abort */
    assert_int_equal(two_threads(0), 0);            /* control: one at a time */
}

static void
forked_child_keeps_keystore(void **state)
{
    pid_t pid;

    (void) state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsigned char md[32];
        struct ks_stats st;

        _exit(ks_selftest_sha256("abc", 3, md) == 0 && md[0] == 0xba
              && ks_stats(&st) == 0 && st.gate_crossings > 0 ? 0 : 1);
    }
    assert_int_equal(child_exit_code(pid), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pkru_denies_t_outside_gate),
        cmocka_unit_test(u_access_to_t_faults),
        cmocka_unit_test(t_pointers_rejected_and_t_unchanged),
        cmocka_unit_test(lengths_bounded),
        cmocka_unit_test(unknown_operations_rejected),
        cmocka_unit_test(jumps_into_gate_gain_nothing),
        cmocka_unit_test(crossings_counted),
        cmocka_unit_test(vector_registers_scrubbed),
        cmocka_unit_test(u_stack_holds_no_key),
        cmocka_unit_test(concurrent_entry_never_shares_stack),
        cmocka_unit_test(forked_child_keeps_keystore),
    };

    return cmocka_run_group_tests_name("ks_gate", tests, setup_gate, NULL);
}
