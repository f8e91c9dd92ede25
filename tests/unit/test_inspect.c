/*
 * Unit tests of inspect/: the hand-made cases of inspect_fixtures.S (real
 * instructions, sequences spanning instructions, inside an opcode, ModRM,
 * SIB, displacement or immediate, across pages, cut off by a function
 * start) are found and classified the same way in this binary's file
 * (inspect_file, offline) and in its memory (inspect_process), and nothing
 * else in the binary is a hit: not the near misses of the control, not the
 * inspector's own code.  Then the gate registry: a real instruction at a
 * registered site is safe, nothing else is.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../inspect/inspect.h"

extern const char fx_begin[], fx_end[], fx_clean[], fx_clean_end[];
extern const char fx_real_wrpkru[], fx_real_wrpkru_hit[];
extern const char fx_real_xrstor_hit[], fx_real_xrstor64_hit[];
extern const char fx_real_xrstors_hit[], fx_real_prefixed_hit[];
extern const char fx_span_wrpkru_hit[], fx_span_xrstor_hit[];
extern const char fx_in_imm_wrpkru_hit[], fx_in_disp_wrpkru_hit[];
extern const char fx_in_modrm_hit[], fx_in_sib_hit[], fx_in_opcode_hit[];
extern const char fx_in_imm_xrstor_hit[], fx_in_imm_xrstor64_hit[];
extern const char fx_in_imm_xrstors_hit[], fx_cut_hit[];
extern const char fx_page_imm_hit[], fx_page_real_hit[];

#define F(x) INSPECT_FIELD_##x
#define K(x) INSPECT_##x
#define C(x) INSPECT_##x

static const struct expect {
    const char *name;
    const char *addr;
    enum inspect_kind kind;
    enum inspect_class cls;
    uint8_t fields, back, len;
} expected[] = {
    { "fx_real_wrpkru_hit", fx_real_wrpkru_hit, K(WRPKRU), C(REAL),
      F(OPCODE) | F(MODRM), 0, 3 },
    { "fx_real_xrstor_hit", fx_real_xrstor_hit, K(XRSTOR), C(REAL),
      F(OPCODE) | F(MODRM), 0, 3 },
    { "fx_real_xrstor64_hit", fx_real_xrstor64_hit, K(XRSTOR64), C(REAL),
      F(OPCODE) | F(MODRM), 1, 4 },
    { "fx_real_xrstors_hit", fx_real_xrstors_hit, K(XRSTORS), C(REAL),
      F(OPCODE) | F(MODRM), 0, 3 },
    { "fx_real_prefixed_hit", fx_real_prefixed_hit, K(XRSTOR64), C(REAL),
      F(OPCODE) | F(MODRM), 2, 5 },
    { "fx_span_wrpkru_hit", fx_span_wrpkru_hit, K(WRPKRU), C(SPANNING),
      F(IMM), 1, 2 },
    { "fx_span_xrstor_hit", fx_span_xrstor_hit, K(XRSTOR), C(SPANNING),
      F(IMM), 1, 2 },
    { "fx_in_imm_wrpkru_hit", fx_in_imm_wrpkru_hit, K(WRPKRU), C(IN_IMM),
      F(IMM), 1, 5 },
    { "fx_in_disp_wrpkru_hit", fx_in_disp_wrpkru_hit, K(WRPKRU), C(IN_DISP),
      F(DISP), 2, 6 },
    { "fx_in_modrm_hit", fx_in_modrm_hit, K(WRPKRU), C(IN_MODRM_SIB),
      F(MODRM) | F(IMM), 1, 6 },
    { "fx_in_sib_hit", fx_in_sib_hit, K(WRPKRU), C(IN_MODRM_SIB),
      F(SIB) | F(DISP), 2, 7 },
    { "fx_in_opcode_hit", fx_in_opcode_hit, K(WRPKRU), C(IN_OPCODE),
      F(OPCODE) | F(MODRM) | F(IMM), 3, 6 },
    { "fx_in_imm_xrstor_hit", fx_in_imm_xrstor_hit, K(XRSTOR), C(IN_IMM),
      F(IMM), 1, 5 },
    { "fx_in_imm_xrstor64_hit", fx_in_imm_xrstor64_hit, K(XRSTOR64),
      C(IN_IMM), F(IMM), 7, 10 },
    { "fx_in_imm_xrstors_hit", fx_in_imm_xrstors_hit, K(XRSTORS), C(IN_IMM),
      F(IMM), 1, 5 },
    { "fx_cut_hit", fx_cut_hit, K(WRPKRU), C(OUTSIDE_CODE), 0, 0, 0 },
    { "fx_page_imm_hit", fx_page_imm_hit, K(WRPKRU), C(IN_IMM), F(IMM), 1,
      5 },
    { "fx_page_real_hit", fx_page_real_hit, K(WRPKRU), C(REAL),
      F(OPCODE) | F(MODRM), 0, 3 },
};
#define NEXPECTED (sizeof(expected) / sizeof(*expected))

static char exe[PATH_MAX];

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int
group_setup(void **state)
{
    (void) state;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    return 0;
}

static int
reset_gates(void **state)
{
    (void) state;
    inspect_gate_reset();
    return 0;
}

static void
check_hit(const struct inspect_hit *h, const struct expect *e)
{
    if (h->kind != e->kind || h->cls != e->cls || h->fields != e->fields
        || h->insn_back != e->back || h->insn_len != e->len)
        print_message("%s: kind %s class %s fields %#x insn -%u+%u\n",
                      e->name, inspect_kind_name(h->kind),
                      inspect_class_name(h->cls), h->fields, h->insn_back,
                      h->insn_len);
    assert_int_equal(h->kind, e->kind);
    assert_int_equal(h->cls, e->cls);
    assert_int_equal(h->fields, e->fields);
    assert_int_equal(h->insn_back, e->back);
    assert_int_equal(h->insn_len, e->len);
}

/* The hit of this binary's file named by its label (symbol + 0). */
static const struct inspect_hit *
file_hit(const struct inspect_report *r, const char *label)
{
    for (size_t i = 0; i < r->nhit; i++)
        if (strcmp(r->hit[i].symbol, label) == 0
            && r->hit[i].symbol_offset == 0)
            return &r->hit[i];
    return NULL;
}

