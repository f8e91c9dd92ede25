/*
 * Unit tests of the dynamic rewriter's construction (inspect_span.c,
 * inspect_reloc.c, inspect_check.c, inspect_tramp.c, inspect_patch.c,
 * inspect_rewrite.c) on hand-made code in anonymous executable memory.
 * They need no MPK: a rewritten WRPKRU or XRSTOR cannot run here (WRPKRU
 * and RDPKRU fault without OSPKE), so these tests check bytes, structure,
 * permissions and the inspector's verdicts; test_rewrite runs the
 * rewritten code in the QEMU guest.  One thing does run here: the check
 * that follows a WRPKRU, which uses no PKRU instruction at all, on every
 * protection key and on PKRU values that must pass and must abort.
 *
 * The code blocks are stored XOR-ed with a key the compiler cannot see,
 * so that no WRPKRU/XRSTOR byte string is anywhere in this binary, not
 * even as an immediate the compiler folded into code.
 *
 * The other classes (ERIM's rules for a sequence across instructions or
 * inside one) do run here: the runnable blocks of inspect_run_blocks.inc
 * execute no PKRU write when entered at their start.  Each is copied into
 * anonymous executable memory twice, one copy is rewritten, and both run
 * with the same random registers, flags and memory: the results must be
 * the same, the rule must be the one expected, and nothing unsafe may be
 * left in the block's page or in its trampoline.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cpuid.h>
#include <cmocka.h>

#include "../../inspect/inspect_rewrite.h"
#include "inspect_run_blocks.h"

#define PAGE 4096u
#define K 0x5a                      /* the XOR of the stored blocks */
#define X(b) ((uint8_t) ((b) ^ K))
#define PKEY 1

/* ---- blocks ------------------------------------------------------------- */

/* wrpkru; xor %eax,%eax; ret  (libc's pkey_set ends like this) */
static const uint8_t blk_pkey_set[] = { X(0x0f), X(0x01), X(0xef), X(0x31),
                                        X(0xc0), X(0xc3) };
/* wrpkru; mov 0x7f6(%rip),%rax (= +0x800); ret */
static const uint8_t blk_riprel[] = { X(0x0f), X(0x01), X(0xef), X(0x48),
                                      X(0x8b), X(0x05), X(0xf6), X(0x07),
                                      X(0x00), X(0x00), X(0xc3) };
/* wrpkru; jmp +0x10 (rel8); then je +0x20 in a second block */
static const uint8_t blk_jmp8[] = { X(0x0f), X(0x01), X(0xef), X(0xeb),
                                    X(0x10) };
static const uint8_t blk_je8[] = { X(0x0f), X(0x01), X(0xef), X(0x74),
                                   X(0x20) };
/* wrpkru; nop x4; jmp back to +4 (inside the span) */
static const uint8_t blk_branch_in[] = { X(0x0f), X(0x01), X(0xef), X(0x90),
                                         X(0x90), X(0x90), X(0x90), X(0xeb),
                                         X(0xfb) };
/* wrpkru; nop; nop; ret: a function starts at +3 */
static const uint8_t blk_nops[] = { X(0x0f), X(0x01), X(0xef), X(0x90),
                                    X(0x90), X(0xc3) };
/* wrpkru; call +0: the call ends the span (emulated) */
static const uint8_t blk_call[] = { X(0x0f), X(0x01), X(0xef), X(0xe8),
                                    X(0x00), X(0x00), X(0x00), X(0x00) };
/* call +3 (the ret); wrpkru; ret: a function starts at +8, so the span is
 * taken backwards and the call is not its last instruction */
static const uint8_t blk_call_first[] = { X(0xe8), X(0x03), X(0x00),
                                          X(0x00), X(0x00), X(0x0f),
                                          X(0x01), X(0xef), X(0xc3) };
/* wrpkru; ret (the code ends after it) */
static const uint8_t blk_short[] = { X(0x0f), X(0x01), X(0xef), X(0xc3) };
/* xrstor (%rdi); mov %rsi,%rax; ret */
static const uint8_t blk_xrstor[] = { X(0x0f), X(0xae), X(0x2f), X(0x48),
                                      X(0x89), X(0xf0), X(0xc3) };
/* xrstor64 (%rdi); mov %rsi,%rax; ret */
static const uint8_t blk_xrstor64[] = { X(0x48), X(0x0f), X(0xae), X(0x2f),
                                        X(0x48), X(0x89), X(0xf0), X(0xc3) };

static void
unxor(uint8_t *dst, const uint8_t *src, size_t n)
{
    uint8_t k = K;
    __asm__ volatile ("" : "+r" (k));       /* unknown to the compiler */
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ k;
}

/* A page of int3 with the block at offset 0, r-x. */
static uint8_t *
code_page(const uint8_t *blk, size_t n)
{
    uint8_t *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0xcc, PAGE);
    unxor(p, blk, n);
    assert_int_equal(mprotect(p, PAGE, PROT_READ | PROT_EXEC), 0);
    return p;
}

static uint64_t
addr(const void *p)
{
    return (uint64_t) (uintptr_t) p;
}

