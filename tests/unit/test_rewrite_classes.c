/*
 * The rewriter's other classes under MPK (an MPK test: runs natively on a
 * CPU with pku, else in the QEMU guest): ERIM's rules for a WRPKRU/XRSTOR
 * sequence that spans instructions or lies inside one, applied in memory
 * by inspect_rewrite_process to the whole process.  Linked against
 * libkeystore-test.so (T memory and its key), libinspect.a and the
 * fixtures (tests/unit/inspect_fixtures.S: every class, in this binary's
 * .text).  The runnable blocks (inspect_run_blocks.inc) are copied into an
 * anonymous executable page.  In this order (cmocka keeps it):
 *   1. control, before rewriting: a jump to the first byte of each
 *      sequence in the blocks (and in the fixtures, but XRSTORS, which
 *      faults at CPL 3) gives a PKRU that opens T;
 *   2. inspect_rewrite_process rewrites libc's and ld.so's sites, every
 *      fixture and every block, and the final scan is clean;
 *   3. the blocks do what the originals do (same registers, flags and
 *      memory), and the block whose span holds a real WRPKRU and a split
 *      immediate works with a PKRU that keeps T denied and aborts (70)
 *      with one that opens it;
 *   4. the same jumps as in 1 never open T any more; nor does a jump to
 *      any byte of a patched span or of its trampoline;
 *   5. a re-scan is clean, and each checked copy is safe.
 * The oracle of a jump: the child either comes back (and reads a T byte:
 * 11 if it can, 42 if the read faults on the keystore's key) or is ended
 * by a signal, whose handler (on its own stack) reads the interrupted PKRU
 * from the signal frame: 11 if it opened T, else 128 + the signal.  70 is
 * the trampoline's abort.  71 is the known limit of the XRSTOR check
 * (inspect/README.md, "The check"): it saves registers on the stack before
 * it reads PKRU, so an XRSTOR reached with a bad RSP faults there with T
 * open; the handler runs with the kernel's init_pkru, and only
 * rt_sigreturn (denied by the lockdown) could bring that PKRU back.
 * Garbage reached by a jump into a span can lead there too.
 */

#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <Zydis/Zydis.h>

#include "../../keystore/ks_pkru.h"
#include "ks_test.h"
#include "../../inspect/inspect.h"
#include "inspect_run_blocks.h"

extern const char fx_begin[], fx_end[];

enum { OPENED = 11, CLOSED = 42, ABORTED = 70, IN_CHECK = 71 };

#define PAGE 4096u
#define SLOT 64                     /* bytes per block in the page */
/* The XSAVE area an XRSTOR gadget restores: XSTATE_BV = 0, so every
 * requested component, PKRU included (RFBM bit 9), gets its init value:
 * PKRU = 0.  Its address is also EAX (RFBM's low half) and, for a WRPKRU
 * gadget, the PKRU value written: bits 9 and 28 (WD of key 4, AD of key
 * 14), which leave the keystore's key open. */
#define AREA_PAGE 0x10000000ul
#define AREA (AREA_PAGE + 0x200)
#define LOW_STACK 0x20000000ul       /* the jumps' stack, below 4 GiB */
#define LOW_STACK_SIZE (64 * 1024ul)

static const struct fx_block fx_blocks[] = { FX_BLOCKS(FX_ENTRY) };
#define NBLOCKS (sizeof(fx_blocks) / sizeof(*fx_blocks))

static int          pkey;
static uintptr_t    t_byte;
static uint8_t     *blocks;         /* the blocks, one per SLOT, rewritten */
static uint8_t     *originals;      /* the same, never rewritten (r-- but
                                       while compared) */
static unsigned     pkru_offset;    /* PKRU's place in an XSAVE area */

/* first bytes of the sequences found before rewriting */
struct gadget {
    uintptr_t at;
    enum inspect_kind kind;
    enum inspect_class cls;
    const char *where;
};
static struct gadget gadgets[128];
static size_t ngadgets;

/* ---- the oracle --------------------------------------------------------- */

static bool
pkru_opens_t(uint32_t pkru)
{
    return (pkru & (1u << (2 * pkey))) == 0;
}