static const struct inspect_hit *
memory_hit(const struct inspect_report *r, const void *addr)
{
    for (size_t i = 0; i < r->nhit; i++)
        if (r->hit[i].addr == (uint64_t) (uintptr_t) addr)
            return &r->hit[i];
    return NULL;
}

static size_t
hits_in_object(const struct inspect_report *r, const char *object)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nhit; i++)
        n += strcmp(r->hit[i].object, object) == 0;
    return n;
}

static void
fixtures_found_in_the_file(void **state)
{
    (void) state;
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_file(exe, &r), 0);
    for (size_t i = 0; i < NEXPECTED; i++) {
        const struct inspect_hit *h = file_hit(&r, expected[i].name);
        if (!h)
            print_message("missing: %s\n", expected[i].name);
        assert_non_null(h);
        check_hit(h, &expected[i]);
        assert_false(h->safe);
        assert_string_equal(h->section, ".text");
        assert_int_not_equal(h->file_offset, INSPECT_NONE);
        assert_int_not_equal(h->addr, INSPECT_NONE);
    }
    /* nothing else: not the near misses of fx_clean, not the inspector */
    assert_int_equal(r.hits, NEXPECTED);
    assert_int_equal(r.unsafe, NEXPECTED);
    assert_false(inspect_report_clean(&r));
    assert_true(r.pages > 0);
    inspect_report_free(&r);
}

static void
fixtures_found_in_memory(void **state)
{
    (void) state;
    struct inspect_report file = { 0 }, mem = { 0 };
    assert_int_equal(inspect_file(exe, &file), 0);
    assert_int_equal(inspect_process(&mem), 0);
    uint64_t bias = 0;
    for (size_t i = 0; i < NEXPECTED; i++) {
        const struct inspect_hit *h = memory_hit(&mem, expected[i].addr);
        if (!h)
            print_message("missing in memory: %s\n", expected[i].name);
        assert_non_null(h);
        check_hit(h, &expected[i]);
        assert_false(h->safe);
        assert_string_equal(h->object, exe);
        assert_string_equal(h->symbol, expected[i].name);
        /* the same place as in the file, at one load bias */
        const struct inspect_hit *f = file_hit(&file, expected[i].name);
        assert_non_null(f);
        assert_int_equal(h->file_offset, f->file_offset);
        if (i == 0)
            bias = h->addr - f->addr;
        assert_int_equal(h->addr - f->addr, bias);
    }
    assert_int_equal(hits_in_object(&mem, exe), NEXPECTED);
    assert_true(mem.mappings >= 4);     /* this binary, libc, ld.so, vDSO */
    assert_int_equal(mem.uninspected_pages, 0);
    inspect_report_free(&file);
    inspect_report_free(&mem);
}

/* The near-miss control holds no hit, and it lies outside the fixtures. */
static void
near_misses_are_not_hits(void **state)
{
    (void) state;
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    for (size_t i = 0; i < r.nhit; i++) {
        assert_false(r.hit[i].addr >= (uintptr_t) fx_clean
                     && r.hit[i].addr < (uintptr_t) fx_clean_end);
        if (strcmp(r.hit[i].object, exe) == 0)
            assert_true(r.hit[i].addr >= (uintptr_t) fx_begin
                        && r.hit[i].addr < (uintptr_t) fx_end);
    }
    inspect_report_free(&r);
}

