/*
 * Unit tests of the inspector's inputs: the ELF reader (a relocatable .o
 * inspected section by section, symbols and addresses, and no crash or
 * read past the end on truncated or corrupted files: the image ends at a
 * guard page), files that are not ELF, and /proc/self/maps lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../inspect/inspect_internal.h"
#include "../../inspect/inspect_maps.h"

#define NFIXTURES 18                    /* the hits of inspect_fixtures.S */

static char exe[PATH_MAX], fixtures_o[PATH_MAX];

static int
group_setup(void **state)
{
    (void) state;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    /* build/tests/unit/test_inspect_elf -> build/obj/tests/unit/... */
    char dir[PATH_MAX];
    memcpy(dir, exe, sizeof(dir));
    snprintf(fixtures_o, sizeof(fixtures_o),
             "%s/../../obj/tests/unit/inspect_fixtures.o", dirname(dir));
    return 0;
}

/* The file's bytes, placed so that they end where a PROT_NONE page
 * starts.  Returns the start; *map and *maplen to unmap. */
static uint8_t *
load_guarded(const char *path, size_t *size, void **map, size_t *maplen)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    *size = (size_t) st.st_size;
    size_t pages = (*size + 4095) / 4096;
    *maplen = (pages + 1) * 4096;
    *map = mmap(NULL, *maplen, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(*map != MAP_FAILED);
    uint8_t *guard = (uint8_t *) *map + pages * 4096;
    assert_int_equal(mprotect(guard, 4096, PROT_NONE), 0);
    uint8_t *img = guard - *size;
    assert_int_equal(pread(fd, img, *size, 0), (ssize_t) *size);
    close(fd);
    return img;
}

static void
relocatable_object_by_sections(void **state)
{
    (void) state;
    struct inspect_report r = { 0 };
    if (inspect_file(fixtures_o, &r) != 0)
        print_message("%s: %s\n", fixtures_o, strerror(errno));
    assert_int_equal(r.hits, NFIXTURES);
    assert_int_equal(r.by_class[INSPECT_REAL], 6);
    assert_int_equal(r.by_class[INSPECT_SPANNING], 2);
    assert_int_equal(r.by_class[INSPECT_IN_IMM], 5);
    assert_int_equal(r.by_class[INSPECT_IN_DISP], 1);
    assert_int_equal(r.by_class[INSPECT_IN_MODRM_SIB], 2);
    assert_int_equal(r.by_class[INSPECT_IN_OPCODE], 1);
    assert_int_equal(r.by_class[INSPECT_OUTSIDE_CODE], 1);
    /* no program headers: no virtual addresses, offsets within .text */
    for (size_t i = 0; i < r.nhit; i++) {
        assert_int_equal(r.hit[i].addr, INSPECT_NONE);
        assert_string_equal(r.hit[i].section, ".text");
        assert_int_equal(r.hit[i].symbol_offset, 0);
        assert_non_null(strstr(r.hit[i].symbol, "_hit"));
    }
    inspect_report_free(&r);
}

static void
symbols_and_addresses(void **state)
{
    (void) state;
    size_t size, maplen;
    void *map;
    uint8_t *img = load_guarded(exe, &size, &map, &maplen);
    struct insp_elf e;
    assert_int_equal(insp_elf_parse(&e, img, size), 0);
    assert_int_equal(insp_elf_load_symbols(&e), 0);
    const struct insp_elf_symbol *f = insp_elf_symbol_named(&e,
                                                            "fx_real_wrpkru");
    const struct insp_elf_symbol *h = insp_elf_symbol_named(
        &e, "fx_real_wrpkru_hit");
    assert_non_null(f);
    assert_non_null(h);
    assert_int_equal(h->off, f->off + 4);
    /* inside a function: the function; at a label: the label */
    assert_ptr_equal(insp_elf_symbol_at(&e, f->off + 1), f);
    assert_string_equal(insp_elf_symbol_at(&e, h->off)->name,
                        "fx_real_wrpkru_hit");
    assert_string_equal(insp_elf_section_at(&e, h->off)->name, ".text");
    /* symbols are sorted by offset */
    for (size_t i = 1; i < e.nsym; i++)
        assert_true(e.sym[i - 1].off <= e.sym[i].off);
    /* a PIE's text: file offset and virtual address agree here */
    assert_true(insp_elf_vaddr(&e, h->off) != INSPECT_NONE);
    assert_int_equal(insp_elf_vaddr(&e, size + 4096), INSPECT_NONE);
    insp_elf_free(&e);
    munmap(map, maplen);
}

