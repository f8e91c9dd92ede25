/* ks_range: T ranges and the U-pointer check.  See ks_range.h. */

#include "ks_range.h"

struct ks_range {
    uintptr_t  start;
    uintptr_t  end;                         /* exclusive; start < end */
};

static struct ks_range  ranges[KS_RANGE_MAX];
static unsigned         nranges;

int
ks_range_add(const void *base, size_t len)
{
    uintptr_t start = (uintptr_t) base;

    if (len == 0 || len > UINTPTR_MAX - start || nranges >= KS_RANGE_MAX) {
        return -1;
    }
    ranges[nranges].start = start;
    ranges[nranges].end = start + len;
    nranges++;
    return 0;
}

int
ks_range_u_ok(const void *p, size_t len)
{
    uintptr_t start = (uintptr_t) p, end;
    unsigned i;

    if (len == 0) {
        /* nothing is read or written; still refuse a pointer into T so a
         * later change that does use it cannot go wrong silently */
        return p == NULL || !ks_range_in_t(p);
    }
    if (p == NULL || len > KS_ARG_LEN_MAX || start >= KS_USER_ADDR_END
        || len > KS_USER_ADDR_END - start)
    {
        return 0;
    }
    end = start + len;                      /* cannot wrap: checked above */

    for (i = 0; i < nranges; i++) {
        if (start < ranges[i].end && ranges[i].start < end) {
            return 0;
        }
    }
    return 1;
}

int
ks_range_in_t(const void *p)
{
    uintptr_t a = (uintptr_t) p;
    unsigned i;

    for (i = 0; i < nranges; i++) {
        if (a >= ranges[i].start && a < ranges[i].end) {
            return 1;
        }
    }
    return 0;
}

int
ks_range_get(unsigned i, uintptr_t *start, size_t *len)
{
    if (i >= nranges) {
        return -1;
    }
    *start = ranges[i].start;
    *len = ranges[i].end - ranges[i].start;
    return 0;
}
