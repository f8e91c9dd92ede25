/*
 * inspect_region.c — a contiguous run of executable bytes and what is known
 * about the code in it: the ranges to decode (executable sections, or the
 * whole mapping for anonymous memory) and the anchors, positions where an
 * instruction is known to start (section and function starts), at which a
 * linear sweep starts again.  Merged and sorted once, searched by binary
 * search for each hit.
 */
#include <stdlib.h>

#include "inspect_internal.h"

static int
grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

int
insp_region_add_code(struct insp_region *r, uint64_t start, uint64_t end)
{
    if (start < r->base)
        start = r->base;
    if (end > r->base + r->len)
        end = r->base + r->len;
    if (start >= end)
        return 0;
    if (grow((void **) &r->code, &r->capcode, r->ncode, sizeof(*r->code)))
        return -1;
    r->code[r->ncode++] = (struct insp_code) { start, end };
    return insp_region_add_anchor(r, start);
}

int
insp_region_add_anchor(struct insp_region *r, uint64_t pos)
{
    if (pos < r->base || pos >= r->base + r->len)
        return 0;
    if (grow((void **) &r->anchor, &r->capanchor, r->nanchor,
             sizeof(*r->anchor)))
        return -1;
    r->anchor[r->nanchor++] = pos;
    return 0;
}

static int
cmp_code(const void *a, const void *b)
{
    const struct insp_code *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* The code range holding pos, or NULL (the ranges are sorted). */
const struct insp_code *
insp_code_at(const struct insp_region *r, uint64_t pos)
{
    size_t lo = 0, hi = r->ncode;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->code[mid].end <= pos)
            lo = mid + 1;
        else if (r->code[mid].start > pos)
            hi = mid;
        else
            return &r->code[mid];
    }
    return NULL;
}

size_t
insp_anchor_before(const struct insp_region *r, uint64_t pos)
{
    size_t lo = 0, hi = r->nanchor;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->anchor[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

uint64_t
insp_anchor_after(const struct insp_region *r, uint64_t pos)
{
    size_t lo = 0, hi = r->nanchor;        /* first anchor > pos */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->anchor[mid] <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->nanchor ? r->anchor[lo] : UINT64_MAX;
}

static bool
code_sorted(const struct insp_region *r)
{
    for (size_t i = 1; i < r->ncode; i++)
        if (r->code[i].start < r->code[i - 1].start)
            return false;
    return true;
}

static bool
anchors_sorted(const struct insp_region *r)
{
    for (size_t i = 1; i < r->nanchor; i++)
        if (r->anchor[i] < r->anchor[i - 1])
            return false;
    return true;
}

int
insp_region_prepare(struct insp_region *r)
{
    if (r->built)
        return 0;
    r->built = true;
    if (r->build && r->build(r, r->build_arg) != 0)
        return -1;

    /* The builders add both in order, so sorting is rarely needed. */
    if (!code_sorted(r))
        qsort(r->code, r->ncode, sizeof(*r->code), cmp_code);
    if (!anchors_sorted(r) && insp_sort_u64(r->anchor, r->nanchor) != 0)
        return -1;

    /* overlapping or touching code ranges become one (a malformed file may
     * declare overlapping sections) */
    size_t n = 0;
    for (size_t i = 0; i < r->ncode; i++) {
        if (n && r->code[i].start <= r->code[n - 1].end) {
            if (r->code[i].end > r->code[n - 1].end)
                r->code[n - 1].end = r->code[i].end;
        } else {
            r->code[n++] = r->code[i];
        }
    }
    r->ncode = n;

    /* anchors: unique, and only where code is decoded */
    n = 0;
    for (size_t i = 0; i < r->nanchor; i++)
        if ((!n || r->anchor[i] != r->anchor[n - 1])
            && insp_code_at(r, r->anchor[i]) != NULL)
            r->anchor[n++] = r->anchor[i];
    r->nanchor = n;
    return 0;
}

void
insp_region_free(struct insp_region *r)
{
    free(r->code);
    free(r->anchor);
    r->code = NULL;
    r->anchor = NULL;
    r->ncode = r->capcode = r->nanchor = r->capanchor = 0;
    r->built = false;
}