static void
not_elf_files(void **state)
{
    (void) state;
    struct inspect_report r = { 0 };
    char path[] = "/tmp/inspect-not-elf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
    close(fd);
    errno = 0;
    assert_int_equal(inspect_file(path, &r), -1);
    assert_int_equal(errno, ENOEXEC);
    truncate(path, 0);
    assert_int_equal(inspect_file(path, &r), -1);
    unlink(path);
    assert_int_equal(inspect_file(path, &r), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(inspect_file("/", &r), -1);
    assert_int_equal(r.hits, 0);
    inspect_report_free(&r);
}

static int
inspect_copy(const uint8_t *img, size_t size)
{
    struct inspect_report r = { 0 };
    int rc = insp_inspect_image("copy", img, size, &r);
    inspect_report_free(&r);
    return rc;
}

/* Truncated copies: every length in the headers, then spread out. */
static void
truncated_files(void **state)
{
    (void) state;
    size_t size, maplen;
    void *map;
    uint8_t *img = load_guarded(exe, &size, &map, &maplen);
    assert_int_equal(inspect_copy(img, size), 0);
    uint8_t *orig = malloc(size);
    assert_non_null(orig);
    memcpy(orig, img, size);
    uint8_t *end = img + size;          /* the guard page */
    size_t refused = 0, tried = 0;
    for (size_t len = 0; len < size; len += len < 256 ? 1 : 509) {
        memcpy(end - len, orig, len);   /* the copy ends at the guard */
        int rc = inspect_copy(end - len, len);
        if (len < 64)                   /* not even an ELF header */
            assert_int_equal(rc, -1);
        refused += rc != 0;
        tried++;
    }
    /* the section headers are at the end: a cut file is refused */
    print_message("# truncated copies: %zu of %zu refused\n", refused, tried);
    assert_int_equal(refused, tried);
    free(orig);
    munmap(map, maplen);
}

/* Random bytes written over the headers (ELF, program and section
 * headers), many times: each result is success or failure, never a
 * crash or a read past the end. */
static void
corrupted_headers(void **state)
{
    (void) state;
    size_t size, maplen;
    void *map;
    uint8_t *img = load_guarded(exe, &size, &map, &maplen);
    uint8_t *orig = malloc(size);
    assert_non_null(orig);
    memcpy(orig, img, size);
    uint64_t shoff, phoff;
    memcpy(&phoff, orig + 0x20, 8);
    memcpy(&shoff, orig + 0x28, 8);
    assert_true(shoff < size && phoff < size);
    unsigned seed = 2024;
    int ok = 0, failed = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(img, orig, size);
        for (int k = 0; k < 1 + rand_r(&seed) % 4; k++) {
            uint64_t base = (uint64_t[]) { 0, phoff, shoff }[rand_r(&seed) % 3];
            uint64_t at = base + (uint64_t) rand_r(&seed) % 512;
            if (at + 8 > size)
                continue;
            uint64_t v = (uint64_t) rand_r(&seed) << 33
                       ^ (uint64_t) rand_r(&seed);
            if (rand_r(&seed) % 3 == 0)
                v = rand_r(&seed) % 2 ? UINT64_MAX : size - rand_r(&seed) % 64;
            memcpy(img + at, &v, 1 + rand_r(&seed) % 8);
        }
        if (inspect_copy(img, size) == 0)
            ok++;
        else
            failed++;
    }
    print_message("# corrupted copies: %d inspected, %d refused\n", ok,
                  failed);
    assert_true(ok > 0 && failed > 0);
    free(orig);
    munmap(map, maplen);
}

static void
maps_lines(void **state)
{
    (void) state;
    struct insp_mapping m;
    assert_int_equal(insp_maps_parse_line(
        "7f0000001000-7f0000003000 r-xp 00002000 fe:01 1234   "
        "/usr/lib/x86_64-linux-gnu/libfoo.so.1", &m), 0);
    assert_int_equal(m.start, 0x7f0000001000);
    assert_int_equal(m.end, 0x7f0000003000);
    assert_int_equal(m.offset, 0x2000);
    assert_int_equal(m.dev_major, 0xfe);
    assert_int_equal(m.dev_minor, 1);
    assert_int_equal(m.inode, 1234);
    assert_true(m.readable && m.executable);
    assert_string_equal(m.path, "/usr/lib/x86_64-linux-gnu/libfoo.so.1");

    assert_int_equal(insp_maps_parse_line(
        "7f0000001000-7f0000002000 --xp 00000000 00:00 0 ", &m), 0);
    assert_false(m.readable);
    assert_true(m.executable);
    assert_string_equal(m.path, "");

    assert_int_equal(insp_maps_parse_line(
        "7f0000001000-7f0000002000 r-xp 00000000 08:02 77 "
        "/tmp/my lib.so (deleted)", &m), 0);
    assert_string_equal(m.path, "/tmp/my lib.so (deleted)");

    assert_int_equal(insp_maps_parse_line(
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  "
        "[vsyscall]", &m), 0);
    assert_int_equal(m.start, 0xffffffffff600000);
    assert_string_equal(m.path, "[vsyscall]");

    assert_int_equal(insp_maps_parse_line("", &m), -1);
    assert_int_equal(insp_maps_parse_line("garbage", &m), -1);
    assert_int_equal(insp_maps_parse_line(
        "7f0000002000-7f0000001000 r-xp 0 00:00 0", &m), -1);  /* end<start */

    /* this process: only executable mappings, in order, this binary too */
    struct insp_mapping *maps;
    size_t n;
    assert_int_equal(insp_maps_read_executable("/proc/self/maps", &maps, &n),
                     0);
    bool self = false;
    for (size_t i = 0; i < n; i++) {
        assert_true(maps[i].executable);
        if (i)
            assert_true(maps[i].start >= maps[i - 1].end);
        self = self || strcmp(maps[i].path, exe) == 0;
    }
    assert_true(self);
    free(maps);
    assert_int_equal(insp_maps_read_executable("/nonexistent", &maps, &n),
                     -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relocatable_object_by_sections),
        cmocka_unit_test(symbols_and_addresses),
        cmocka_unit_test(not_elf_files),
        cmocka_unit_test(truncated_files),
        cmocka_unit_test(corrupted_headers),
        cmocka_unit_test(maps_lines),
    };

    return cmocka_run_group_tests_name("inspect_elf", tests, group_setup,
                                       NULL);
}
