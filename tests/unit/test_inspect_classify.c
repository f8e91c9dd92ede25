/*
 * Unit tests of the classification engine (inspect_classify.c and
 * inspect_region.c) on byte buffers with hand-set code ranges and anchors:
 * the sweep resynchronises at anchors (a symbol start turns an immediate
 * into a real instruction), skips bytes that do not decode, stops at the
 * next anchor, keeps its place for several hits in one instruction, and
 * calls the region builder only when there is a hit.
 *
 * The byte strings are static const data (not executable), so this
 * binary's code holds no sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../inspect/inspect_internal.h"

#define MAXHITS 16

struct hits {
    size_t n;
    struct insp_raw_hit h[MAXHITS];
};

static int
collect(void *ctx, const struct insp_raw_hit *hit)
{
    struct hits *hs = ctx;
    assert_true(hs->n < MAXHITS);
    hs->h[hs->n++] = *hit;
    return 0;
}

/* Scan bytes at base 0x1000, code [code_lo, code_hi), extra anchors. */
static void
scan(const uint8_t *b, size_t len, uint64_t code_lo, uint64_t code_hi,
     const uint64_t *anchors, size_t nanchors, struct hits *out)
{
    struct insp_region r = { .bytes = b, .base = 0x1000, .len = len };
    if (code_hi > code_lo)
        assert_int_equal(insp_region_add_code(&r, 0x1000 + code_lo,
                                              0x1000 + code_hi), 0);
    for (size_t i = 0; i < nanchors; i++)
        assert_int_equal(insp_region_add_anchor(&r, 0x1000 + anchors[i]), 0);
    out->n = 0;
    assert_int_equal(insp_scan_region(&r, collect, out), 0);
    insp_region_free(&r);
}

static void
expect(const struct insp_raw_hit *h, uint64_t off, enum inspect_class cls,
       unsigned back, unsigned len)
{
    assert_int_equal(h->pos, 0x1000 + off);
    if (h->cls != cls)
        print_message("at %#llx: %s\n", (unsigned long long) off,
                      inspect_class_name(h->cls));
    assert_int_equal(h->cls, cls);
    assert_int_equal(h->insn_back, back);
    assert_int_equal(h->insn_len, len);
}

/* mov $imm32,%eax with the wrpkru bytes in its immediate */
static const uint8_t mov_imm[] = { 0xb8, 0x0f, 0x01, 0xef, 0x00, 0xc3 };

static void
anchor_resynchronises(void **state)
{
    (void) state;
    struct hits hs;
    scan(mov_imm, sizeof(mov_imm), 0, sizeof(mov_imm), NULL, 0, &hs);
    assert_int_equal(hs.n, 1);
    expect(&hs.h[0], 1, INSPECT_IN_IMM, 1, 5);
    /* a function symbol at +1 says an instruction starts there: the
     * sweep restarts at it, and the same bytes are a real WRPKRU; the
     * mov before it, cut by the anchor, is not decoded */
    static const uint64_t at1[] = { 1 };
    scan(mov_imm, sizeof(mov_imm), 0, sizeof(mov_imm), at1, 1, &hs);
    assert_int_equal(hs.n, 1);
    expect(&hs.h[0], 1, INSPECT_REAL, 0, 3);
    /* an anchor at +2 cuts the sequence: nothing holds its first byte */
    static const uint64_t at2[] = { 2 };
    scan(mov_imm, sizeof(mov_imm), 0, sizeof(mov_imm), at2, 1, &hs);
    expect(&hs.h[0], 1, INSPECT_OUTSIDE_CODE, 0, 0);
}

static void
outside_the_code_ranges(void **state)
{
    (void) state;
    struct hits hs;
    /* no code at all (data in an executable segment) */
    scan(mov_imm, sizeof(mov_imm), 0, 0, NULL, 0, &hs);
    assert_int_equal(hs.n, 1);
    expect(&hs.h[0], 1, INSPECT_OUTSIDE_CODE, 0, 0);
    assert_int_equal(hs.h[0].fields, 0);
    /* code ends inside the mov: it does not decode */
    scan(mov_imm, sizeof(mov_imm), 0, 3, NULL, 0, &hs);
    expect(&hs.h[0], 1, INSPECT_OUTSIDE_CODE, 0, 0);
    /* code starts at the 0f */
    scan(mov_imm, sizeof(mov_imm), 1, sizeof(mov_imm), NULL, 0, &hs);
    expect(&hs.h[0], 1, INSPECT_REAL, 0, 3);
}

