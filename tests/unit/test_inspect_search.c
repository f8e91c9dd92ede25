/*
 * Unit tests of inspect_search.c, the byte search under everything: it
 * finds exactly what a plain reference loop finds (random buffers dense in
 * the interesting bytes, every length and alignment around the SIMD block
 * size), the exact set of encodings (all 65536 two-byte tails after 0F),
 * REX.W in front making XRSTOR64, and it never reads past the buffer (a
 * guard page follows it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "../../inspect/inspect_internal.h"

#define MAXHITS 4096

struct found {
    size_t n;
    size_t pos[MAXHITS];
    int kind[MAXHITS];
};

static int
collect(void *ctx, size_t i, enum inspect_kind kind)
{
    struct found *f = ctx;
    assert_true(f->n < MAXHITS);
    f->pos[f->n] = i;
    f->kind[f->n++] = (int) kind;
    return 0;
}

/* The definition, written out independently of inspect_search.c. */
static int
reference_kind(const uint8_t *b, size_t len, size_t i)
{
    if (i + 3 > len || b[i] != 0x0f)
        return -1;
    unsigned op = b[i + 1], m = b[i + 2];
    unsigned mod = m >> 6, reg = (m >> 3) & 7;
    if (op == 0x01 && m == 0xef)
        return INSPECT_WRPKRU;
    if (op == 0xae && mod != 3 && reg == 5)
        return i > 0 && b[i - 1] >= 0x48 && b[i - 1] <= 0x4f
             ? INSPECT_XRSTOR64 : INSPECT_XRSTOR;
    if (op == 0xc7 && mod != 3 && reg == 3)
        return INSPECT_XRSTORS;
    return -1;
}

static void
compare_with_reference(const uint8_t *b, size_t len)
{
    static struct found f;
    f.n = 0;
    assert_int_equal(insp_search(b, len, collect, &f), 0);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        int kind = reference_kind(b, len, i);
        if (kind < 0)
            continue;
        assert_true(k < f.n);
        assert_int_equal(f.pos[k], i);
        assert_int_equal(f.kind[k], kind);
        k++;
    }
    assert_int_equal(f.n, k);
}

/* Bytes drawn mostly from the ones that matter, so hits are frequent. */
static void
fill_dense(uint8_t *b, size_t len, unsigned *seed)
{
    static const uint8_t interesting[] = {
        0x0f, 0x0f, 0x0f, 0x01, 0xef, 0xae, 0xc7, 0x28, 0x2f, 0x6d, 0xa8,
        0xe8, 0x18, 0x5f, 0x9c, 0xdf, 0x48, 0x4f, 0x41, 0x90,
    };
    for (size_t i = 0; i < len; i++) {
        unsigned r = (unsigned) rand_r(seed);
        b[i] = (r & 3) ? interesting[(r >> 2) % sizeof(interesting)]
                       : (uint8_t) (r >> 8);
    }
}

static void
random_buffers_match_reference(void **state)
{
    (void) state;
    static uint8_t buf[8192 + 64];
    unsigned seed = 12345;
    size_t total = 0;
    for (int round = 0; round < 400; round++) {
        size_t len = (size_t) rand_r(&seed) % 8192;
        size_t align = (size_t) rand_r(&seed) % 64;
        fill_dense(buf + align, len, &seed);
        compare_with_reference(buf + align, len);
        total += len;
    }
    /* every short length and alignment around the 16-byte blocks */
    for (size_t len = 0; len < 80; len++)
        for (size_t align = 0; align < 17; align++) {
            fill_dense(buf + align, len, &seed);
            compare_with_reference(buf + align, len);
        }
    assert_true(total > 1000000);
}