static int32_t
rel32_at(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The target of the jmp/jcc rel32 whose displacement is at p. */
static uint64_t
target_of(const uint8_t *disp)
{
    return addr(disp + 4) + (uint64_t) (int64_t) rel32_at(disp);
}

/* ---- the rewriter on one block ------------------------------------------ */

static char last_log[1024];

static void
keep_log(void *ctx, const char *line)
{
    (void) ctx;
    snprintf(last_log, sizeof(last_log), "%s", line);
}

/* Plan and commit the rewrite of the real instruction at p + site_off,
 * with the page as one code range; extra anchors (offsets) as given.
 * What insp_rewriter_plan returned; on 0 the commit must succeed. */
static int
rewrite_block(uint8_t *p, size_t site_off, const size_t *anchors,
              size_t nanchors, size_t code_len, enum inspect_kind kind)
{
    struct insp_region r = { .bytes = p, .base = addr(p), .len = PAGE };
    assert_int_equal(insp_region_add_code(&r, addr(p), addr(p) + code_len),
                     0);
    for (size_t i = 0; i < nanchors; i++)
        assert_int_equal(insp_region_add_anchor(&r, addr(p) + anchors[i]), 0);
    assert_int_equal(insp_region_prepare(&r), 0);

    struct insp_rewriter w;
    struct inspect_rewrite info = { .kind = kind,
                                    .file_offset = INSPECT_NONE };
    snprintf(info.object, sizeof(info.object), "[anon]");
    insp_rewriter_init(&w, PKEY);
    last_log[0] = '\0';
    inspect_set_log(keep_log, NULL);
    int rc = insp_rewriter_plan(&w, &r, addr(p) + site_off, &info);
    if (rc == 0)
        assert_int_equal(insp_rewriter_commit(&w), 1);
    else
        assert_int_equal(w.refused, 1);
    inspect_set_log(NULL, NULL);
    insp_rewriter_free(&w);
    insp_region_free(&r);
    return rc;
}

/* The most recent rewrite (inspect_rewrites). */
static const struct inspect_rewrite *
last_rewrite(void)
{
    size_t n;
    const struct inspect_rewrite *all = inspect_rewrites(&n);
    assert_true(n > 0);
    return &all[n - 1];
}

/* What a check for pkey emits, as a length (addresses do not change it). */
static size_t
check_len(enum inspect_kind kind)
{
    uint8_t buf[INSP_CHECK_MAX];
    return insp_emit_check(kind, PKEY, buf, 0x100000, 0x100800, 10,
                           0x100000);
}

/* Permissions of the mapping holding a, from /proc/self/maps; and that no
 * mapping of this process is writable and executable. */
static void
perms_of(uint64_t a, char perms[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    perms[0] = '\0';
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char pm[5];
        assert_int_equal(sscanf(line, "%lx-%lx %4s", &lo, &hi, pm), 3);
        assert_false(pm[1] == 'w' && pm[2] == 'x');
        if (a >= lo && a < hi)
            memcpy(perms, pm, 5);
    }
    fclose(f);
}

/* ---- structure ---------------------------------------------------------- */

static void
pkey_set_tail_rewritten(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_pkey_set, sizeof(blk_pkey_set));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
    assert_non_null(strstr(last_log, "rewrote WRPKRU"));

    /* the span (wrpkru; xor) is one jmp; the ret is untouched */
    assert_int_equal(p[0], 0xe9);
    assert_int_equal(p[5], 0xc3);
    const uint8_t *t = (const uint8_t *) (uintptr_t) target_of(p + 1);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->site, addr(p));
    assert_int_equal(w->span, 5);
    assert_int_equal(w->trampoline, addr(t));
    assert_int_equal(w->checked_site, addr(t));

    /* wrpkru, its check, the xor, the jump back to the ret */
    size_t c = check_len(INSPECT_WRPKRU);
    uint8_t wr[3];
    unxor(wr, blk_pkey_set, 3);
    assert_memory_equal(t, wr, 3);
    assert_int_equal(t[3 + c], 0x31);
    assert_int_equal(t[4 + c], 0xc0);
    assert_int_equal(t[5 + c], 0xe9);
    assert_int_equal(target_of(t + 6 + c), addr(p + 5));
    assert_int_equal(w->trampoline_len, 10 + c);
    assert_int_equal(t[-1], 0xcc);                  /* int3 around it */
    assert_int_equal(t[10 + c], 0xcc);

    /* trampoline page r-x, its data page r--, nothing W+X anywhere */
    char perms[5];
    perms_of(addr(t), perms);
    assert_string_equal(perms, "r-xp");
    perms_of((addr(t) & ~(uint64_t) (PAGE - 1)) + PAGE, perms);
    assert_string_equal(perms, "r--p");
    perms_of(addr(p), perms);
    assert_string_equal(perms, "r-xp");             /* patched in place */
    assert_true(labs((long) (addr(t) - addr(p))) < (1L << 30));
}

static size_t
unsafe_between(const struct inspect_report *r, uint64_t lo, uint64_t hi)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nhit; i++)
        n += !r->hit[i].safe && r->hit[i].addr >= lo && r->hit[i].addr < hi;
    return n;
}

static const struct inspect_hit *
hit_at(const struct inspect_report *r, uint64_t a)
{
    for (size_t i = 0; i < r->nhit; i++)
        if (r->hit[i].addr == a)
            return &r->hit[i];
    return NULL;
}

/* The re-scan: the old site is gone, the checked copy is a safe real hit
 * (the second rule) — and unsafe again once its bytes change. */
static void
rescan_sees_rewritten_site(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_pkey_set, sizeof(blk_pkey_set));
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(unsafe_between(&r, addr(p), addr(p) + PAGE), 1);
    inspect_report_free(&r);

    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(unsafe_between(&r, addr(p), addr(p) + PAGE), 0);
    const struct inspect_hit *h = hit_at(&r, w->checked_site);
    assert_non_null(h);
    assert_int_equal(h->cls, INSPECT_REAL);
    assert_true(h->safe);
    inspect_report_free(&r);

    /* control: one byte of the trampoline changed (the jump back's last
     * displacement byte), and the site is no longer trusted */
    uint64_t last = w->trampoline + w->trampoline_len - 1;
    uint8_t old = *(const uint8_t *) (uintptr_t) last, flip = old ^ 1;
    assert_int_equal(insp_text_write(last, &flip, 1), 0);
    assert_int_equal(inspect_process(&r), 0);
    h = hit_at(&r, w->checked_site);
    assert_non_null(h);
    assert_false(h->safe);
    inspect_report_free(&r);
    assert_int_equal(insp_text_write(last, &old, 1), 0);
    assert_int_equal(inspect_process(&r), 0);
    assert_true(hit_at(&r, w->checked_site)->safe);
    inspect_report_free(&r);
}

static void
rip_relative_relocated(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_riprel, sizeof(blk_riprel));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE / 2, INSPECT_WRPKRU),
                     0);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->span, 10);                  /* wrpkru + the mov */
    for (int i = 5; i < 10; i++)
        assert_int_equal(p[i], 0xcc);
    const uint8_t *mov = (const uint8_t *) (uintptr_t) w->trampoline + 3
                       + check_len(INSPECT_WRPKRU);
    assert_int_equal(mov[0], 0x48);
    assert_int_equal(mov[1], 0x8b);
    assert_int_equal(mov[2], 0x05);
    /* the same absolute address, from the trampoline */
    assert_int_equal(target_of(mov + 3), addr(p + 0x800));
    assert_int_equal(mov[7], 0xe9);
    assert_int_equal(target_of(mov + 8), addr(p + 10));
}

