/*
 * Unit tests of inspect_process on anonymous executable memory, which has
 * no file to take instruction boundaries from and is decoded from the
 * start of its mapping: sequences at offset 0 of a mapping, across pages,
 * across two (and three) mappings with different permissions, an
 * execute-only mapping read through /proc/self/mem, and the controls: the
 * same bytes next to a non-executable page are no hit, and clean code is
 * none either.
 *
 * The byte patterns are copied at run time from the assembled fixtures
 * (inspect_fixtures.S), so that this file's own code holds none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "../../inspect/inspect.h"

extern const char fx_real_wrpkru_hit[], fx_clean[], fx_clean_end[];
extern const char fx_in_imm_wrpkru[7];        /* nop; mov $imm32,%eax; ret */

#define PAGE 4096u
#define NOP 0x90

/* n pages of nops, writable until protect() */
static uint8_t *
map_nops(size_t pages)
{
    uint8_t *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, NOP, pages * PAGE);
    return p;
}

static void
protect(uint8_t *p, size_t pages, int prot)
{
    assert_int_equal(mprotect(p, pages * PAGE, prot), 0);
}

/* wrpkru at p (3 bytes, from the fixture) */
static void
put_wrpkru(uint8_t *p)
{
    memcpy(p, fx_real_wrpkru_hit, 3);
}

/* mov $imm32,%eax whose immediate holds the wrpkru bytes: the 0f is p + 1 */
static void
put_mov_imm_wrpkru(uint8_t *p)
{
    memcpy(p, fx_in_imm_wrpkru + 1, 5);
}

static const struct inspect_hit *
hit_at(const struct inspect_report *r, const void *addr)
{
    for (size_t i = 0; i < r->nhit; i++)
        if (r->hit[i].addr == (uint64_t) (uintptr_t) addr)
            return &r->hit[i];
    return NULL;
}

static size_t
hits_between(const struct inspect_report *r, const void *lo, const void *hi)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nhit; i++)
        n += r->hit[i].addr >= (uintptr_t) lo && r->hit[i].addr < (uintptr_t) hi;
    return n;
}

static void
expect_hit(const struct inspect_report *r, const void *addr,
           enum inspect_class cls, unsigned back, unsigned len)
{
    const struct inspect_hit *h = hit_at(r, addr);
    assert_non_null(h);
    assert_int_equal(h->kind, INSPECT_WRPKRU);
    if (h->cls != cls)
        print_message("class %s\n", inspect_class_name(h->cls));
    assert_int_equal(h->cls, cls);
    assert_int_equal(h->insn_back, back);
    assert_int_equal(h->insn_len, len);
    assert_false(h->safe);
    assert_string_equal(h->object, "[anon]");
    assert_int_equal(h->file_offset, INSPECT_NONE);
    assert_string_equal(h->symbol, "");
}

/* One mapping of three pages: a wrpkru at offset 0; a mov whose immediate
 * crosses from the first page into the second; a wrpkru whose 0f is the
 * last byte of the second page. */
static void
start_of_mapping_and_across_pages(void **state)
{
    (void) state;
    uint8_t *p = map_nops(3);
    put_wrpkru(p);
    put_mov_imm_wrpkru(p + PAGE - 3);           /* 0f at PAGE - 2 */
    put_wrpkru(p + 2 * PAGE - 1);
    protect(p, 3, PROT_READ | PROT_EXEC);

    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    expect_hit(&r, p, INSPECT_REAL, 0, 3);
    expect_hit(&r, p + PAGE - 2, INSPECT_IN_IMM, 1, 5);
    expect_hit(&r, p + 2 * PAGE - 1, INSPECT_REAL, 0, 3);
    assert_int_equal(hits_between(&r, p, p + 3 * PAGE), 3);
    assert_true(r.linear_mappings >= 1);
    assert_int_equal(r.uninspected_pages, 0);
    inspect_report_free(&r);
    munmap(p, 3 * PAGE);
}