static void
exactly_these_encodings(void **state)
{
    (void) state;
    /* 0f xx yy for every xx, yy, each in its own 4-byte cell behind a nop */
    static uint8_t buf[65536 * 4];
    for (unsigned t = 0; t < 65536; t++) {
        buf[4 * t] = 0x90;
        buf[4 * t + 1] = 0x0f;
        buf[4 * t + 2] = (uint8_t) (t >> 8);
        buf[4 * t + 3] = (uint8_t) t;
    }
    static struct found f;
    f.n = 0;
    assert_int_equal(insp_search(buf, sizeof(buf), collect, &f), 0);
    size_t per_kind[INSPECT_NKINDS] = { 0 };
    for (size_t i = 0; i < f.n; i++)
        per_kind[f.kind[i]]++;
    /* WRPKRU: 01 ef; XRSTOR(S): 3 mods x 8 r/m with reg 5 (3) */
    assert_int_equal(per_kind[INSPECT_WRPKRU], 1);
    assert_int_equal(per_kind[INSPECT_XRSTOR], 24);
    assert_int_equal(per_kind[INSPECT_XRSTORS], 24);
    assert_int_equal(per_kind[INSPECT_XRSTOR64], 0);
    compare_with_reference(buf, sizeof(buf));
}

static void
rex_w_makes_xrstor64(void **state)
{
    (void) state;
    /* built byte by byte at run time: this file's code holds no hit */
    uint8_t b[16];
    volatile uint8_t esc = 0x0f, op = 0xae, modrm = 0x28;
    static const uint8_t rex[] = { 0x48, 0x4f, 0x41, 0x40, 0x66 };
    static const int kind[] = { INSPECT_XRSTOR64, INSPECT_XRSTOR64,
                                INSPECT_XRSTOR, INSPECT_XRSTOR,
                                INSPECT_XRSTOR };
    for (size_t k = 0; k < sizeof(rex); k++) {
        b[0] = rex[k];
        b[1] = esc;
        b[2] = op;
        b[3] = modrm;
        assert_int_equal(insp_match_at(b, 4, 1), kind[k]);
    }
    /* at the very start of a buffer there is no byte before it */
    assert_int_equal(insp_match_at(b + 1, 3, 0), INSPECT_XRSTOR);
    /* cut off by the end of the buffer */
    assert_int_equal(insp_match_at(b, 3, 1), -1);
}

/* A buffer that ends where a PROT_NONE page begins: any read past the
 * end faults.  Every length from 0 to 200, with a sequence cut off at the
 * end and one that just fits. */
static void
never_reads_past_the_end(void **state)
{
    (void) state;
    uint8_t *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + 4096, 4096, PROT_NONE), 0);
    uint8_t *end = m + 4096;
    unsigned seed = 7;
    for (size_t len = 0; len <= 200; len++) {
        fill_dense(end - len, len, &seed);
        if (len >= 2) {                 /* cut off: 0f 01 at the end */
            end[-2] = 0x0f;
            end[-1] = 0x01;
        }
        compare_with_reference(end - len, len);
        if (len >= 3) {                 /* just fits: 0f 01 ef at the end */
            end[-3] = 0x0f;
            end[-2] = 0x01;
            end[-1] = 0xef;
            static struct found f;
            f.n = 0;
            insp_search(end - len, len, collect, &f);
            assert_true(f.n > 0);
            assert_int_equal(f.pos[f.n - 1], len - 3);
        }
    }
    munmap(m, 2 * 4096);
}

static int
stop_at_first(void *ctx, size_t i, enum inspect_kind kind)
{
    (void) kind;
    *(size_t *) ctx = i;
    return 42;
}

static void
callback_can_stop_the_search(void **state)
{
    (void) state;
    static uint8_t buf[4096];
    unsigned seed = 99;
    fill_dense(buf, sizeof(buf), &seed);
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < sizeof(buf) && first == SIZE_MAX; i++)
        if (reference_kind(buf, sizeof(buf), i) >= 0)
            first = i;
    assert_true(first != SIZE_MAX);
    size_t got = SIZE_MAX;
    assert_int_equal(insp_search(buf, sizeof(buf), stop_at_first, &got), 42);
    assert_int_equal(got, first);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_buffers_match_reference),
        cmocka_unit_test(exactly_these_encodings),
        cmocka_unit_test(rex_w_makes_xrstor64),
        cmocka_unit_test(never_reads_past_the_end),
        cmocka_unit_test(callback_can_stop_the_search),
    };

    return cmocka_run_group_tests_name("inspect_search", tests, NULL, NULL);
}