static void
end_handler(int sig, siginfo_t *si, void *ctx)
{
    const uint8_t *xsave =
        (const uint8_t *) ((ucontext_t *) ctx)->uc_mcontext.fpregs;
    uint32_t pkru;

    if (sig == SIGSEGV && si->si_code == SEGV_PKUERR
        && (int) si->si_pkey == pkey) {
        _exit(CLOSED);
    }
    /* the slot, whatever XSTATE_BV says: the kernel (>= 6.12) writes the
     * interrupted PKRU there itself after its XSAVE, which ran with every
     * key enabled, so XSTATE_BV[9] may say "init" although PKRU was not */
    memcpy(&pkru, xsave + pkru_offset, 4);
    if (pkru_opens_t(pkru)) {
        uint64_t rip = (uint64_t) ((ucontext_t *) ctx)->uc_mcontext.gregs[REG_RIP];
        size_t n, i;
        const struct inspect_rewrite *w = inspect_rewrites(&n);

        /* the known limit: an XRSTOR's check saves registers on the stack
         * before it can test PKRU, and a bad RSP faults right there */
        for (i = 0; i < n; i++) {
            if (w[i].checked_site && w[i].kind != INSPECT_WRPKRU
                && rip > w[i].checked_site && rip < w[i].checked_site + 24) {
                _exit(IN_CHECK);
            }
        }
        _exit(OPENED);
    }
    _exit(128 + sig);
}

static int
probe_t(void)
{
    (void) *(volatile uint8_t *) t_byte;
    return OPENED;
}

/* Jump to target with RAX = RBX = RSI = RDI = AREA, RCX = RDX = 0 and a
 * return address on a stack below 4 GiB.  (QEMU's TCG reads the stack of
 * a 32-bit IRET in 64-bit mode through ESP, as a supervisor access: with
 * a stack above 4 GiB a stray IRET byte in garbage makes the guest kernel
 * oops, where hardware would fault in user mode.  Below 4 GiB the address
 * is the right one.) */
static uint64_t saved_rsp;

static void __attribute__((noinline))
jump_to(uintptr_t target)
{
    register uint64_t t asm("r10") = target;
    register uint64_t v asm("r11") = AREA;

    __asm__ volatile (
        "mov %%rsp, %[sv]\n\t"
        "mov %[top], %%rsp\n\t"
        "lea 1f(%%rip), %%rax\n\t"
        "push %%rax\n\t"
        "mov %%r11, %%rax\n\t"
        "mov %%r11, %%rbx\n\t"
        "mov %%r11, %%rsi\n\t"
        "mov %%r11, %%rdi\n\t"
        "xor %%ecx, %%ecx\n\t"
        "xor %%edx, %%edx\n\t"
        "jmp *%%r10\n"
        "1:\n\t"
        "mov %[sv], %%rsp\n\t"
        : "+r" (t), "+r" (v), [sv] "+m" (saved_rsp)
        : [top] "i" (LOW_STACK + LOW_STACK_SIZE - 256)
        : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r12", "r13",
          "r14", "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3",
          "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15");
}

/*
 * Would the code at p reach an IRET or a far return, call or jump?  QEMU's
 * TCG emulates those from user mode with supervisor accesses to the stack:
 * under SMAP the guest kernel oopses, where hardware would fault in user
 * mode or return.  So a jump whose path (decoded as the CPU would run it,
 * following direct jumps and both ways of conditional ones, for a while)
 * meets one is not made.  Any of them would be as harmless as the others
 * here: none writes PKRU.
 */
static int mem_fd = -1;

static bool
reaches_far(uintptr_t p, int budget)
{
    ZydisDecoder dec;

    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    while (budget-- > 0) {
        ZydisDecodedInstruction insn;
        uint8_t b[15];
        ssize_t n;

        /* through /proc/self/mem: the path may leave mapped memory */
        n = mem_fd >= 0 ? pread(mem_fd, b, sizeof(b), (off_t) p) : -1;
        if (n <= 0 || !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
                &dec, NULL, b, (size_t) n, &insn))) {
            return false;                   /* #PF or #UD */
        }
        if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) {
            return true;
        }
        switch (insn.mnemonic) {
        case ZYDIS_MNEMONIC_IRET:
        case ZYDIS_MNEMONIC_IRETD:
        case ZYDIS_MNEMONIC_IRETQ:
            return true;
        case ZYDIS_MNEMONIC_RET:
        case ZYDIS_MNEMONIC_INT3:
        case ZYDIS_MNEMONIC_UD2:
        case ZYDIS_MNEMONIC_HLT:
        case ZYDIS_MNEMONIC_SYSCALL:
            return false;
        default:
            break;
        }
        if (insn.raw.imm[0].is_relative) {
            uintptr_t to = p + insn.length + (uintptr_t) insn.raw.imm[0].value.s;

            if (insn.meta.category == ZYDIS_CATEGORY_COND_BR
                && reaches_far(p + insn.length, budget / 2)) {
                return true;
            }
            p = to;
            continue;
        }
        if (insn.meta.category == ZYDIS_CATEGORY_UNCOND_BR
            || insn.meta.category == ZYDIS_CATEGORY_CALL) {
            return false;                   /* indirect: to AREA, not code */
        }
        p += insn.length;
    }
    return false;
}