/* Three touching mappings, r-x | --x | r-x (so three VMAs): a wrpkru from
 * the first into the second, a mov immediate from the second into the
 * third.  The middle one is execute-only: read through /proc/self/mem. */
static void
across_mappings(void **state)
{
    (void) state;
    uint8_t *p = map_nops(3);
    put_wrpkru(p + PAGE - 1);
    put_mov_imm_wrpkru(p + 2 * PAGE - 3);       /* 0f at 2 * PAGE - 2 */
    protect(p, 1, PROT_READ | PROT_EXEC);
    protect(p + PAGE, 1, PROT_EXEC);
    protect(p + 2 * PAGE, 1, PROT_READ | PROT_EXEC);

    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    expect_hit(&r, p + PAGE - 1, INSPECT_REAL, 0, 3);
    expect_hit(&r, p + 2 * PAGE - 2, INSPECT_IN_IMM, 1, 5);
    assert_int_equal(hits_between(&r, p, p + 3 * PAGE), 2);
    assert_int_equal(r.uninspected_pages, 0);
    assert_true(r.linear_mappings >= 3);
    inspect_report_free(&r);
    munmap(p, 3 * PAGE);
}

/* The control: the same bytes where the rest lies in a non-executable
 * page (execution cannot continue there), or in a hole. */
static void
no_hit_into_non_executable(void **state)
{
    (void) state;
    uint8_t *p = map_nops(3);
    put_wrpkru(p + PAGE - 1);
    put_wrpkru(p + 2 * PAGE - 1);
    protect(p, 1, PROT_READ | PROT_EXEC);       /* then rw- */
    protect(p + 2 * PAGE, 1, PROT_READ | PROT_EXEC);
    assert_int_equal(munmap(p + 3 * PAGE - PAGE, PAGE), 0);  /* a hole */

    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(hits_between(&r, p, p + 3 * PAGE), 0);
    inspect_report_free(&r);

    /* and the positive control: made executable, both pages' hits count */
    protect(p + PAGE, 1, PROT_READ | PROT_EXEC);
    assert_int_equal(inspect_process(&r), 0);
    expect_hit(&r, p + PAGE - 1, INSPECT_REAL, 0, 3);
    assert_int_equal(hits_between(&r, p, p + 3 * PAGE), 1);
    inspect_report_free(&r);
    munmap(p, 2 * PAGE);
}

/* Clean code copied into anonymous memory (the near misses of fx_clean)
 * yields no hit; a wrpkru appended after it does. */
static void
clean_code_has_no_hit(void **state)
{
    (void) state;
    size_t n = (size_t) (fx_clean_end - fx_clean);
    uint8_t *p = map_nops(1);
    memcpy(p, fx_clean, n);
    protect(p, 1, PROT_READ | PROT_EXEC);
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(hits_between(&r, p, p + PAGE), 0);
    inspect_report_free(&r);

    protect(p, 1, PROT_READ | PROT_WRITE);
    put_wrpkru(p + n);
    protect(p, 1, PROT_READ | PROT_EXEC);
    assert_int_equal(inspect_process(&r), 0);
    expect_hit(&r, p + n, INSPECT_REAL, 0, 3);
    assert_int_equal(hits_between(&r, p, p + PAGE), 1);
    inspect_report_free(&r);
    munmap(p, PAGE);
}

/* Writable and executable at once is inspected like any other. */
static void
writable_executable_memory(void **state)
{
    (void) state;
    uint8_t *p = map_nops(1);
    put_mov_imm_wrpkru(p + 100);
    protect(p, 1, PROT_READ | PROT_WRITE | PROT_EXEC);
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    expect_hit(&r, p + 101, INSPECT_IN_IMM, 1, 5);
    inspect_report_free(&r);
    munmap(p, PAGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_of_mapping_and_across_pages),
        cmocka_unit_test(across_mappings),
        cmocka_unit_test(no_hit_into_non_executable),
        cmocka_unit_test(clean_code_has_no_hit),
        cmocka_unit_test(writable_executable_memory),
    };

    return cmocka_run_group_tests_name("inspect_memory", tests, NULL, NULL);
}