static void
rel8_branches_widened(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_jmp8, sizeof(blk_jmp8));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
    const uint8_t *j = (const uint8_t *) (uintptr_t) last_rewrite()->trampoline
                     + 3 + check_len(INSPECT_WRPKRU);
    assert_int_equal(j[0], 0xe9);                   /* jmp rel32 */
    assert_int_equal(target_of(j + 1), addr(p + 5 + 0x10));

    p = code_page(blk_je8, sizeof(blk_je8));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
    j = (const uint8_t *) (uintptr_t) last_rewrite()->trampoline + 3
      + check_len(INSPECT_WRPKRU);
    assert_int_equal(j[0], 0x0f);                   /* je rel32 */
    assert_int_equal(j[1], 0x84);
    assert_int_equal(target_of(j + 2), addr(p + 5 + 0x20));
    assert_int_equal(j[6], 0xe9);                   /* not taken: back */
    assert_int_equal(target_of(j + 7), addr(p + 5));
}

static void
xrstor_rewritten(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_xrstor, sizeof(blk_xrstor));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_XRSTOR), 0);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->span, 6);                   /* xrstor + mov */
    assert_int_equal(p[5], 0xcc);
    assert_int_equal(p[6], 0xc3);
    const uint8_t *t = (const uint8_t *) (uintptr_t) w->trampoline;
    uint8_t x[3];
    unxor(x, blk_xrstor, 3);
    assert_memory_equal(t, x, 3);
    /* below the red zone, save, rdpkru, test the AD bit */
    static const uint8_t head[] = { 0x48, 0x8d, 0x64, 0x24, 0x80, 0x9c,
                                    0x50, 0x51, 0x52, 0x31, 0xc9 };
    assert_memory_equal(t + 3, head, sizeof(head));
    assert_int_equal(t[3 + sizeof(head) + 3], 0xa9);
    assert_int_equal(rel32_at(t + 3 + sizeof(head) + 4), 1 << (2 * PKEY));
    size_t c = check_len(INSPECT_XRSTOR);
    static const uint8_t tail[] = { 0x5a, 0x59, 0x58, 0x9d, 0x48, 0x8d,
                                    0xa4, 0x24, 0x80, 0, 0, 0 };
    assert_memory_equal(t + 3 + c - sizeof(tail), tail, sizeof(tail));
    static const uint8_t mov[] = { 0x48, 0x89, 0xf0 };
    assert_memory_equal(t + 3 + c, mov, 3);
    assert_int_equal(target_of(t + 3 + c + 4), addr(p + 6));

    /* XRSTOR64: the site is its REX.W, and the copy keeps it */
    p = code_page(blk_xrstor64, sizeof(blk_xrstor64));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_XRSTOR64),
                     0);
    w = last_rewrite();
    assert_int_equal(w->span, 7);
    t = (const uint8_t *) (uintptr_t) w->trampoline;
    assert_int_equal(t[0], 0x48);
    assert_int_equal(t[1], 0x0f);

    /* the inspector agrees with both */
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(unsafe_between(&r, addr(p), addr(p) + PAGE), 0);
    assert_true(hit_at(&r, w->checked_site + 1)->safe);
    inspect_report_free(&r);
}

/* ---- refusals (fail closed) --------------------------------------------- */

static void
refused_and_untouched(const uint8_t *blk, size_t n, const size_t *anchors,
                      size_t nanchors, size_t code_len, const char *reason)
{
    uint8_t *p = code_page(blk, n);
    uint8_t before[16];
    memcpy(before, p, sizeof(before));
    assert_int_equal(rewrite_block(p, 0, anchors, nanchors, code_len,
                                   INSPECT_WRPKRU), -1);
    if (!strstr(last_log, reason))
        print_message("log: %s\n", last_log);
    assert_non_null(strstr(last_log, "cannot rewrite"));
    assert_non_null(strstr(last_log, reason));
    assert_memory_equal(p, before, sizeof(before));
}

static void
hazards_refused(void **state)
{
    (void) state;
    static const size_t at3[] = { 3 };
    refused_and_untouched(blk_branch_in, sizeof(blk_branch_in), NULL, 0,
                          PAGE, "lands inside");
    refused_and_untouched(blk_nops, sizeof(blk_nops), at3, 1, PAGE,
                          "a function starts");
    refused_and_untouched(blk_short, sizeof(blk_short), NULL, 0,
                          sizeof(blk_short), "the code ends");
    /* controls: the same nops without the anchor are rewritten */
    uint8_t *p = code_page(blk_nops, sizeof(blk_nops));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
}

static void
stray_sequences_found(void **state)
{
    (void) state;
    uint8_t b[8];
    static const uint8_t jmp_wr[] = { X(0xe9), X(0x0f), X(0x01), X(0xef),
                                      X(0x00) };
    unxor(b, jmp_wr, 5);
    assert_true(insp_bytes_have_sequence(b, 5, 0, 5));
    /* a sequence that only starts in the range (its last bytes after) */
    assert_true(insp_bytes_have_sequence(b, 5, 0, 2));
    /* one that ends right where the range starts */
    assert_true(insp_bytes_have_sequence(b, 5, 3, 5));
    assert_false(insp_bytes_have_sequence(b, 5, 4, 5));
    /* XRSTOR64 whose only byte in the range is its REX.W */
    static const uint8_t x64[] = { X(0x48), X(0x0f), X(0xae), X(0x28) };
    unxor(b, x64, 4);
    assert_true(insp_bytes_have_sequence(b, 4, 0, 1));
    /* rdpkru is no sequence */
    static const uint8_t rd[] = { X(0x0f), X(0x01), X(0xee) };
    unxor(b, rd, 3);
    assert_false(insp_bytes_have_sequence(b, 3, 0, 3));
}

/* ---- the check after a WRPKRU runs natively ----------------------------- */

/*
 * A harness around the check for pkey: EAX = the PKRU value (edi),
 * RCX = 0xdeadbeef00000000 (ECX = 0, as after WRPKRU), EDX = 0, CF = ZF =
 * PF = 1; then the check; then it stores RCX, RFLAGS and RDX at (rsi) and
 * returns EAX.  A failing check ends the process with status 70.
 */
