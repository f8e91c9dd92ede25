/*
 * inspect_sort.c — sort 64-bit keys by LSD radix sort, one byte per pass,
 * skipping the bytes that all keys share.  Symbol tables have tens of
 * thousands of entries and glibc's qsort with a comparison callback cost
 * more than searching the whole file for hits.
 */
#include <stdlib.h>
#include <string.h>

#include "inspect_internal.h"

int
insp_sort_u64(uint64_t *a, size_t n)
{
    if (n < 2)
        return 0;
    uint64_t *tmp = malloc(n * sizeof(*tmp));
    if (!tmp)
        return -1;
    uint64_t *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[256] = { 0 };
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xff]++;
        if (count[(src[0] >> shift) & 0xff] == n)
            continue;                   /* every key has this byte */
        size_t pos = 0;
        for (unsigned d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xff]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof(*a));
    free(tmp);
    return 0;
}