static size_t skipped_far;

/* In a child: the jump, then the oracle.  Its exit code. */
static int
jump_child(uintptr_t target)
{
    pid_t pid;

    if (reaches_far(target, 64)) {
        skipped_far++;
        return -1;
    }
    pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        static uint8_t altstack[64 * 1024];
        stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
        struct sigaction sa;
        int devnull = open("/dev/null", O_WRONLY);
        static const int sigs[] = { SIGSEGV, SIGILL, SIGBUS, SIGFPE,
                                    SIGTRAP, SIGALRM };

        sigaltstack(&ss, NULL);
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = end_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++) {
            sigaction(sigs[i], &sa, NULL);
        }
        dup2(devnull, 2);               /* the abort line */
        alarm(5);                       /* garbage may loop */
        jump_to(target);
        _exit(probe_t());
    }
    return child_exit_code(pid);
}

/* ---- setup -------------------------------------------------------------- */

static void
add_gadget(const struct inspect_hit *h, const char *where)
{
    if (ngadgets < sizeof(gadgets) / sizeof(*gadgets)) {
        gadgets[ngadgets++] = (struct gadget) {
            h->addr - (h->kind == INSPECT_XRSTOR64), h->kind, h->cls, where };
    }
}

static int
setup(void **state)
{
    struct ks_stats st;
    unsigned a = 0, b = 0, c = 0, d = 0;
    void *area;

    if (setup_keystore(state) != 0 || ks_stats(&st) != 0) {
        return -1;
    }
    pkey = st.pkey;
    t_byte = ranges[R_HEAP].start + ranges[R_HEAP].len - 16;
    if (pkey == 4 || pkey == 14 || inspect_gate_add_keystore(
            "libkeystore-test.so") != 0) {
        return -1;
    }
    if (!__get_cpuid_count(0xd, 9, &a, &b, &c, &d) || b == 0) {
        return -1;
    }
    pkru_offset = b;
    area = mmap((void *) AREA_PAGE, PAGE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (area != (void *) AREA_PAGE) {
        return -1;
    }
    memset(area, 0, PAGE);
    mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    if (mmap((void *) LOW_STACK, LOW_STACK_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
        != (void *) LOW_STACK) {
        return -1;
    }

    blocks = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    originals = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blocks == MAP_FAILED || originals == MAP_FAILED
        || NBLOCKS * SLOT > PAGE) {
        return -1;
    }
    memset(blocks, 0xcc, PAGE);
    for (size_t i = 0; i < NBLOCKS; i++) {
        const struct fx_block *bl = &fx_blocks[i];

        if (bl->rule != 0) {            /* not the refused one */
            memcpy(blocks + i * SLOT, bl->start,
                   (size_t) (bl->end - bl->start));
        }
    }
    memcpy(originals, blocks, PAGE);
    if (mprotect(blocks, PAGE, PROT_READ | PROT_EXEC) != 0
        || mprotect(originals, PAGE, PROT_READ) != 0) {
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    return 0;
}

/* ---- 1. the control ----------------------------------------------------- */

static void
gadgets_open_t_before_rewriting(void **state)
{
    struct inspect_report r = { 0 };
    size_t i, opened = 0;

    (void) state;
    assert_false(pkru_opens_t(ks_rdpkru()));
    assert_true(pkru_opens_t((uint32_t) AREA));
    assert_int_equal(inspect_process(&r), 0);
    for (i = 0; i < r.nhit; i++) {
        const struct inspect_hit *h = &r.hit[i];

        if (h->addr >= (uintptr_t) blocks && h->addr < (uintptr_t) blocks
            + PAGE) {
            add_gadget(h, "block");
        } else if (h->addr >= (uintptr_t) fx_begin
                   && h->addr < (uintptr_t) fx_end) {
            add_gadget(h, "fixture");
        }
    }
    inspect_report_free(&r);
    print_message("%zu sequences in the blocks and fixtures\n", ngadgets);
    assert_true(ngadgets >= 40);
    for (i = 0; i < ngadgets; i++) {
        const struct gadget *g = &gadgets[i];
        int code = jump_child(g->at);

        print_message("before: %s %s (%s) at %#lx: exit %d\n", g->where,
                      inspect_kind_name(g->kind), inspect_class_name(g->cls),
                      (unsigned long) g->at, code);
        /* XRSTORS faults at CPL 3; the outside-code fixture (fx_cut) runs
         * on into fx_pages, whose mov $0xef010f,%eax and WRPKRU close T
         * again before anything returns */
        if (g->kind != INSPECT_XRSTORS && g->cls != INSPECT_OUTSIDE_CODE) {
            assert_int_equal(code, OPENED);
            opened++;
        }
    }
    print_message("%zu of them open T\n", opened);
}

/* ---- 2. rewriting ------------------------------------------------------- */

static struct inspect_report final;

static void
rewrite_the_process(void **state)
{
    size_t n, i, k, by_class[INSPECT_NCLASSES] = { 0 };
    const struct inspect_rewrite *w;

    (void) state;
    if (inspect_rewrite_process(pkey, &final) != 0) {
        print_message("inspect_rewrite_process: %s\n", strerror(errno));
        fail();
    }
    assert_true(inspect_report_clean(&final));
    w = inspect_rewrites(&n);
    assert_int_equal(final.rewritten, n);
    for (i = 0; i < n; i++) {
        by_class[w[i].cls]++;
    }
    for (i = 0; i < INSPECT_NCLASSES; i++) {
        print_message("rewritten, %s: %zu\n",
                      inspect_class_name((enum inspect_class) i),
                      by_class[i]);
        assert_true(by_class[i] > 0);
    }
    /* every sequence of the blocks and fixtures is gone */
    for (i = 0; i < ngadgets; i++) {
        for (k = 0; k < final.nhit; k++) {
            assert_true(final.hit[k].addr != gadgets[i].at
                        && final.hit[k].addr != gadgets[i].at + 1);
        }
    }
}

/* ---- 3. the blocks do the same ------------------------------------------ */

static void
blocks_same_after_rewriting(void **state)
{
    uint32_t pkru = ks_rdpkru(), ad = 1u << (2 * pkey);
    size_t i, mix = NBLOCKS;

    (void) state;
    assert_int_equal(mprotect(originals, PAGE, PROT_READ | PROT_EXEC), 0);
    for (i = 0; i < NBLOCKS; i++) {
        const struct fx_block *b = &fx_blocks[i];
        char diff[200] = "";

        if (strcmp(b->name, "real_mix") == 0) {
            mix = i;
        }
        if (!b->runs || b->rule == 0) {
            continue;
        }
        if (!fx_compare(b, originals + i * SLOT, blocks + i * SLOT, 200,
                        0x51ed270b27ed5ull + i, diff, sizeof(diff))) {
            print_message("%s\n", diff);
            fail();
        }
    }
    assert_int_equal(mprotect(originals, PAGE, PROT_READ), 0);
    assert_true(mix < NBLOCKS);

    /* real_mix: mov %esi,%eax; xor; xor; wrpkru; mov $0xef010f,%ebx */
    {
        struct fx_regs in, out;
        memset(&in, 0, sizeof(in));
        in.r[FX_RSI] = pkru;
        in.r[FX_RFLAGS] = 0x2;
        fx_call(&in, &out, blocks + mix * SLOT);
        assert_int_equal(out.r[FX_RBX], 0xef010f);
        assert_int_equal(out.r[FX_RAX], pkru);
        assert_int_equal(ks_rdpkru(), pkru);
    }
    for (i = 0; i < 2; i++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            struct fx_regs in, out;
            int devnull = open("/dev/null", O_WRONLY);

            dup2(devnull, 2);
            memset(&in, 0, sizeof(in));
            in.r[FX_RSI] = i == 0 ? 0 : pkru & ~ad;
            in.r[FX_RFLAGS] = 0x2;
            fx_call(&in, &out, blocks + mix * SLOT);
            _exit(probe_t());
        }
        assert_int_equal(child_exit_code(pid), ABORTED);
    }
}

/* ---- 4. the jumps no longer open T -------------------------------------- */

static void
gadgets_closed_after_rewriting(void **state)
{
    size_t n, i, jumps = 0;
    uint64_t off;
    const struct inspect_rewrite *w = inspect_rewrites(&n);
    int code;

    size_t in_check = 0, xrstor_aborts = 0;

    (void) state;
    for (i = 0; i < ngadgets; i++) {
        code = jump_child(gadgets[i].at);
        in_check += code == IN_CHECK;
        print_message("after: %s %s (%s) at %#lx: exit %d\n",
                      gadgets[i].where, inspect_kind_name(gadgets[i].kind),
                      inspect_class_name(gadgets[i].cls),
                      (unsigned long) gadgets[i].at, code);
        assert_true(code != OPENED);
    }
    /* every byte of the spans and trampolines made for them */
    for (i = 0; i < n; i++) {
        bool ours = (w[i].span_start >= (uintptr_t) blocks
                     && w[i].span_start < (uintptr_t) blocks + PAGE)
                    || (w[i].span_start >= (uintptr_t) fx_begin
                        && w[i].span_start < (uintptr_t) fx_end);

        if (!ours) {
            continue;
        }
        for (off = 0; off < w[i].span; off++, jumps++) {
            code = jump_child(w[i].span_start + off);
            in_check += code == IN_CHECK;
            assert_true(code != OPENED);
        }
        for (off = 0; off < w[i].trampoline_len; off++, jumps++) {
            code = jump_child(w[i].trampoline + off);
            in_check += code == IN_CHECK;
            if (code == OPENED) {
                print_message("trampoline %#llx+%llu opens T\n",
                              (unsigned long long) w[i].trampoline,
                              (unsigned long long) off);
            }
            assert_true(code != OPENED);
        }
        /* the checked copy itself, with a value that opens T: the abort.
         * An XRSTOR may fault first, with T closed (XRSTORS at CPL 3: #GP,
         * #UD under QEMU; fx_real_prefixed's %fs:(%rax) is no area) */
        if (w[i].checked_site) {
            code = jump_child(w[i].checked_site);
            print_message("checked %s at %#llx: exit %d\n",
                          inspect_kind_name(w[i].kind),
                          (unsigned long long) w[i].checked_site, code);
            if (w[i].kind == INSPECT_WRPKRU) {
                assert_int_equal(code, ABORTED);
            } else {
                assert_true(code == ABORTED || code == 128 + SIGSEGV
                            || code == 128 + SIGILL);
                xrstor_aborts += code == ABORTED;
            }
        }
    }
    assert_true(xrstor_aborts >= 2);
    print_message("%zu jumps into spans and trampolines: none opens T; "
                  "%zu ended in an XRSTOR check's stack write; %zu not made "
                  "(their path meets an IRET or a far transfer: reaches_far)\n", jumps,
                  in_check, skipped_far);
}

/* ---- 5. the re-scan ----------------------------------------------------- */

static void
rescan_is_clean(void **state)
{
    struct inspect_report r = { 0 };
    size_t n, i, k;
    const struct inspect_rewrite *w = inspect_rewrites(&n);

    (void) state;
    assert_int_equal(inspect_process(&r), 0);
    assert_true(inspect_report_clean(&r));
    for (i = 0; i < n; i++) {
        int seen = 0;

        if (!w[i].checked_site) {
            continue;
        }
        for (k = 0; k < r.nhit; k++) {
            seen |= r.hit[k].addr - r.hit[k].insn_back == w[i].checked_site
                    && r.hit[k].cls == INSPECT_REAL && r.hit[k].safe;
        }
        assert_true(seen);
    }
    inspect_report_free(&r);
    inspect_report_free(&final);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gadgets_open_t_before_rewriting),
        cmocka_unit_test(rewrite_the_process),
        cmocka_unit_test(blocks_same_after_rewriting),
        cmocka_unit_test(gadgets_closed_after_rewriting),
        cmocka_unit_test(rescan_is_clean),
    };

    return cmocka_run_group_tests_name("rewrite_classes", tests, setup,
                                       teardown);
}