static uint8_t *
check_harness(int pkey)
{
    uint8_t *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0xcc, PAGE);
    static const uint8_t pre[] = {
        0x89, 0xf8,                                     /* mov %edi,%eax */
        0x48, 0xb9, 0, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, /* movabs ..,%rcx */
        0x31, 0xd2,                                     /* xor %edx,%edx */
        0xf9,                                           /* stc */
    };
    static const uint8_t post[] = {
        0x48, 0x89, 0x0e,                               /* mov %rcx,(%rsi) */
        0x9c, 0x8f, 0x46, 0x08,                     /* pushfq; pop 8(%rsi) */
        0x48, 0x89, 0x56, 0x10,                         /* mov %rdx,16(%rsi) */
        0xc3,
    };
    static const char line[] = "check failed\n";
    size_t n = sizeof(pre);
    memcpy(p, pre, n);
    size_t c = insp_emit_check(INSPECT_WRPKRU, pkey, p + n, addr(p + n),
                               addr(p + 0x800), sizeof(line) - 1,
                               addr(p + 0x900));
    assert_true(c > 0);
    n += c;
    memcpy(p + n, post, sizeof(post));
    memcpy(p + 0x800, line, sizeof(line) - 1);
    assert_int_equal(insp_emit_abort(p + 0x900), INSP_ABORT_LEN);
    assert_int_equal(mprotect(p, PAGE, PROT_READ | PROT_EXEC), 0);
    return p;
}

/* In a child: 0 if the check passed with everything preserved, 1 if it
 * passed but changed something, 70 if it aborted. */
static int
run_check(uint8_t *harness, uint32_t pkru)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint64_t out[3] = { 0, 0, 1 };
        uint32_t (*f)(uint32_t, uint64_t *) =
            (uint32_t (*)(uint32_t, uint64_t *)) (uintptr_t) harness;
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);               /* the abort line */
        uint32_t eax = f(pkru, out);
        const uint64_t flags = 0x1 | 0x4 | 0x40 | 0x80 | 0x800; /* CPZSO */
        _exit(eax == pkru && out[0] == 0xdeadbeef00000000ull && out[2] == 0
              && (out[1] & flags) == (0x1 | 0x4 | 0x40) ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void
wrpkru_check_all_keys(void **state)
{
    (void) state;
    for (int k = 1; k <= 15; k++) {
        uint8_t *h = check_harness(k);
        uint32_t ad = 1u << (2 * k), wd = 2u << (2 * k);
        /* denied: AD set, whatever else (the kernel's init_pkru, AD only,
         * AD and WD, everything set) */
        assert_int_equal(run_check(h, 0x55555554u), 0);
        assert_int_equal(run_check(h, ad), 0);
        assert_int_equal(run_check(h, ad | wd), 0);
        assert_int_equal(run_check(h, 0xffffffffu), 0);
        /* open: AD clear (all open, WD only, only this key opened) */
        assert_int_equal(run_check(h, 0), 70);
        assert_int_equal(run_check(h, wd), 70);
        assert_int_equal(run_check(h, 0xffffffffu & ~ad), 70);
        assert_int_equal(run_check(h, 0x55555554u & ~ad), 70);
        munmap(h, PAGE);
    }
}


/* ---- the other classes: rewritten, and still doing the same ------------- */

static const struct fx_block fx_blocks[] = { FX_BLOCKS(FX_ENTRY) };
#define NBLOCKS (sizeof(fx_blocks) / sizeof(*fx_blocks))

struct plan_ctx {
    struct insp_rewriter *w;
    const struct insp_region *r;
};

/* insp_scan_region's callback: plan every hit, as plan_hook does */
static int
plan_raw(void *ctx, const struct insp_raw_hit *raw)
{
    struct plan_ctx *c = ctx;
    struct inspect_hit h = {
        .addr = raw->pos, .file_offset = INSPECT_NONE, .kind = raw->kind,
        .cls = raw->cls, .fields = raw->fields, .insn_back = raw->insn_back,
        .insn_len = raw->insn_len,
    };
    snprintf(h.object, sizeof(h.object), "[anon]");
    return insp_rewriter_plan_hit(c->w, c->r, &h) == -2 ? -1 : 0;
}

/* Scan [p, p + code_len) of the len bytes at p (one stretch from p, plus
 * the anchors given) and rewrite every hit; the rewriter's counts in
 * *planned and *refused, and the rules of all its trampolines. */
static uint32_t
rewrite_range(uint8_t *p, size_t len, size_t code_len, const size_t *anchors,
              size_t nanchors, size_t *planned, size_t *refused)
{
    struct insp_region r = { .bytes = p, .base = addr(p), .len = len };
    assert_int_equal(insp_region_add_code(&r, addr(p), addr(p) + code_len),
                     0);
    for (size_t i = 0; i < nanchors; i++)
        assert_int_equal(insp_region_add_anchor(&r, addr(p) + anchors[i]), 0);
    struct insp_rewriter w;
    insp_rewriter_init(&w, PKEY);
    last_log[0] = '\0';
    inspect_set_log(keep_log, NULL);
    struct plan_ctx c = { &w, &r };
    assert_int_equal(insp_scan_region(&r, plan_raw, &c), 0);
    *planned = w.nplan;
    *refused = w.refused;
    uint32_t rules = 0;
    for (size_t i = 0; i < w.nplan; i++)
        rules |= w.plan[i].tramp.rules;
    if (w.refused == 0 && w.nplan > 0)
        assert_int_equal(insp_rewriter_commit(&w), (int) w.nplan);
    inspect_set_log(NULL, NULL);
    insp_rewriter_free(&w);
    insp_region_free(&r);
    return rules;
}

/* The same on one page */
static uint32_t
rewrite_region(uint8_t *p, size_t code_len, const size_t *anchors,
               size_t nanchors, size_t *planned, size_t *refused)
{
    return rewrite_range(p, PAGE, code_len, anchors, nanchors, planned,
                         refused);
}

/* A page of int3 with bytes [b, e) at offset 0, r-x. */
static uint8_t *
block_page(const uint8_t *b, const uint8_t *e)
{
    uint8_t *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0xcc, PAGE);
    memcpy(p, b, (size_t) (e - b));
    assert_int_equal(mprotect(p, PAGE, PROT_READ | PROT_EXEC), 0);
    return p;
}

