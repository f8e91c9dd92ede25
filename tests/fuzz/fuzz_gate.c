/*
 * fuzz_gate: libFuzzer over the keystore's gate (ks_gate_call) with the
 * operation numbers, argument blocks, handles, tokens and lengths of
 * fuzz_ops.c.  Needs MPK: runs natively on a CPU with pku, else in the
 * QEMU guest (tests/fuzz/run_fuzz.py, `make fuzz`).
 *
 * Built with clang -fsanitize=fuzzer,address,undefined; the keystore it
 * calls, libkeystore-fuzz.so, is the test library's sources built with
 * ASan and UBSan (stack and arithmetic errors in T are reported) but
 * without libFuzzer's own coverage counters: those would sit in the
 * library's .data, which the keystore tags as T memory, where libFuzzer
 * (running in U) cannot read them.  T's code is built with
 * -fsanitize-coverage=trace-pc,trace-cmp instead: the comparison hooks
 * are libFuzzer's and write only its own (U) memory, and the edge hook,
 * renamed ks_fuzz_trace_pc, is the function below, which counts edges in
 * libFuzzer's extra counters, also U memory.  T may write U memory, so
 * both work while T runs.  Likewise ASan's global redzones are off for
 * the library (their descriptors would be in T memory too), and so is
 * LeakSanitizer (it scans every writable segment, T's included, from U).
 *
 * After each input: every handle it made is freed, T's canaries must hold,
 * and the T heap must not have grown by more than HEAP_SLACK since start.
 */

#define _GNU_SOURCE
#include "fuzz.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"

#define CALLS_MAX   16
#define HEAP_SLACK  ((uint64_t) 4 << 20)
#define NCOV        (1u << 16)

/* ---- coverage of T's code ---------------------------------------------- */

__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t    ks_cov[NCOV];
static uintptr_t  ks_text_base;

__attribute__((visibility("default"), no_sanitize("address", "undefined")))
void
ks_fuzz_trace_pc(void)
{
    uintptr_t pc = (uintptr_t) __builtin_return_address(0);
    uint8_t *c = &ks_cov[(pc - ks_text_base) % NCOV];

    *c += *c != 255;
}

const char *
__asan_default_options(void)
{
    return "detect_leaks=0";
}

const char *
__ubsan_default_options(void)
{
    return "print_stacktrace=1:halt_on_error=1";
}

/* ---- the input ------------------------------------------------------------ */

uint8_t
fz_u8(struct fz_in *in)
{
    if (in->n == 0) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

uint32_t
fz_u32(struct fz_in *in)
{
    uint32_t v = 0;
    unsigned i;

    for (i = 0; i < 4; i++) {
        v |= (uint32_t) fz_u8(in) << (8 * i);
    }
    return v;
}

uint64_t
fz_u64(struct fz_in *in)
{
    return fz_u32(in) | (uint64_t) fz_u32(in) << 32;
}

/* ---- libFuzzer's entry points ------------------------------------------- */

static uint64_t  heap_start;
static int       crash_control;
int              fz_trace;

/*
 * FUZZ_CRASH_CONTROL=1: the control of fuzz_crash.c.  The first input
 * makes T write to an unmapped U page (U's own fault, which ks_range
 * cannot see); the run must die and leave crash-t-* behind.
 */
static void
crash_in_t(void)
{
    struct ks_args_stats a;
    void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);

    munmap(page, 4096);
    a.out = page;
    ks_gate_call(KS_OP_STATS, &a);
}

static uint64_t
heap_bytes(void)
{
    struct ks_stats st;

    if (ks_stats(&st) != 0) {
        fprintf(stderr, "fuzz: ks_stats failed\n");
        abort();
    }
    return st.t_heap_bytes;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Dl_info info;

    fz_crash_init(*argc, *argv);
    if (dladdr((void *) ks_gate_call, &info) == 0) {
        abort();
    }
    ks_text_base = (uintptr_t) info.dli_fbase;
    fz_trace = getenv("FUZZ_TRACE") != NULL;
    crash_control = getenv("FUZZ_CRASH_CONTROL") != NULL;
    if (fz_setup() != 0) {
        abort();
    }
    heap_start = heap_bytes();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = { data, size };
    struct fz_handles hs;
    struct ks_args_free f;
    char why[128];
    unsigned i;
    uint64_t now;

    fz_crash_current(data, size);
    if (crash_control) {
        crash_in_t();
    }
    memset(&hs, 0, sizeof(hs));
    for (i = 0; i < CALLS_MAX && in.n > 0; i++) {
        fz_one_call(&in, &hs);
    }
    for (i = 0; i < hs.n; i++) {            /* end what the input made */
        if (hs.live[i]) {
            f.handle = hs.h[i];
            if (ks_gate_call(KS_OP_FREE, &f) != 0) {
                fprintf(stderr, "fuzz: handle %#llx made by this input "
                        "cannot be freed\n", (unsigned long long) hs.h[i]);
                abort();
            }
        }
    }
    if (!fz_canaries_intact(why, sizeof(why))) {
        fprintf(stderr, "fuzz: %s\n", why);
        abort();
    }
    now = heap_bytes();
    if (now > heap_start + HEAP_SLACK) {
        fprintf(stderr, "fuzz: the T heap grew from %llu to %llu bytes "
                "(a leak in T?)\n", (unsigned long long) heap_start,
                (unsigned long long) now);
        abort();
    }
    return 0;
}
