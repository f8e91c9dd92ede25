/* ks_platform: can this machine run the keystore?  See ks_platform.h. */

#define _GNU_SOURCE
#include "ks_platform.h"

#include <cpuid.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>

unsigned
ks_platform_cpu_features(void)
{
    unsigned a, b, c, d, features = 0;

    if (__get_cpuid_max(0, NULL) < 7) {
        return 0;
    }
    __cpuid_count(7, 0, a, b, c, d);
    (void) a; (void) b; (void) d;
    if (c & (1u << 3)) {
        features |= KS_CPU_PKU;
    }
    if (c & (1u << 4)) {
        features |= KS_CPU_OSPKE;
    }
    return features;
}

/*
 * One decimal component that must be followed by one of the characters in
 * ends, or by the end of the string if may_end.
 */
static int
parse_component(const char **p, const char *ends, int may_end, unsigned *out)
{
    char *end;
    unsigned long v;

    if (**p < '0' || **p > '9') {
        return -1;
    }
    errno = 0;
    v = strtoul(*p, &end, 10);
    if (errno != 0 || v > UINT_MAX) {
        return -1;
    }
    if (*end == '\0' ? !may_end : strchr(ends, *end) == NULL) {
        return -1;
    }
    *out = (unsigned) v;
    *p = end;
    return 0;
}

int
ks_platform_kernel_at_least(const char *release, unsigned major,
    unsigned minor)
{
    const char *p = release;
    unsigned maj, min;

    if (p == NULL || parse_component(&p, ".", 0, &maj) != 0) {
        return -1;
    }
    p++;                                    /* the '.' */
    /* what follows the minor number: ".patch", "-flavour", "+", or nothing */
    if (parse_component(&p, ".-+_", 1, &min) != 0) {
        return -1;
    }
    return maj > major || (maj == major && min >= minor);
}

int
ks_platform_check(char *why, size_t len)
{
    struct utsname u;
    unsigned f = ks_platform_cpu_features();
    int key;

    if (len > 0) {
        why[0] = '\0';
    }
    if ((f & (KS_CPU_PKU | KS_CPU_OSPKE)) != (KS_CPU_PKU | KS_CPU_OSPKE)) {
        snprintf(why, len, "the CPU lacks%s%s (memory protection keys)",
                 (f & KS_CPU_PKU) ? "" : " pku",
                 (f & KS_CPU_OSPKE) ? "" : " ospke");
        return -1;
    }
    if (uname(&u) != 0
        || ks_platform_kernel_at_least(u.release, KS_KERNEL_MIN_MAJOR,
                                       KS_KERNEL_MIN_MINOR) != 1)
    {
        snprintf(why, len, "kernel %s is older than %u.%u (needs pkey-safe"
                 " signal frames and mseal)", u.release, KS_KERNEL_MIN_MAJOR,
                 KS_KERNEL_MIN_MINOR);
        return -1;
    }
    /* The kernel may still refuse (pkeys disabled, all keys in use). */
    key = pkey_alloc(0, 0);
    if (key < 0) {
        snprintf(why, len, "pkey_alloc() failed: %s", strerror(errno));
        return -1;
    }
    pkey_free(key);
    return 0;
}