/* Nothing unsafe in p's page nor in any trampoline made for it. */
static void
assert_clean_after(const uint8_t *p)
{
    struct inspect_report r = { 0 };
    size_t n;
    const struct inspect_rewrite *w = inspect_rewrites(&n);
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(unsafe_between(&r, addr(p), addr(p) + PAGE), 0);
    for (size_t i = 0; i < n; i++)
        if (w[i].span_start >= addr(p) && w[i].span_start < addr(p) + PAGE) {
            uint64_t t = w[i].trampoline & ~(uint64_t) (PAGE - 1);
            assert_int_equal(unsafe_between(&r, t, t + 2 * PAGE), 0);
        }
    inspect_report_free(&r);
}

static void
every_class_rewritten_and_equivalent(void **state)
{
    (void) state;
    for (size_t i = 0; i < NBLOCKS; i++) {
        const struct fx_block *b = &fx_blocks[i];
        uint8_t *orig = block_page(b->start, b->end);
        uint8_t *copy = block_page(b->start, b->end);
        struct inspect_report r = { 0 };
        assert_int_equal(inspect_process(&r), 0);
        size_t before = unsafe_between(&r, addr(copy), addr(copy) + PAGE);
        inspect_report_free(&r);
        assert_true(before > 0);

        size_t planned, refused;
        uint32_t rules = rewrite_region(copy, PAGE, NULL, 0, &planned,
                                        &refused);
        char names[256];
        insp_rules_string(rules, names, sizeof(names));
        print_message("%-15s %zu hit(s): %s%s\n", b->name, before,
                      refused ? "refused: " : "", refused ? last_log : names);
        if (b->rule == 0) {
            /* fail closed: nothing written, the hit is still there */
            assert_int_equal(planned, 0);
            assert_true(refused > 0);
            assert_memory_equal(copy, orig, PAGE);
            continue;
        }
        assert_int_equal(refused, 0);
        assert_true(planned > 0);
        assert_int_equal(copy[last_rewrite()->span_start - addr(copy)], 0xe9);
        assert_int_equal(rules & b->rule, b->rule);
        assert_clean_after(copy);
        if (b->runs) {
            char diff[200] = "";
            bool same = fx_compare(b, orig, copy, 300, 0x9e3779b97f4a7c15ull
                                   + i, diff, sizeof(diff));
            if (!same)
                print_message("%s\n", diff);
            assert_true(same);
        }
    }
}

/* Exact forms, as documentation: mov $0xef010f,%eax becomes
 * mov $0xef00cf,%eax; lea 0x40(%rax),%eax, and the spanning pair gets a
 * NOP between its instructions. */
static void
exact_forms(void **state)
{
    (void) state;
    static const uint8_t mov_split[] = { 0xb8, 0xcf, 0x00, 0xef, 0x00,
                                         0x8d, 0x40, 0x40 };
    uint8_t *p = block_page(fxr_imm_mov32, fxr_imm_mov32_end);
    size_t planned, refused;
    rewrite_region(p, PAGE, NULL, 0, &planned, &refused);
    assert_int_equal(planned, 1);
    const uint8_t *t = (const uint8_t *) (uintptr_t) last_rewrite()->trampoline;
    assert_memory_equal(t, mov_split, sizeof(mov_split));
    assert_int_equal(t[sizeof(mov_split)], 0xe9);
    assert_int_equal(target_of(t + sizeof(mov_split) + 1), addr(p + 5));

    p = block_page(fxr_span_wrpkru, fxr_span_wrpkru_end);
    rewrite_region(p, PAGE, NULL, 0, &planned, &refused);
    assert_int_equal(planned, 1);
    t = (const uint8_t *) (uintptr_t) last_rewrite()->trampoline;
    static const uint8_t nop_between[] = { 0xb0, 0x0f, 0x90, 0x01, 0xef,
                                           0xc3 };
    assert_memory_equal(t, nop_between, sizeof(nop_between));
    assert_int_equal(last_rewrite()->cls, INSPECT_SPANNING);
    assert_int_equal(last_rewrite()->checked_site, 0);
}

/* A sequence whose 0F lies in no instruction (the bytes before a function
 * start): the first instruction that holds one of its bytes is rewritten,
 * which breaks it.  The same bytes outside any code range: refused. */
static void
outside_code(void **state)
{
    (void) state;
    /* b8 0f | 01 ef (add %ebp,%edi) 90 90 90 c3, a function at +2 */
    static const uint8_t blk[] = { X(0xb8), X(0x0f), X(0x01), X(0xef),
                                   X(0x90), X(0x90), X(0x90), X(0xc3) };
    uint8_t raw[sizeof(blk)];
    unxor(raw, blk, sizeof(blk));
    uint8_t *orig = block_page(raw, raw + sizeof(raw));
    uint8_t *p = block_page(raw, raw + sizeof(raw));
    static const size_t at2[] = { 2 };
    size_t planned, refused;
    rewrite_region(p, PAGE, at2, 1, &planned, &refused);
    assert_int_equal(planned, 1);
    assert_int_equal(refused, 0);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->cls, INSPECT_OUTSIDE_CODE);
    assert_int_equal(w->span_start, addr(p + 2));
    assert_int_equal(p[1], 0x0f);                   /* left, harmless */
    assert_int_equal(p[2], 0xe9);
    assert_clean_after(p);
    /* the function still does what it did */
    struct fx_block b = { "outside", NULL, NULL, NULL, FX_FLAGS_ALL,
                          fx_setup_span_wrpkru, INSPECT_RULE_RELOCATE, true };
    char diff[200] = "";
    assert_true(fx_compare(&b, orig + 2, p + 2, 100, 7, diff, sizeof(diff)));

    /* control: the code range starts after the sequence: no instruction
     * holds any of its bytes */
    p = block_page(raw, raw + sizeof(raw));
    struct insp_region r = { .bytes = p, .base = addr(p), .len = PAGE };
    assert_int_equal(insp_region_add_code(&r, addr(p) + 4, addr(p) + PAGE),
                     0);
    struct insp_rewriter rw;
    insp_rewriter_init(&rw, PKEY);
    inspect_set_log(keep_log, NULL);
    struct plan_ctx c = { &rw, &r };
    assert_int_equal(insp_scan_region(&r, plan_raw, &c), 0);
    inspect_set_log(NULL, NULL);
    assert_int_equal(rw.nplan, 0);
    assert_int_equal(rw.refused, 1);
    assert_non_null(strstr(last_log, "no instruction holds its bytes"));
    insp_rewriter_free(&rw);
    insp_region_free(&r);
}

