/*
 * Unit tests of keystore/ks_range: the check every gate applies to a
 * pointer from U.  Each refusal has its control: the same buffer moved
 * just outside the T range is accepted.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../keystore/ks_range.c"        /* for its static state */

static unsigned char t_area[4096];          /* stands for a T range */
static unsigned char t_other[64];
static unsigned char u_area[4096];          /* U memory */

static int
setup(void **state)
{
    (void) state;
    nranges = 0;
    assert_int_equal(ks_range_add(t_area + 1024, 1024), 0);
    assert_int_equal(ks_range_add(t_other, sizeof(t_other)), 0);
    return 0;
}

static void
u_buffers_accepted(void **state)
{
    (void) state;
    assert_true(ks_range_u_ok(u_area, sizeof(u_area)));
    assert_true(ks_range_u_ok(u_area, 1));
    assert_true(ks_range_u_ok(NULL, 0));
    assert_true(ks_range_u_ok(u_area, 0));
    /* controls for the T cases below: adjacent, not overlapping */
    assert_true(ks_range_u_ok(t_area, 1024));           /* ends at T start */
    assert_true(ks_range_u_ok(t_area + 2048, 2048));    /* starts at T end */
}

static void
t_pointers_refused(void **state)
{
    (void) state;
    assert_false(ks_range_u_ok(t_area + 1024, 1024));   /* exactly T */
    assert_false(ks_range_u_ok(t_area + 1500, 1));      /* inside */
    assert_false(ks_range_u_ok(t_area + 1024, 0));      /* empty, in T */
    assert_false(ks_range_u_ok(t_area, 1025));          /* overlaps start */
    assert_false(ks_range_u_ok(t_area + 2047, 100));    /* overlaps end */
    assert_false(ks_range_u_ok(t_area, sizeof(t_area)));/* contains T */
    assert_false(ks_range_u_ok(t_other + 63, 1));       /* second range */
    assert_true(ks_range_in_t(t_area + 1024));
    assert_false(ks_range_in_t(t_area + 2048));
}

static void
wrapping_and_oversized_refused(void **state)
{
    (void) state;
    assert_false(ks_range_u_ok((void *) (UINTPTR_MAX - 10), 100));
    assert_false(ks_range_u_ok((void *) (UINTPTR_MAX - 10), 5));  /* kernel */
    assert_false(ks_range_u_ok((void *) KS_USER_ADDR_END, 1));
    assert_false(ks_range_u_ok((void *) (KS_USER_ADDR_END - 8), 16));
    assert_true(ks_range_u_ok((void *) (KS_USER_ADDR_END - 16), 16));
    assert_false(ks_range_u_ok(u_area, SIZE_MAX));
    assert_false(ks_range_u_ok(u_area, KS_ARG_LEN_MAX + 1));
    assert_true(ks_range_u_ok((void *) 0x10000, KS_ARG_LEN_MAX));
    assert_false(ks_range_u_ok(NULL, 1));
    /* a length that wraps back to below the T range from U memory */
    assert_false(ks_range_u_ok(u_area, (size_t) 0 - (uintptr_t) u_area + 10));
}

static void
bad_ranges_not_registered(void **state)
{
    (void) state;
    assert_int_equal(ks_range_add(t_area, 0), -1);
    assert_int_equal(ks_range_add((void *) (UINTPTR_MAX - 10), 100), -1);
    while (nranges < KS_RANGE_MAX) {
        assert_int_equal(ks_range_add(u_area + 4095, 1), 0);
    }
    assert_int_equal(ks_range_add(u_area, 1), -1);      /* table full */
    assert_false(ks_range_u_ok(u_area + 4095, 1));      /* the last one took */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(u_buffers_accepted, setup),
        cmocka_unit_test_setup(t_pointers_refused, setup),
        cmocka_unit_test_setup(wrapping_and_oversized_refused, setup),
        cmocka_unit_test_setup(bad_ranges_not_registered, setup),
    };

    return cmocka_run_group_tests_name("ks_range", tests, NULL, NULL);
}
