/*
 * What the keystore's MPK unit tests (test_gate, test_aead, test_kdf,
 * test_pkey) share: the group setup that creates the keystore and fetches
 * the T ranges, and thin asserting wrappers of the test operations of
 * libkeystore-test.so (peek/poke at T addresses, sealing off and on,
 * sealing and unsealing tokens of known secrets), of a few plain
 * operations (freeing a handle, the T heap's size), and the wait for a
 * forked child's exit code.
 *
 * Each test is one .c file, so this header holds definitions: the range
 * table is per test program, the helpers are static inline (a test that
 * does not use one gets no warning).  Only for tests built with
 * -DKS_TEST_OPS and linked against libkeystore-test.so (tests/build.mk).
 */

#ifndef KS_TEST_H
#define KS_TEST_H

#ifndef KS_TEST_OPS
#error "ks_test.h: for tests built with -DKS_TEST_OPS (libkeystore-test.so)"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "../../keystore/ks_range.h"
#include "../../keystore/ks_seal.h"     /* enum ks_seal_class: API values */

/* The T ranges (KS_OP_RANGES), filled in by setup_keystore(). */
static struct ks_range_out  ranges[KS_RANGE_MAX];
static uint32_t             nranges;

/* The T ranges, in the order ks_domain_init() registers them; then the
 * library's .data/.bss, in two ranges around the gate page. */
enum { R_HEAP = 0, R_STACK = 1, R_GUARD_LO = 2, R_GUARD_HI = 3, R_DATA = 4 };

/* cmocka group setup: ks_init() and the T ranges (at least up to R_DATA).
 * 0, or -1 with the reason ks_init() gave on stderr. */
static inline int
setup_keystore(void **state)
{
    struct ks_args_ranges ra = { ranges, &nranges };
    char err[256];

    (void) state;
    if (ks_init(NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "ks_init: %s\n", err);
        return -1;
    }
    return ks_gate_call(KS_OP_RANGES, &ra) == 0 && nranges > R_DATA ? 0 : -1;
}

/* Copy len bytes at the T address addr to buf (KS_OP_TEST_PEEK). */
static inline void
peek(uintptr_t addr, void *buf, size_t len)
{
    struct ks_args_test_mem a = { addr, buf, len };

    assert_int_equal(ks_gate_call(KS_OP_TEST_PEEK, &a), 0);
}

/* Copy len bytes of buf to the T address addr (KS_OP_TEST_POKE). */
static inline void
poke(uintptr_t addr, const void *buf, size_t len)
{
    struct ks_args_test_mem a = { addr, (unsigned char *) buf, len };

    assert_int_equal(ks_gate_call(KS_OP_TEST_POKE, &a), 0);
}

/* Sealing off (on = 1: a token is the secret itself) or on again
 * (KS_OP_TEST_SEAL_IDENTITY). */
static inline void
identity(int on)
{
    struct ks_args_test_identity a = { (uint32_t) on };

    assert_int_equal(ks_gate_call(KS_OP_TEST_SEAL_IDENTITY, &a), 0);
}

/* cmocka per-test setup or teardown: sealing on, whatever a test left. */
static inline int
sealing_on(void **state)
{
    struct ks_args_test_identity a = { 0 };

    (void) state;
    return ks_gate_call(KS_OP_TEST_SEAL_IDENTITY, &a) == 0 ? 0 : -1;
}

/* T's token of class cls (enum ks_seal_class) for len bytes of secret in
 * (KS_OP_TEST_SEAL); out may be in. */
static inline void
seal(unsigned cls, const unsigned char *in, unsigned char *out, size_t len)
{
    struct ks_args_test_seal a = { 0, cls, in, out, len };

    assert_int_equal(ks_gate_call(KS_OP_TEST_SEAL, &a), 0);
}

/* What the len-byte token in of class cls stands for. */
static inline void
unseal(unsigned cls, const unsigned char *in, unsigned char *out, size_t len)
{
    struct ks_args_test_seal a = { 1, cls, in, out, len };

    assert_int_equal(ks_gate_call(KS_OP_TEST_SEAL, &a), 0);
}

/* KS_OP_FREE of any handle: its result. */
static inline long
free_handle(uint64_t h)
{
    struct ks_args_free a = { h };

    return ks_gate_call(KS_OP_FREE, &a);
}

/* The bytes in use in the T heap now. */
static inline uint64_t
heap_bytes(void)
{
    struct ks_stats st;

    assert_int_equal(ks_stats(&st), 0);
    return st.t_heap_bytes;
}

/* Wait for the child pid, which must exit (not die of a signal): its
 * exit code. */
static inline int
child_exit_code(pid_t pid)
{
    int status;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

#endif /* KS_TEST_H */
