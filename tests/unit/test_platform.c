/*
 * Unit tests of keystore/ks_platform: the machine check behind `keystore
 * on`.  The kernel-release parser is tested on fixed strings; the CPU and
 * the whole check are compared with what /proc/cpuinfo and pkey_alloc()
 * say on the machine running the tests, so they hold with and without MPK.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "../../keystore/ks_platform.h"

static void
kernel_release_strings(void **state)
{
    (void) state;
    assert_int_equal(ks_platform_kernel_at_least("6.12", 6, 12), 1);
    assert_int_equal(ks_platform_kernel_at_least("6.12.0", 6, 12), 1);
    assert_int_equal(ks_platform_kernel_at_least("6.18.44-fc-v669", 6, 12), 1);
    assert_int_equal(ks_platform_kernel_at_least("7.0.1", 6, 12), 1);
    assert_int_equal(ks_platform_kernel_at_least("6.11.9", 6, 12), 0);
    assert_int_equal(ks_platform_kernel_at_least("6.1.0-27-amd64", 6, 12), 0);
    assert_int_equal(ks_platform_kernel_at_least("5.15.0-91-generic", 6, 12),
                     0);
    assert_int_equal(ks_platform_kernel_at_least("6.120", 6, 12), 1);
    assert_int_equal(ks_platform_kernel_at_least("6.2", 6, 12), 0);
}

static void
kernel_release_garbage(void **state)
{
    (void) state;
    assert_int_equal(ks_platform_kernel_at_least(NULL, 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("6", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("6.", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("linux", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("6x12", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("-6.12", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("6.-12", 6, 12), -1);
    assert_int_equal(ks_platform_kernel_at_least("99999999999999999999.1",
                                                 6, 12), -1);
}

/* 1 if the first "flags" line of /proc/cpuinfo names flag. */
static int
cpuinfo_has(const char *flag)
{
    char line[8192], word[64];
    FILE *f = fopen("/proc/cpuinfo", "r");
    int found = 0;

    assert_non_null(f);
    snprintf(word, sizeof(word), " %s", flag);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "flags", 5) == 0) {
            char *hit = strstr(line, word);
            found = hit != NULL && (hit[strlen(word)] == ' '
                                    || hit[strlen(word)] == '\n');
            break;
        }
    }
    fclose(f);
    return found;
}

static void
cpu_features_match_cpuinfo(void **state)
{
    unsigned f = ks_platform_cpu_features();

    (void) state;
    assert_int_equal(!!(f & KS_CPU_PKU), cpuinfo_has("pku"));
    assert_int_equal(!!(f & KS_CPU_OSPKE), cpuinfo_has("ospke"));
}

static void
check_matches_machine(void **state)
{
    char why[256];
    int key, rc;

    (void) state;
    memset(why, 'x', sizeof(why));
    rc = ks_platform_check(why, sizeof(why));
    assert_non_null(memchr(why, '\0', sizeof(why)));

    key = pkey_alloc(0, 0);
    if (key >= 0) {
        pkey_free(key);
    }
    if (!cpuinfo_has("pku") || !cpuinfo_has("ospke")) {
        /* The machine without MPK: the reason names what is missing. */
        assert_int_equal(rc, -1);
        assert_non_null(strstr(why, cpuinfo_has("pku") ? "ospke" : "pku"));
        assert_true(key < 0);
    } else if (key < 0) {
        assert_int_equal(rc, -1);
    } else {
        assert_int_equal(rc, 0);
        assert_string_equal(why, "");
    }
}

static void
check_truncates_reason(void **state)
{
    char why[8];

    (void) state;
    if (ks_platform_check(why, sizeof(why)) == 0) {
        skip();                             /* no reason to truncate here */
    }
    assert_int_equal(strlen(why), sizeof(why) - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernel_release_strings),
        cmocka_unit_test(kernel_release_garbage),
        cmocka_unit_test(cpu_features_match_cpuinfo),
        cmocka_unit_test(check_matches_machine),
        cmocka_unit_test(check_truncates_reason),
    };

    return cmocka_run_group_tests_name("ks_platform", tests, NULL, NULL);
}
