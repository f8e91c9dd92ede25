/*
 * keystore-bench: ERIM's switch-cost table on this machine, and the cost of
 * our full gate round trip, all measured in the same run (TSC cycles per
 * operation, the median of several runs of many iterations).  A tool, run
 * in U; never loaded into NGINX.
 *
 * The rows "+ switch" execute two WRPKRU instructions here, outside the
 * gate: this binary is the only other place in the tree with WRPKRU, it
 * exists to give the bare hardware cost the gate is compared with, and it
 * is documented as such in keystore/README.md.
 *
 * Last line: gate_roundtrip_cycles=<n> wrpkru_pair_cycles=<n> ratio=<r>
 * where the pair is a direct call plus two WRPKRUs (ERIM's "direct call +
 * switch").  Under emulation (QEMU TCG) the figures say nothing about the
 * hardware; the tool says so when CPUID names a hypervisor.
 */

#define _GNU_SOURCE
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include "keystore.h"
#include "ks_ops.h"
#include "ks_pkru.h"

#define ITERS  200000
#define RUNS   11

static uint32_t  pkru_t, pkru_u;            /* T open / T closed */

static inline void
wrpkru(uint32_t v)
{
    __asm__ volatile (".byte 0x0f, 0x01, 0xef"  /* WRPKRU: benchmark only */
                      : : "a" (v), "c" (0), "d" (0) : "memory");
}

static void __attribute__((noinline))
empty(void)
{
    __asm__ volatile ("");
}

static void __attribute__((noinline))
switch_pair(void)
{
    wrpkru(pkru_t);
    wrpkru(pkru_u);
}

static void (*volatile empty_ptr)(void) = empty;
static void (*volatile switch_ptr)(void) = switch_pair;

enum row {
    INLINED, DIRECT, INDIRECT, INLINED_SWITCH, DIRECT_SWITCH,
    INDIRECT_SWITCH, GETPID, GATE, NROWS
};

static const char *const names[NROWS] = {
    "Inlined call (no switch)", "Direct call (no switch)",
    "Indirect call (no switch)", "Inlined call + switch",
    "Direct call + switch", "Indirect call + switch",
    "getpid system call", "mpk-tls gate round trip (no-op operation)",
};

static const int erim[NROWS] = { 5, 8, 19, 60, 69, 99, 152, -1 };

/* Cycles per operation of one run of ITERS iterations of row r. */
static double
run(enum row r)
{
    unsigned aux;
    uint64_t t0, t1;
    int i;

    _mm_lfence();
    t0 = __rdtscp(&aux);
    for (i = 0; i < ITERS; i++) {
        switch (r) {
        case INLINED: __asm__ volatile (""); break;
        case DIRECT: empty(); break;
        case INDIRECT: empty_ptr(); break;
        case INLINED_SWITCH: wrpkru(pkru_t); wrpkru(pkru_u); break;
        case DIRECT_SWITCH: switch_pair(); break;
        case INDIRECT_SWITCH: switch_ptr(); break;
        case GETPID: syscall(SYS_getpid); break;
        case GATE: ks_gate_call(KS_OP_NOP, NULL); break;
        default: break;
        }
    }
    t1 = __rdtscp(&aux);
    _mm_lfence();
    return (double) (t1 - t0) / ITERS;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

/* "TCGTCGTCGTCG", "KVMKVMKVM", ...: the hypervisor CPUID names, if any. */
static int
hypervisor(char name[13])
{
    unsigned a, b, c, d;

    __cpuid(1, a, b, c, d);
    if (!(c & (1u << 31))) {
        return 0;
    }
    __cpuid(0x40000000, a, b, c, d);
    memcpy(name, &b, 4);
    memcpy(name + 4, &c, 4);
    memcpy(name + 8, &d, 4);
    name[12] = '\0';
    return 1;
}

int
main(void)
{
    double samples[NROWS][RUNS], med[NROWS];
    struct ks_stats st;
    char err[256], hv[13];
    int r, k;

    if (ks_init(NULL, err, sizeof(err)) != 0 || ks_stats(&st) != 0) {
        printf("keystore-bench: skipped: %s\n", err);
        return 77;
    }
    pkru_u = ks_rdpkru();
    pkru_t = pkru_u & ~(3u << (2 * st.pkey));

    for (r = 0; r < NROWS; r++) {           /* warm up */
        run(r);
    }
    for (k = 0; k < RUNS; k++) {            /* rows interleaved per run */
        for (r = 0; r < NROWS; r++) {
            samples[r][k] = run(r);
        }
    }
    if (hypervisor(hv)) {
        printf("note: running under a hypervisor (%s)%s\n", hv,
               strcmp(hv, "TCGTCGTCGTCG") == 0
               ? ": QEMU TCG emulation, figures are NOT hardware costs" : "");
    }
    printf("%-44s %10s %8s\n", "Call type (median of 11 runs)", "cycles",
           "ERIM");
    for (r = 0; r < NROWS; r++) {
        qsort(samples[r], RUNS, sizeof(double), cmp_double);
        med[r] = samples[r][RUNS / 2];
        if (erim[r] >= 0) {
            printf("%-44s %10.1f %8d\n", names[r], med[r], erim[r]);
        } else {
            printf("%-44s %10.1f %8s\n", names[r], med[r], "-");
        }
    }
    printf("gate_roundtrip_cycles=%.0f wrpkru_pair_cycles=%.0f ratio=%.2f\n",
           med[GATE], med[DIRECT_SWITCH], med[GATE] / med[DIRECT_SWITCH]);
    return 0;
}