static const struct inspect_hit *
expect_safety(const struct inspect_report *r, const void *addr, bool safe)
{
    const struct inspect_hit *h = memory_hit(r, addr);
    assert_non_null(h);
    assert_int_equal(h->safe, safe);
    return h;
}

static void
gate_by_address(void **state)
{
    (void) state;
    struct inspect_report before = { 0 }, after = { 0 };
    assert_int_equal(inspect_process(&before), 0);
    assert_int_equal(inspect_gate_add_address(fx_real_wrpkru_hit), 0);
    /* neither a hit that is not a real instruction nor a function start
     * next to a real one can be a gate */
    assert_int_equal(inspect_gate_add_address(fx_in_imm_wrpkru_hit), 0);
    assert_int_equal(inspect_gate_add_address(fx_real_wrpkru), 0);
    assert_int_equal(inspect_process(&after), 0);
    expect_safety(&after, fx_real_wrpkru_hit, true);
    expect_safety(&after, fx_in_imm_wrpkru_hit, false);
    expect_safety(&after, fx_real_xrstor_hit, false);
    assert_int_equal(after.hits, before.hits);
    assert_int_equal(after.unsafe, before.unsafe - 1);
    inspect_report_free(&before);
    inspect_report_free(&after);
}

static void
gate_by_symbol(void **state)
{
    (void) state;
    /* the positive case, and controls: another object's name, and a
     * symbol at a hit that is not a real instruction */
    assert_int_equal(inspect_gate_add_symbol(base_name(exe),
                                             "fx_real_xrstor_hit"), 0);
    assert_int_equal(inspect_gate_add_symbol("libother.so",
                                             "fx_real_wrpkru_hit"), 0);
    assert_int_equal(inspect_gate_add_symbol(NULL, "fx_in_imm_wrpkru_hit"),
                     0);
    struct inspect_report file = { 0 }, mem = { 0 };
    assert_int_equal(inspect_file(exe, &file), 0);
    assert_true(file_hit(&file, "fx_real_xrstor_hit")->safe);
    assert_false(file_hit(&file, "fx_real_wrpkru_hit")->safe);
    assert_false(file_hit(&file, "fx_in_imm_wrpkru_hit")->safe);
    assert_int_equal(file.unsafe, NEXPECTED - 1);
    /* the same in memory: the symbol is found in the mapped file */
    assert_int_equal(inspect_process(&mem), 0);
    expect_safety(&mem, fx_real_xrstor_hit, true);
    expect_safety(&mem, fx_real_wrpkru_hit, false);
    inspect_report_free(&file);
    inspect_report_free(&mem);

    /* any object (NULL) */
    inspect_gate_reset();
    assert_int_equal(inspect_gate_add_symbol(NULL, "fx_page_real_hit"), 0);
    assert_int_equal(inspect_file(exe, &file), 0);
    assert_true(file_hit(&file, "fx_page_real_hit")->safe);
    assert_int_equal(file.unsafe, NEXPECTED - 1);
    inspect_report_free(&file);
}

static void
gate_registry_limits(void **state)
{
    (void) state;
    assert_int_equal(inspect_gate_add_symbol(NULL, ""), -1);
    assert_int_equal(inspect_gate_add_symbol(NULL, NULL), -1);
    assert_int_equal(inspect_gate_add_keystore("libkeystore.so"), 0);
    int added = 2;
    while (inspect_gate_add_symbol(NULL, "fx_real_wrpkru_hit") == 0)
        added++;
    assert_int_equal(added, 16);
    while (inspect_gate_add_address(fx_end) == 0)
        added++;
    assert_int_equal(added, 16 + 64);
    /* full: nothing changed for the fixtures that were not registered */
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_file(exe, &r), 0);
    assert_int_equal(r.unsafe, NEXPECTED - 1);
    inspect_report_free(&r);
    inspect_gate_reset();
    assert_int_equal(inspect_file(exe, &r), 0);
    assert_int_equal(r.unsafe, NEXPECTED);
    inspect_report_free(&r);
}

static void
names(void **state)
{
    (void) state;
    assert_string_equal(inspect_kind_name(INSPECT_XRSTOR64), "XRSTOR64");
    assert_string_equal(inspect_class_name(INSPECT_IN_MODRM_SIB),
                        "in-modrm-sib");
    assert_string_equal(inspect_class_name(INSPECT_NCLASSES), "?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(fixtures_found_in_the_file, reset_gates),
        cmocka_unit_test_setup(fixtures_found_in_memory, reset_gates),
        cmocka_unit_test_setup(near_misses_are_not_hits, reset_gates),
        cmocka_unit_test_setup(gate_by_address, reset_gates),
        cmocka_unit_test_setup(gate_by_symbol, reset_gates),
        cmocka_unit_test_setup(gate_registry_limits, reset_gates),
        cmocka_unit_test(names),
    };

    return cmocka_run_group_tests_name("inspect", tests, group_setup, NULL);
}
