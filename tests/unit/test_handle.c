/*
 * Unit tests of keystore/ks_handle: forged, stale, freed and mistyped
 * handles are rejected; each rejection has a control (the right handle
 * works).  The generation limit is lowered to see a slot retire.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#define KS_HANDLE_GEN_MAX  3
#include "../../keystore/ks_handle.c"       /* for its static state */

enum { T_KEY = 1, T_CIPHER = 2 };

static int objs[8];

static void
new_get_free(void **state)
{
    ks_handle_t h;

    (void) state;
    h = ks_handle_new(T_KEY, &objs[0]);
    assert_true(h != 0);
    assert_ptr_equal(ks_handle_get(h, T_KEY), &objs[0]);
    assert_int_equal(ks_handle_count(), 1);
    assert_ptr_equal(ks_handle_free(h, T_KEY), &objs[0]);
    assert_int_equal(ks_handle_count(), 0);
}

static void
stale_and_double_free_rejected(void **state)
{
    ks_handle_t h, h2;

    (void) state;
    h = ks_handle_new(T_KEY, &objs[1]);
    assert_non_null(ks_handle_free(h, T_KEY));
    assert_null(ks_handle_get(h, T_KEY));               /* stale */
    assert_null(ks_handle_free(h, T_KEY));              /* double free */

    /* the slot is reused with a new generation; the old handle stays dead */
    h2 = ks_handle_new(T_KEY, &objs[2]);
    assert_true(h2 != h);
    assert_null(ks_handle_get(h, T_KEY));
    assert_ptr_equal(ks_handle_get(h2, T_KEY), &objs[2]);
    assert_non_null(ks_handle_free(h2, T_KEY));
}

static void
wrong_type_rejected(void **state)
{
    ks_handle_t h;

    (void) state;
    h = ks_handle_new(T_CIPHER, &objs[3]);
    assert_null(ks_handle_get(h, T_KEY));
    assert_null(ks_handle_free(h, T_KEY));
    /* retagging the handle does not help: the slot knows its type */
    assert_null(ks_handle_get((h & ~(uint64_t) 0xff) | T_KEY, T_KEY));
    assert_ptr_equal(ks_handle_get(h, T_CIPHER), &objs[3]);  /* control */
    assert_non_null(ks_handle_free(h, T_CIPHER));
    assert_int_equal(ks_handle_new(0, &objs[3]), 0);
    assert_int_equal(ks_handle_new(256, &objs[3]), 0);
    assert_int_equal(ks_handle_new(T_KEY, NULL), 0);
}

static void
forged_handles_rejected(void **state)
{
    ks_handle_t live[4];
    unsigned i, accepted = 0;

    (void) state;
    for (i = 0; i < 4; i++) {
        live[i] = ks_handle_new(T_KEY, &objs[4 + i]);
    }
    srandom(1);
    for (i = 0; i < 1000000; i++) {
        ks_handle_t f = ((uint64_t) random() << 33) ^ ((uint64_t) random() << 2)
                        ^ (uint64_t) random();
        accepted += ks_handle_get(f, T_KEY) != NULL;
        /* near misses of a live handle: other generation, other slot */
        accepted += ks_handle_get(live[i % 4] + ((uint64_t) 1 << 28), T_KEY)
                    != NULL;
        accepted += ks_handle_get(live[i % 4] + ((uint64_t) 1 << 8), T_KEY)
                    == &objs[4 + i % 4];
    }
    assert_int_equal(accepted, 0);
    assert_null(ks_handle_get(0, T_KEY));
    for (i = 0; i < 4; i++) {
        assert_ptr_equal(ks_handle_get(live[i], T_KEY), &objs[4 + i]);
        assert_non_null(ks_handle_free(live[i], T_KEY));
    }
}

static void
slot_retires_at_generation_limit(void **state)
{
    ks_handle_t h, seen[KS_HANDLE_GEN_MAX + 2];
    unsigned i, n = 0;
    uint32_t used_before;

    (void) state;
    /* cycle one slot (the top of the free stack) until it retires */
    used_before = nused;
    for (i = 0; i < KS_HANDLE_GEN_MAX + 1; i++) {
        h = ks_handle_new(T_KEY, &objs[0]);
        seen[n++] = h;
        assert_non_null(ks_handle_free(h, T_KEY));
    }
    /* every handle that slot ever had stays rejected */
    for (i = 0; i < n; i++) {
        assert_null(ks_handle_get(seen[i], T_KEY));
    }
    /* the free stack no longer offers a retired slot */
    for (i = 0; i < n; i++) {
        h = ks_handle_new(T_KEY, &objs[1]);
        assert_true(h != 0);
        seen[i] = h;
    }
    assert_true(nused >= used_before);
    for (i = 0; i < n; i++) {
        assert_non_null(ks_handle_free(seen[i], T_KEY));
    }
}

static void
table_full_returns_zero(void **state)
{
    static ks_handle_t all[KS_HANDLE_SLOTS];
    unsigned i, made = 0;

    (void) state;
    for (i = 0; i < KS_HANDLE_SLOTS; i++) {
        all[i] = ks_handle_new(T_KEY, &objs[0]);
        if (all[i] == 0) {
            break;
        }
        made++;
    }
    assert_int_equal(ks_handle_new(T_KEY, &objs[0]), 0);
    assert_true(made > KS_HANDLE_SLOTS - 16);   /* only retired slots missing */
    for (i = 0; i < made; i++) {
        assert_non_null(ks_handle_free(all[i], T_KEY));
    }
    assert_int_equal(ks_handle_count(), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_get_free),
        cmocka_unit_test(stale_and_double_free_rejected),
        cmocka_unit_test(wrong_type_rejected),
        cmocka_unit_test(forged_handles_rejected),
        cmocka_unit_test(slot_retires_at_generation_limit),
        cmocka_unit_test(table_full_returns_zero),
    };

    return cmocka_run_group_tests_name("ks_handle", tests, NULL, NULL);
}