/* A real WRPKRU right before a function start: the span takes the
 * instruction before it (xor %edx,%edx; wrpkru; ret = 6 bytes). */
static void
span_taken_backwards(void **state)
{
    (void) state;
    /* xor %ecx,%ecx; xor %edx,%edx; wrpkru; ret | next function: ret */
    static const uint8_t blk[] = { X(0x31), X(0xc9), X(0x31), X(0xd2),
                                   X(0x0f), X(0x01), X(0xef), X(0xc3),
                                   X(0xc3) };
    uint8_t *p = code_page(blk, sizeof(blk));
    static const size_t at8[] = { 8 };
    assert_int_equal(rewrite_block(p, 4, at8, 1, PAGE, INSPECT_WRPKRU), 0);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->site, addr(p + 4));
    assert_int_equal(w->span_start, addr(p + 2));
    assert_int_equal(w->span, 6);
    assert_int_equal(p[0], 0x31);                   /* before: untouched */
    assert_int_equal(p[2], 0xe9);
    assert_int_equal(p[7], 0xcc);
    assert_int_equal(p[8], 0xc3);                   /* the next function */
    const uint8_t *t = (const uint8_t *) (uintptr_t) w->trampoline;
    assert_int_equal(t[0], 0x31);                   /* xor %edx,%edx */
    assert_int_equal(t[1], 0xd2);
    assert_int_equal(w->checked_site, addr(t + 2));
    assert_int_equal(t[2], 0x0f);
    assert_int_equal(target_of(t + 2 + 3 + check_len(INSPECT_WRPKRU) + 1 + 1),
                     addr(p + 8));
    /* the span may start at a function start (+2), not cross one */
    p = code_page(blk, sizeof(blk));
    static const size_t at28[] = { 2, 8 };
    assert_int_equal(rewrite_block(p, 4, at28, 2, PAGE, INSPECT_WRPKRU), 0);
    assert_int_equal(last_rewrite()->span_start, addr(p + 2));
    /* control: with the function starting at the WRPKRU, nothing fits */
    p = code_page(blk, sizeof(blk));
    static const size_t at48[] = { 4, 8 };
    assert_int_equal(rewrite_block(p, 4, at48, 2, PAGE, INSPECT_WRPKRU), -1);
    assert_non_null(strstr(last_log, "a function starts"));
}

/* The checked form is recognised by its bytes alone, for its key only. */
static void
checked_form_by_bytes(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_pkey_set, sizeof(blk_pkey_set));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
    const struct inspect_rewrite *w = last_rewrite();
    uint64_t page = w->trampoline & ~(uint64_t) (PAGE - 1);
    uint8_t copy[PAGE];
    memcpy(copy, (const void *) (uintptr_t) page, PAGE);
    struct insp_region r = { .bytes = copy, .base = page, .len = PAGE };
    uint64_t end = w->checked_site + 3;
    assert_true(insp_checked_form(&r, end, INSPECT_WRPKRU, PKEY));
    assert_false(insp_checked_form(&r, end, INSPECT_WRPKRU, PKEY + 1));
    assert_false(insp_checked_form(&r, end, INSPECT_WRPKRU, 0));
    assert_false(insp_checked_form(&r, end, INSPECT_XRSTOR, PKEY));
    /* one byte of the check changed (the jecxz's distance) */
    copy[end - page + check_len(INSPECT_WRPKRU) - 18] ^= 1;
    assert_false(insp_checked_form(&r, end, INSPECT_WRPKRU, PKEY));
    copy[end - page + check_len(INSPECT_WRPKRU) - 18] ^= 1;
    assert_true(insp_checked_form(&r, end, INSPECT_WRPKRU, PKEY));
    /* the abort stub changed */
    copy[0] ^= 1;
    assert_false(insp_checked_form(&r, end, INSPECT_WRPKRU, PKEY));
}

/* ---- a direct call that ends the span: emulated ------------------------- */

/* insp_emulate_call's output t, built for new_ip: push %rax;
 * lea ret(%rip),%rax; xchg %rax,(%rsp); jmp target. */
static void
assert_call_emulation(const uint8_t *t, uint64_t new_ip, uint64_t ret,
                      uint64_t target)
{
    static const uint8_t lea[] = { 0x48, 0x8d, 0x05 };
    static const uint8_t xchg[] = { 0x48, 0x87, 0x04, 0x24 };
    assert_int_equal(t[0], 0x50);
    assert_memory_equal(t + 1, lea, sizeof(lea));
    assert_int_equal(new_ip + 8 + (uint64_t) (int64_t) rel32_at(t + 4), ret);
    assert_memory_equal(t + 8, xchg, sizeof(xchg));
    assert_int_equal(t[12], 0xe9);
    assert_int_equal(new_ip + INSP_CALL_EMU_LEN
                     + (uint64_t) (int64_t) rel32_at(t + 13), target);
}