static void
undecodable_bytes_are_skipped(void **state)
{
    (void) state;
    /* 06 (push %es) and 27 (daa) do not exist in 64-bit mode */
    static const uint8_t b[] = { 0x06, 0x27, 0x0f, 0x01, 0xef, 0xc3 };
    struct hits hs;
    scan(b, sizeof(b), 0, sizeof(b), NULL, 0, &hs);
    assert_int_equal(hs.n, 1);
    expect(&hs.h[0], 2, INSPECT_REAL, 0, 3);
}

static void
several_hits_in_one_instruction(void **state)
{
    (void) state;
    /* movabs $imm64,%rax holding two wrpkru and, after it, an xrstor */
    static const uint8_t b[] = {
        0x90, 0x48, 0xb8, 0x0f, 0x01, 0xef, 0x0f, 0x01, 0xef, 0x00, 0x00,
        0x0f, 0xae, 0x2f, 0xc3,
    };
    struct hits hs;
    scan(b, sizeof(b), 0, sizeof(b), NULL, 0, &hs);
    assert_int_equal(hs.n, 3);
    expect(&hs.h[0], 3, INSPECT_IN_IMM, 2, 10);
    expect(&hs.h[1], 6, INSPECT_IN_IMM, 5, 10);
    expect(&hs.h[2], 11, INSPECT_REAL, 0, 3);
    assert_int_equal(hs.h[2].kind, INSPECT_XRSTOR);
    assert_int_equal(hs.h[0].fields, INSPECT_FIELD_IMM);
}

static void
inside_an_opcode(void **state)
{
    (void) state;
    /* palignr $0xef,(%rcx),%xmm0: its second 0f is an opcode byte (a 0f
     * in a VEX/EVEX payload would be the other way to start in the
     * opcode class, but no valid encoding continues with 01 ef) */
    static const uint8_t b[] = {
        0x66, 0x0f, 0x3a, 0x0f, 0x01, 0xef, 0xc3,
    };
    struct hits hs;
    scan(b, sizeof(b), 0, sizeof(b), NULL, 0, &hs);
    assert_int_equal(hs.n, 1);
    expect(&hs.h[0], 3, INSPECT_IN_OPCODE, 3, 6);
    assert_int_equal(hs.h[0].fields, INSPECT_FIELD_OPCODE
                     | INSPECT_FIELD_MODRM | INSPECT_FIELD_IMM);
}

static int builds;

static int
count_build(struct insp_region *r, void *arg)
{
    (void) arg;
    builds++;
    return insp_region_add_code(r, r->base, r->base + r->len);
}

static void
builder_runs_only_on_a_hit(void **state)
{
    (void) state;
    static const uint8_t clean[] = { 0x90, 0x0f, 0x01, 0xee, 0xc3 };
    struct hits hs = { 0 };
    struct insp_region r = { .bytes = clean, .base = 0, .len = sizeof(clean),
                             .build = count_build };
    builds = 0;
    assert_int_equal(insp_scan_region(&r, collect, &hs), 0);
    assert_int_equal(builds, 0);                /* rdpkru: no hit */
    insp_region_free(&r);

    r = (struct insp_region) { .bytes = mov_imm, .base = 0,
                               .len = sizeof(mov_imm), .build = count_build };
    assert_int_equal(insp_scan_region(&r, collect, &hs), 0);
    assert_int_equal(builds, 1);
    assert_int_equal(hs.n, 1);
    assert_int_equal(hs.h[0].cls, INSPECT_IN_IMM);
    /* the full sweep of the bench builds too, and counts instructions */
    assert_int_equal(insp_decode_all(&r), 2);   /* mov, ret */
    assert_int_equal(builds, 1);
    insp_region_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anchor_resynchronises),
        cmocka_unit_test(outside_the_code_ranges),
        cmocka_unit_test(undecodable_bytes_are_skipped),
        cmocka_unit_test(several_hits_in_one_instruction),
        cmocka_unit_test(inside_an_opcode),
        cmocka_unit_test(builder_runs_only_on_a_hit),
    };

    return cmocka_run_group_tests_name("inspect_classify", tests, NULL, NULL);
}