static void
call_emulation_encoding(void **state)
{
    (void) state;
    const uint64_t old_ip = 0x7f0000400000ull;
    uint8_t out[INSP_CALL_EMU_LEN + 8], keep[sizeof(out)];

    /* call +0x100 from a trampoline above the site */
    static const uint8_t fwd[] = { 0xe8, 0x00, 0x01, 0x00, 0x00, 0x90 };
    memset(out, 0xaa, sizeof(out));
    assert_int_equal(insp_emulate_call(fwd, 5, old_ip, old_ip + 0x10000,
                                       out), INSP_CALL_EMU_LEN);
    assert_call_emulation(out, old_ip + 0x10000, old_ip + 5,
                          old_ip + 5 + 0x100);
    assert_int_equal(out[INSP_CALL_EMU_LEN], 0xaa);     /* nothing more */

    /* call -0x2000 from a trampoline 1 GiB below */
    static const uint8_t back[] = { 0xe8, 0x00, 0xe0, 0xff, 0xff };
    uint64_t low = old_ip - (1ull << 30);
    assert_int_equal(insp_emulate_call(back, 5, old_ip, low, out),
                     INSP_CALL_EMU_LEN);
    assert_call_emulation(out, low, old_ip + 5, old_ip + 5 - 0x2000);

    /* no call rel32: 0, and out untouched */
    memset(out, 0xaa, sizeof(out));
    memcpy(keep, out, sizeof(out));
    assert_int_equal(insp_emulate_call(fwd, 4, old_ip, old_ip + 0x10000,
                                       out), 0);
    assert_int_equal(insp_emulate_call(fwd, 6, old_ip, old_ip + 0x10000,
                                       out), 0);
    static const uint8_t jmp[] = { 0xe9, 0x00, 0x01, 0x00, 0x00 };
    assert_int_equal(insp_emulate_call(jmp, 5, old_ip, old_ip + 0x10000,
                                       out), 0);
    static const uint8_t ind[] = { 0xff, 0xd0 };            /* call *%rax */
    assert_int_equal(insp_emulate_call(ind, 2, old_ip, old_ip + 0x10000,
                                       out), 0);
    /* out of rel32 reach: the return address (and callee) 3 GiB away */
    assert_int_equal(insp_emulate_call(fwd, 5, old_ip, old_ip + (3ull << 30),
                                       out), 0);
    /* the return address in reach, the callee (2 GiB below) not */
    static const uint8_t far[] = { 0xe8, 0x00, 0x00, 0x00, 0x80 };
    assert_int_equal(insp_emulate_call(far, 5, old_ip, old_ip + (1ull << 30),
                                       out), 0);
    assert_memory_equal(out, keep, sizeof(out));
}

/*
 * A call whose rel32 holds a sequence, in a region large enough for the
 * displacement: the callee at +0 (a backward call) or after the call.
 * At entry: xor %eax,%eax; stc; movabs $CALL_RAX,%rax (ZF, PF, CF set,
 * %rax known); then the call at c; ret.
 */
#define CALL_RAX 0x1122334455667788ull
#define CALL_ENTRY_LEN 13

struct call_site {
    uint8_t *p;
    size_t len, entry, c, callee;
};

static void
set_callee(const struct call_site *cs, const uint8_t *code, size_t n)
{
    uint8_t b[8];
    memset(b, 0xcc, sizeof(b));
    memcpy(b, code, n);
    assert_int_equal(insp_text_write(addr(cs->p + cs->callee), b, sizeof(b)),
                     0);
}

/* mov (%rsp),%rax; ret: the return address it was called with */
static const uint8_t callee_ret_addr[] = { 0x48, 0x8b, 0x04, 0x24, 0xc3 };
/* mov $0x2a,%eax; ret */
static const uint8_t callee_42[] = { 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3 };
/* ret: %rax as the caller left it */
static const uint8_t callee_rax[] = { 0xc3 };
/* pushfq; pop %rax; ret: the flags as the caller left them */
static const uint8_t callee_flags[] = { 0x9c, 0x58, 0xc3 };

static void
call_site_map(struct call_site *cs, const uint8_t rel_x[4])
{
    uint8_t rel[4];
    int32_t r;
    unxor(rel, rel_x, 4);
    memcpy(&r, rel, 4);
    cs->c = r < 0 ? (size_t) (-(int64_t) r - 5) : 64;
    assert_true(cs->c >= CALL_ENTRY_LEN);
    cs->entry = cs->c - CALL_ENTRY_LEN;
    cs->callee = (size_t) ((int64_t) cs->c + 5 + r);
    size_t end = cs->c + 6 > cs->callee + 16 ? cs->c + 6 : cs->callee + 16;
    cs->len = (end + PAGE - 1) & ~(size_t) (PAGE - 1);
    cs->p = mmap(NULL, cs->len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(cs->p != MAP_FAILED);
    memset(cs->p, 0xcc, cs->len);
    uint8_t *e = cs->p + cs->entry;
    static const uint8_t head[] = { 0x31, 0xc0, 0xf9, 0x48, 0xb8 };
    memcpy(e, head, sizeof(head));
    uint64_t k = CALL_RAX;
    memcpy(e + sizeof(head), &k, 8);
    e[CALL_ENTRY_LEN] = 0xe8;
    memcpy(e + CALL_ENTRY_LEN + 1, rel, 4);
    e[CALL_ENTRY_LEN + 5] = 0xc3;
    memcpy(cs->p + cs->callee, callee_ret_addr, sizeof(callee_ret_addr));
    assert_int_equal(mprotect(cs->p, cs->len, PROT_READ | PROT_EXEC), 0);
}

/* Every callee, through the call at c: the same results before and after
 * the rewrite. */
static void
call_site_runs(const struct call_site *cs)
{
    uint64_t (*f)(void) = (uint64_t (*)(void)) (uintptr_t) (cs->p
                                                            + cs->entry);
    uint64_t (*at_call)(void) = (uint64_t (*)(void)) (uintptr_t) (cs->p
                                                                  + cs->c);
    const uint64_t ret = addr(cs->p + cs->c + 5);
    set_callee(cs, callee_ret_addr, sizeof(callee_ret_addr));
    assert_int_equal(f(), ret);
    assert_int_equal(at_call(), ret);
    set_callee(cs, callee_42, sizeof(callee_42));
    assert_int_equal(f(), 42);
    set_callee(cs, callee_rax, sizeof(callee_rax));
    assert_int_equal(f(), CALL_RAX);
    set_callee(cs, callee_flags, sizeof(callee_flags));
    const uint64_t cpzso = 0x1 | 0x4 | 0x40 | 0x80 | 0x800;
    assert_int_equal(f() & cpzso, 0x1 | 0x4 | 0x40);
    set_callee(cs, callee_ret_addr, sizeof(callee_ret_addr));
}

static void
call_rewritten(const uint8_t rel_x[4], enum inspect_kind kind)
{
    struct call_site cs;
    call_site_map(&cs, rel_x);
    uint8_t *p = cs.p;

    /* control: it runs, and the scan sees the sequence inside the call */
    call_site_runs(&cs);
    struct inspect_report r = { 0 };
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(unsafe_between(&r, addr(p), addr(p) + cs.len), 1);
    const struct inspect_hit *h = hit_at(&r, addr(p + cs.c + 1));
    assert_non_null(h);
    assert_int_equal(h->kind, kind);
    assert_int_equal(h->cls, INSPECT_IN_IMM);
    assert_false(h->safe);
    assert_int_equal(h->insn_back, 1);
    assert_int_equal(h->insn_len, 5);
    inspect_report_free(&r);

    size_t planned, refused;
    uint32_t rules = rewrite_range(p, cs.len, cs.len, NULL, 0, &planned,
                                   &refused);
    if (refused)
        print_message("log: %s\n", last_log);
    assert_int_equal(refused, 0);
    assert_int_equal(planned, 1);
    assert_non_null(strstr(last_log, "rewrote"));
    assert_int_equal(rules, INSPECT_RULE_RELOCATE);
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->site, addr(p + cs.c));
    assert_int_equal(w->span_start, addr(p + cs.c));
    assert_int_equal(w->span, 5);
    assert_int_equal(w->cls, INSPECT_IN_IMM);
    assert_int_equal(w->checked_site, 0);             /* no PKRU write */

    /* the call is now the jump to its emulation; the ret stays */
    assert_int_equal(p[cs.c], 0xe9);
    assert_int_equal(target_of(p + cs.c + 1), w->trampoline);
    assert_int_equal(p[cs.c + 5], 0xc3);
    assert_false(insp_bytes_have_sequence(p + cs.entry, CALL_ENTRY_LEN + 6,
                                          0, CALL_ENTRY_LEN + 6));
    const uint8_t *t = (const uint8_t *) (uintptr_t) w->trampoline;
    assert_true(w->trampoline_len >= INSP_CALL_EMU_LEN);
    assert_call_emulation(t, w->trampoline, addr(p + cs.c + 5),
                          addr(p + cs.callee));

    /* the callee sees the original return address (not one in the
     * trampoline), %rax and the flags as the caller left them */
    call_site_runs(&cs);

    /* nothing unsafe left, in the region or the trampoline's pages */
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(unsafe_between(&r, addr(p), addr(p) + cs.len), 0);
    uint64_t tp = w->trampoline & ~(uint64_t) (PAGE - 1);
    assert_int_equal(unsafe_between(&r, tp, tp + 2 * PAGE), 0);
    inspect_report_free(&r);
    munmap(p, cs.len);
}

static void
call_in_span_emulated(void **state)
{
    (void) state;
    /* a WRPKRU in a backward rel32 (0xffef010f: the callee 1.1 MB before
     * the call) */
    static const uint8_t rel_wrpkru[] = { X(0x0f), X(0x01), X(0xef),
                                          X(0xff) };
    call_rewritten(rel_wrpkru, INSPECT_WRPKRU);
    /* the case seen in NGINX: an XRSTORS (0f c7 18) in a forward rel32
     * (0x0018c70f: 1.6 MB after the call) */
    static const uint8_t rel_xrstors[] = { X(0x0f), X(0xc7), X(0x18),
                                           X(0x00) };
    call_rewritten(rel_xrstors, INSPECT_XRSTORS);
}

/* A real WRPKRU, then a call that ends the span: the checked copy, then
 * the emulation.  With a function start after the WRPKRU the span is taken
 * backwards, the call is not its last instruction (its return address
 * would be in the trampoline), and it is refused. */
static void
call_not_last_refused(void **state)
{
    (void) state;
    uint8_t *p = code_page(blk_call, sizeof(blk_call));
    assert_int_equal(rewrite_block(p, 0, NULL, 0, PAGE, INSPECT_WRPKRU), 0);
    assert_non_null(strstr(last_log, "rewrote WRPKRU"));
    const struct inspect_rewrite *w = last_rewrite();
    assert_int_equal(w->span, 8);
    assert_int_equal(w->rules, INSPECT_RULE_CHECK | INSPECT_RULE_RELOCATE);
    const uint8_t *t = (const uint8_t *) (uintptr_t) w->trampoline;
    assert_int_equal(w->checked_site, addr(t));
    size_t c = 3 + check_len(INSPECT_WRPKRU);
    assert_call_emulation(t + c, w->trampoline + c, addr(p + 8), addr(p + 8));

    p = code_page(blk_call_first, sizeof(blk_call_first));
    uint8_t before[16];
    memcpy(before, p, sizeof(before));
    static const size_t at8[] = { 8 };
    assert_int_equal(rewrite_block(p, 5, at8, 1, PAGE, INSPECT_WRPKRU), -1);
    if (!strstr(last_log, "a call in the span"))
        print_message("log: %s\n", last_log);
    assert_non_null(strstr(last_log, "cannot rewrite"));
    assert_non_null(strstr(last_log, "a call in the span"));
    assert_memory_equal(p, before, sizeof(before));
}

/* ---- the public entry point's refusals ---------------------------------- */

static void
rewrite_process_refusals(void **state)
{
    (void) state;
    struct inspect_report r = { 0 };
    errno = 0;
    assert_int_equal(inspect_rewrite_process(0, &r), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(inspect_rewrite_process(16, &r), -1);
    assert_int_equal(errno, EINVAL);
    unsigned a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 4))) {
        inspect_report_free(&r);
        skip();                         /* with OSPKE it would rewrite us */
    }
    assert_int_equal(inspect_rewrite_process(1, &r), -1);
    assert_int_equal(errno, ENOTSUP);
    assert_int_equal(r.nhit, 0);
    inspect_report_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pkey_set_tail_rewritten),
        cmocka_unit_test(rescan_sees_rewritten_site),
        cmocka_unit_test(rip_relative_relocated),
        cmocka_unit_test(rel8_branches_widened),
        cmocka_unit_test(xrstor_rewritten),
        cmocka_unit_test(hazards_refused),
        cmocka_unit_test(stray_sequences_found),
        cmocka_unit_test(wrpkru_check_all_keys),
        cmocka_unit_test(rewrite_process_refusals),
        cmocka_unit_test(every_class_rewritten_and_equivalent),
        cmocka_unit_test(exact_forms),
        cmocka_unit_test(outside_code),
        cmocka_unit_test(span_taken_backwards),
        cmocka_unit_test(checked_form_by_bytes),
        cmocka_unit_test(call_emulation_encoding),
        cmocka_unit_test(call_in_span_emulated),
        cmocka_unit_test(call_not_last_refused),
    };
    return cmocka_run_group_tests_name("inspect_rewrite", tests, NULL, NULL);
}
