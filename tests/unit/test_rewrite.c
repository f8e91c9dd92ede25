/*
 * The gadget test of the dynamic rewriter (needs MPK: runs natively on a
 * CPU with pku, else in the QEMU guest).  Linked against
 * libkeystore-test.so (T memory and its key), libinspect.a, and
 * librewrite_lazy.so, with -z lazy so that ld.so's lazy binding runs.
 *
 * libc's pkey_set ends in `wrpkru; xor %eax,%eax; ret`: jumped to with
 * EAX = 0 and a return address on the stack, it opens every key and
 * returns.  The tests, in this order (cmocka keeps it):
 *   1. control, before rewriting: that jump opens T (a child reads a T
 *      heap byte), and so do hand-made WRPKRU and XRSTOR blocks in
 *      anonymous memory;
 *   2. inspect_rewrite_process after ks_init: libc's WRPKRU, ld.so's two
 *      XRSTORs and the blocks are rewritten, the final scan is clean;
 *   3. the same jump now ends the child with the trampoline's exit 70,
 *      before the T read;
 *   4. pkey_set on another key still works, and on the keystore's key
 *      only while it keeps the key denied;
 *   5. a lazily bound call, made for the first time now, resolves through
 *      the rewritten XRSTOR and returns the right value; and with T
 *      opened by a forged signal frame, that XRSTOR's check ends the
 *      process (before the rewrite, the same call went through);
 *   6. a signal handler (run by the kernel with PKRU's access-disable
 *      bit set but not write-disable) can still bind lazily and call
 *      pkey_set: the check asks for the AD bit only;
 *   7. a re-scan finds nothing unsafe;
 *   8. jumps to every byte of the rewritten span, to the trampoline's
 *      WRPKRU and past it never open T;
 *   9. the blocks keep their semantics (registers, RIP-relative loads,
 *      vector state) and abort when they would open T;
 *  10. a WRPKRU that no rule rewrites (inside PUSH's immediate: no
 *      register can be saved around an instruction that moves RSP) is
 *      left: the rewrite fails closed (EPERM) and the report names it.
 *      (The other classes are rewritten: test_rewrite_classes.)
 * Exit codes of the children: 11 T was read, 42 the T read faulted on the
 * keystore's key, 43 another SIGSEGV, 70 the trampoline's (or gate's)
 * abort, 128 + n killed by signal n.
 */

#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../keystore/ks_pkru.h"
#include "ks_test.h"
#include "../../inspect/inspect.h"

double rewrite_lazy_mix(long a, long b, long c, long d, long e, long f,
                        double x0, double x1, double x2, double x3,
                        double x4, double x5, double x6, double x7);
int rewrite_lazy_probe(void);

enum { OPENED = 11, CLOSED = 42, OTHER_SEGV = 43, ABORTED = 70 };

#define PAGE 4096u
#define K 0x5a                      /* blocks are stored XOR K, see below */
#define X(b) ((uint8_t) ((b) ^ K))

static int          pkey;           /* the keystore's */
static uintptr_t    t_byte;         /* a byte of the T heap */
static uintptr_t    pkey_set_site;  /* libc's WRPKRU, found by the scanner */
static uint8_t     *blocks;         /* the hand-made blocks (r-x) */

/* The blocks, in one anonymous page (int3 elsewhere).  Stored XOR-ed with
 * a key the compiler cannot see, so that this binary holds no WRPKRU or
 * XRSTOR byte string (the final scan must be clean). */
#define B_WR    0x000               /* wrpkru; xor %eax,%eax; ret */
#define B_XR    0x040               /* xrstor (%rdi); mov %rsi,%rax; ret */
#define B_RIP   0x080               /* wrpkru; mov 0x...(%rip),%rax; ret */
#define B_DATA  0x800               /* the quadword B_RIP loads */
static const uint8_t blk_wr[] = { X(0x0f), X(0x01), X(0xef), X(0x31),
                                  X(0xc0), X(0xc3) };
static const uint8_t blk_xr[] = { X(0x0f), X(0xae), X(0x2f), X(0x48),
                                  X(0x89), X(0xf0), X(0xc3) };
/* disp32 = B_DATA - (B_RIP + 10) = 0x776 */
static const uint8_t blk_rip[] = { X(0x0f), X(0x01), X(0xef), X(0x48),
                                   X(0x8b), X(0x05), X(0x76), X(0x07),
                                   X(0x00), X(0x00), X(0xc3) };
static const uint64_t rip_data = 0x1122334455667788ull;

static void
unxor(uint8_t *dst, const uint8_t *src, size_t n)
{
    uint8_t k = K;
    __asm__ volatile ("" : "+r" (k));
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ k;
}

/* ---- jumping in --------------------------------------------------------- */

/* Jump to target with EAX = eax, ECX = EDX = 0 and a return address back
 * here on the stack, as if target were the tail of a function we called
 * (pkey_set's `wrpkru; xor %eax,%eax; ret`). */
static void __attribute__((noinline))
jump_ret(uintptr_t target, uint32_t eax)
{
    register uint64_t t asm("rdi") = target;
    register uint64_t a asm("rsi") = eax;

    __asm__ volatile (
        "sub $128, %%rsp\n\t"               /* keep off the red zone */
        "lea 1f(%%rip), %%rax\n\t"
        "push %%rax\n\t"
        "mov %%esi, %%eax\n\t"
        "xor %%ecx, %%ecx\n\t"
        "xor %%edx, %%edx\n\t"
        "jmp *%%rdi\n"
        "1:\n\t"
        "add $128, %%rsp\n\t"
        : "+r" (t), "+r" (a)
        :
        : "rax", "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc",
          "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
          "xmm15");
}

/* Call block with EAX = eax, ECX = EDX = 0: its RAX. */
static uint64_t __attribute__((noinline))
call_wr(uintptr_t block, uint32_t eax)
{
    register uint64_t a asm("rax") = eax;
    register uint64_t c asm("rcx") = 0;
    register uint64_t d asm("rdx") = 0;
    register uint64_t b asm("r10") = block;

    __asm__ volatile ("sub $128, %%rsp\n\t call *%%r10\n\t add $128, %%rsp"
                      : "+r" (a), "+r" (c), "+r" (d), "+r" (b)
                      :
                      : "rdi", "rsi", "r8", "r9", "r11", "memory", "cc");
    return a;
}

/* Call the XRSTOR block with area in RDI, EDX:EAX = mask, RSI = 0x1234:
 * its RAX, and XMM0's low half after it in *xmm0. */
static uint64_t __attribute__((noinline))
call_xr(void *area, uint64_t mask, uint64_t *xmm0)
{
    register uint64_t a asm("rax") = (uint32_t) mask;
    register uint64_t d asm("rdx") = mask >> 32;
    register void *di asm("rdi") = area;
    register uint64_t si asm("rsi") = 0x1234;
    register uint64_t b asm("r10") = (uintptr_t) blocks + B_XR;
    uint64_t x;

    __asm__ volatile ("sub $128, %%rsp\n\t call *%%r10\n\t add $128, %%rsp\n\t"
                      "movq %%xmm0, %%rcx"
                      : "+r" (a), "+r" (d), "+r" (di), "+r" (si), "+r" (b),
                        "=c" (x)
                      :
                      : "r8", "r9", "r11", "memory", "cc", "xmm0", "xmm1",
                        "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
                        "xmm14", "xmm15");
    *xmm0 = x;
    return a;
}

/* XSAVE areas (standard form, 64-byte aligned).  open: RFBM = PKRU with
 * XSTATE_BV[9] = 0, so XRSTOR loads PKRU's init value 0: every key open.
 * sse: XMM0 = a pattern, MXCSR = its default. */
#define XPKRU (1ull << 9)
#define XSSE (1ull << 1)
#define XMM0_PATTERN 0x0123456789abcdefull
static uint8_t area_open[4096] __attribute__((aligned(64)));
static uint8_t area_sse[4096] __attribute__((aligned(64)));

static void
make_areas(void)
{
    uint32_t mxcsr = 0x1f80;
    uint64_t bv = XSSE, x = XMM0_PATTERN;

    memset(area_open, 0, sizeof(area_open));
    memset(area_sse, 0, sizeof(area_sse));
    memcpy(area_sse + 24, &mxcsr, 4);
    memcpy(area_sse + 160, &x, 8);
    memcpy(area_sse + 512, &bv, 8);             /* XSTATE_BV */
}

/* ---- children ----------------------------------------------------------- */

static void
segv_handler(int sig, siginfo_t *si, void *ctx)
{
    (void) sig; (void) ctx;
    _exit(si->si_code == SEGV_PKUERR && (int) si->si_pkey == pkey
          ? CLOSED : OTHER_SEGV);
}

/* Read the T byte: OPENED if that works (else the handler ends us). */
static int
probe_t(void)
{
    (void) *(volatile uint8_t *) t_byte;
    return OPENED;
}

/*
 * A way to open T that uses no WRPKRU or XRSTOR in U: the signal frame
 * holds the interrupted PKRU in its XSAVE area, and rt_sigreturn loads it
 * back.  This handler zeroes it (the lockdown will deny rt_sigreturn for
 * this reason).  Used to reach ld.so's lazy binding with T open.
 */
static void
open_t_on_sigreturn(int sig, siginfo_t *si, void *ctx)
{
    uint8_t *xsave = (uint8_t *) ((ucontext_t *) ctx)->uc_mcontext.fpregs;
    unsigned size = 0, offset = 0, c, d;
    uint64_t bv;
    uint32_t zero = 0;

    (void) sig; (void) si;
    __get_cpuid_count(0xd, 9, &size, &offset, &c, &d);  /* PKRU's place */
    memcpy(&bv, xsave + 512, 8);                        /* XSTATE_BV */
    bv |= 1ull << 9;
    memcpy(xsave + 512, &bv, 8);
    memcpy(xsave + offset, &zero, 4);
}

/* In a child: T opened by a forged signal frame, then the first call of a
 * lazily bound function (ld.so's XRSTOR runs with T open). */
static void
lazy_call_with_t_open(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = open_t_on_sigreturn;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    if ((ks_rdpkru() & (1u << (2 * pkey))) != 0) {
        _exit(3);                       /* the frame did not open T */
    }
    if (rewrite_lazy_probe() != 7) {
        _exit(4);
    }
}

enum how { JUMP, CALL_WR, CALL_XR_OPEN, PKEY_SET_KS, LAZY_T_OPEN };

/* Do one thing in a child, then read T: the child's exit code, or 128 +
 * the signal that ended it. */
static int
in_child(enum how how, uintptr_t target, uint32_t arg)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        uint64_t x;
        int devnull = open("/dev/null", O_WRONLY);

        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        /* cmocka catches these to report a test; in a child they must
         * simply end it */
        signal(SIGILL, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGTRAP, SIG_DFL);
        alarm(10);                      /* a jump into garbage may loop */
        if (how != PKEY_SET_KS) {
            dup2(devnull, 2);           /* the abort line: shown in test 4 */
        }
        switch (how) {
        case JUMP:
            jump_ret(target, arg);
            break;
        case CALL_WR:
            call_wr(target, arg);
            break;
        case CALL_XR_OPEN:
            call_xr(area_open, XPKRU, &x);
            break;
        case PKEY_SET_KS:
            if (pkey_set(pkey, arg) != 0) {
                _exit(1);
            }
            break;
        case LAZY_T_OPEN:
            lazy_call_with_t_open();
            break;
        }
        _exit(probe_t());
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status)
                             : 128 + WTERMSIG(status);
}

/* ---- setup -------------------------------------------------------------- */

static int
setup(void **state)
{
    struct ks_stats st;
    struct inspect_report r = { 0 };
    size_t i, found = 0;

    if (setup_keystore(state) != 0 || ks_stats(&st) != 0) {
        return -1;
    }
    pkey = st.pkey;
    t_byte = ranges[R_HEAP].start + ranges[R_HEAP].len - 16;
    if (inspect_gate_add_keystore("libkeystore-test.so") != 0
        || inspect_process(&r) != 0) {
        return -1;
    }
    /* libc's pkey_set WRPKRU, as the scanner reports it */
    for (i = 0; i < r.nhit; i++) {
        const struct inspect_hit *h = &r.hit[i];

        if (h->kind == INSPECT_WRPKRU && h->cls == INSPECT_REAL
            && strcmp(h->symbol, "pkey_set") == 0
            && strstr(h->object, "libc.so") != NULL) {
            pkey_set_site = h->addr;
            found++;
        }
    }
    inspect_report_free(&r);
    if (found != 1) {
        fprintf(stderr, "pkey_set's WRPKRU: %zu found\n", found);
        return -1;
    }

    blocks = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blocks == MAP_FAILED) {
        return -1;
    }
    memset(blocks, 0xcc, PAGE);
    unxor(blocks + B_WR, blk_wr, sizeof(blk_wr));
    unxor(blocks + B_XR, blk_xr, sizeof(blk_xr));
    unxor(blocks + B_RIP, blk_rip, sizeof(blk_rip));
    memcpy(blocks + B_DATA, &rip_data, 8);
    make_areas();
    return mprotect(blocks, PAGE, PROT_READ | PROT_EXEC);
}

/* ---- 1. the control ----------------------------------------------------- */

static void
gadget_opens_t_before_rewriting(void **state)
{
    uint32_t ad = 1u << (2 * pkey);

    (void) state;
    assert_int_equal(ks_rdpkru() & ad, ad);
    /* the probe alone faults on the keystore's key */
    assert_int_equal(in_child(JUMP, pkey_set_site + 5, 0), CLOSED);
    /* pkey_set's WRPKRU with EAX = 0 opens T */
    assert_int_equal(in_child(JUMP, pkey_set_site, 0), OPENED);
    /* and so do the hand-made blocks */
    assert_int_equal(in_child(CALL_WR, (uintptr_t) blocks + B_WR, 0), OPENED);
    assert_int_equal(in_child(CALL_WR, (uintptr_t) blocks + B_RIP, 0),
                     OPENED);
    assert_int_equal(in_child(CALL_XR_OPEN, 0, 0), OPENED);
    /* lazy binding with T open (by a forged signal frame) goes through */
    assert_int_equal(in_child(LAZY_T_OPEN, 0, 0), OPENED);
}

/* ---- 2. rewriting ------------------------------------------------------- */

static struct inspect_report final;

static const struct inspect_rewrite *
rewrite_at(uint64_t site)
{
    size_t n, i;
    const struct inspect_rewrite *w = inspect_rewrites(&n);

    for (i = 0; i < n; i++) {
        if (w[i].site == site) {
            return &w[i];
        }
    }
    return NULL;
}

static void
rewrite_the_process(void **state)
{
    size_t n, i, ld_xrstor = 0;
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
        print_message("rewritten: %s at %#llx in %s, span %u -> "
                      "trampoline %#llx (%u bytes)\n",
                      inspect_kind_name(w[i].kind),
                      (unsigned long long) w[i].site, w[i].object,
                      w[i].span, (unsigned long long) w[i].trampoline,
                      w[i].trampoline_len);
        ld_xrstor += w[i].kind == INSPECT_XRSTOR
                     && strstr(w[i].object, "ld-linux") != NULL;
    }
    /* libc's pkey_set, ld.so's two XRSTORs, the three blocks */
    assert_int_equal(n, 6);
    assert_int_equal(ld_xrstor, 2);
    assert_non_null(rewrite_at(pkey_set_site));
    assert_int_equal(rewrite_at(pkey_set_site)->span, 5);
    assert_non_null(rewrite_at((uintptr_t) blocks + B_WR));
    assert_non_null(rewrite_at((uintptr_t) blocks + B_XR));
    assert_non_null(rewrite_at((uintptr_t) blocks + B_RIP));
    /* a second call finds nothing left to do */
    {
        struct inspect_report again = { 0 };

        assert_int_equal(inspect_rewrite_process(pkey, &again), 0);
        assert_int_equal(again.rewritten, 0);
        inspect_report_free(&again);
    }
}

/* ---- 3. the gadget is refused ------------------------------------------- */

static void
gadget_aborts_after_rewriting(void **state)
{
    uint32_t ad = 1u << (2 * pkey), pkru = ks_rdpkru();

    (void) state;
    assert_int_equal(in_child(JUMP, pkey_set_site, 0), ABORTED);
    assert_int_equal(in_child(JUMP, pkey_set_site, pkru & ~ad), ABORTED);
    /* control: with a value that keeps T denied, it returns, T closed */
    assert_int_equal(in_child(JUMP, pkey_set_site, pkru), CLOSED);
}

/* ---- 4. pkey_set on other keys ------------------------------------------ */

static void
pkey_set_other_key_works(void **state)
{
    uint32_t ks_bits = 3u << (2 * pkey), before = ks_rdpkru();
    int k2 = pkey_alloc(0, 0);
    uint32_t k2_bits;

    (void) state;
    assert_true(k2 > 0 && k2 != pkey);
    k2_bits = 3u << (2 * k2);
    assert_int_equal(pkey_set(k2, PKEY_DISABLE_ACCESS), 0);
    assert_int_equal(ks_rdpkru() & k2_bits, 1u << (2 * k2));
    assert_int_equal(pkey_get(k2), PKEY_DISABLE_ACCESS);
    assert_int_equal(pkey_set(k2, PKEY_DISABLE_WRITE), 0);
    assert_int_equal(ks_rdpkru() & k2_bits, 2u << (2 * k2));
    assert_int_equal(pkey_set(k2, 0), 0);
    assert_int_equal(ks_rdpkru() & k2_bits, 0);
    /* only that key's bits changed */
    assert_int_equal(ks_rdpkru() & ~k2_bits, before & ~k2_bits);
    assert_int_equal(ks_rdpkru() & ks_bits, ks_bits);
    assert_int_equal(pkey_free(k2), 0);

    /* on the keystore's key: opening it aborts; access-disable alone
     * still denies T, so it passes and T stays closed */
    assert_int_equal(in_child(PKEY_SET_KS, 0, 0), ABORTED);
    assert_int_equal(in_child(PKEY_SET_KS, 0, PKEY_DISABLE_WRITE), ABORTED);
    assert_int_equal(in_child(PKEY_SET_KS, 0, PKEY_DISABLE_ACCESS), CLOSED);
}

/* ---- 5. lazy binding ---------------------------------------------------- */

static int
first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void) size;
    *(ElfW(Addr) *) data = info->dlpi_addr;     /* the program itself */
    return 1;
}

/* The program's PLT slot (GOT entry, R_X86_64_JUMP_SLOT) for name, from
 * its own file's .rela.plt. */
static uintptr_t *
got_slot(const char *name)
{
    ElfW(Addr) base = 0;
    uintptr_t *slot = NULL;
    struct stat st;
    int fd = open("/proc/self/exe", O_RDONLY);
    const uint8_t *img;
    const Elf64_Ehdr *eh;
    const Elf64_Shdr *sh;
    const char *shstr;
    unsigned i;

    dl_iterate_phdr(first_object, &base);
    assert_true(fd >= 0 && fstat(fd, &st) == 0);
    img = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    assert_true(img != MAP_FAILED);
    eh = (const Elf64_Ehdr *) img;
    sh = (const Elf64_Shdr *) (img + eh->e_shoff);
    shstr = (const char *) img + sh[eh->e_shstrndx].sh_offset;
    for (i = 0; i < eh->e_shnum; i++) {
        const Elf64_Shdr *sym, *str;
        const Elf64_Rela *rel;
        size_t k;

        if (sh[i].sh_type != SHT_RELA
            || strcmp(shstr + sh[i].sh_name, ".rela.plt") != 0) {
            continue;
        }
        sym = &sh[sh[i].sh_link];
        str = &sh[sym->sh_link];
        rel = (const Elf64_Rela *) (img + sh[i].sh_offset);
        for (k = 0; k < sh[i].sh_size / sizeof(*rel); k++) {
            const Elf64_Sym *s = (const Elf64_Sym *) (img + sym->sh_offset)
                                 + ELF64_R_SYM(rel[k].r_info);

            if (ELF64_R_TYPE(rel[k].r_info) == R_X86_64_JUMP_SLOT
                && strcmp((const char *) img + str->sh_offset + s->st_name,
                          name) == 0) {
                slot = (uintptr_t *) (base + rel[k].r_offset);
            }
        }
    }
    munmap((void *) img, st.st_size);
    close(fd);
    return slot;
}

static void
lazy_binding_after_rewriting(void **state)
{
    uintptr_t *slot = got_slot("rewrite_lazy_mix");
    void *fn = dlsym(RTLD_DEFAULT, "rewrite_lazy_mix");
    unsigned a = 0, b = 0, c = 0, d = 0;
    double v;

    (void) state;
    /* ld.so takes _dl_runtime_resolve_xsave(c) (the rewritten XRSTORs)
     * when the OS enables XSAVE, else the fxsave variant */
    assert_true(__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27)));
    assert_true(__get_cpuid_count(0xd, 1, &a, &b, &c, &d));
    print_message("lazy binding through _dl_runtime_resolve_%s\n",
                  a & 2 ? "xsavec" : "xsave");

    /* (never &rewrite_lazy_mix in this file: taking its address makes the
     * linker bind the call through the GOT at load time) */
    assert_non_null(slot);
    assert_non_null(fn);
    /* not bound yet: the slot still points back into the PLT */
    assert_true(*slot != (uintptr_t) fn);
    v = rewrite_lazy_mix(1, 2, 3, 4, 5, 6, 0.5, 0.25, 0.125, 1.5, 2.5, 3.5,
                         4.5, 5.5);
    assert_true(v == 91.0 + 0.5 + 0.5 + 0.375 + 6 + 12.5 + 21 + 31.5 + 44);
    assert_true(*slot == (uintptr_t) fn);                      /* bound */

    /* the resolver really runs through the checked XRSTOR: with T open
     * (test 1 showed the same call going through), its check ends the
     * child */
    assert_int_equal(in_child(LAZY_T_OPEN, 0, 0), ABORTED);
}

/* ---- 6. signal handlers ------------------------------------------------- */

/* The kernel runs a handler with its init_pkru: access-disable set, write-
 * disable clear, for keys 1-15.  The check asks for AD only (denied is
 * denied), so a handler may still bind lazily and call pkey_set. */
static volatile uint32_t handler_pkru;
static volatile int      handler_result;
static int               handler_key;

static void
handler_binds_and_sets(int sig)
{
    (void) sig;
    handler_pkru = ks_rdpkru();
    handler_result = rewrite_lazy_probe() == 7      /* first call: lazy */
                     && pkey_set(handler_key, PKEY_DISABLE_ACCESS) == 0;
}

static void
signal_handlers_keep_working(void **state)
{
    uint32_t ks_bits = 3u << (2 * pkey);
    pid_t pid;

    (void) state;
    handler_key = pkey_alloc(0, 0);
    assert_true(handler_key > 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGUSR2, handler_binds_and_sets);
        raise(SIGUSR2);
        /* AD only in the handler; both bits again after it */
        _exit(handler_result
              && (handler_pkru & ks_bits) == 1u << (2 * pkey)
              && (ks_rdpkru() & ks_bits) == ks_bits ? 0 : 5);
    }
    assert_int_equal(child_exit_code(pid), 0);
    assert_int_equal(pkey_free(handler_key), 0);
}

/* ---- 7. the re-scan ----------------------------------------------------- */

static void
rescan_is_clean(void **state)
{
    struct inspect_report r = { 0 };
    size_t n, i, k;
    const struct inspect_rewrite *w = inspect_rewrites(&n);

    (void) state;
    assert_int_equal(inspect_process(&r), 0);
    assert_int_equal(r.unsafe, 0);
    assert_true(inspect_report_clean(&r));
    for (i = 0; i < r.nhit; i++) {
        assert_true(r.hit[i].addr != pkey_set_site);    /* a jmp now */
    }
    for (i = 0; i < n; i++) {       /* each checked copy: real and safe */
        int seen = 0;

        for (k = 0; k < r.nhit; k++) {
            seen |= r.hit[k].addr - r.hit[k].insn_back == w[i].checked_site
                    && r.hit[k].cls == INSPECT_REAL && r.hit[k].safe;
        }
        assert_true(seen);
    }
    inspect_report_free(&r);
}

/* ---- 8. jumps into the rewritten span ----------------------------------- */

static void
jumps_into_span_never_open(void **state)
{
    const struct inspect_rewrite *w = rewrite_at(pkey_set_site);
    unsigned off;
    int code;

    (void) state;
    assert_non_null(w);
    /* the old WRPKRU address is the jmp: the check aborts */
    assert_int_equal(in_child(JUMP, w->site, 0), ABORTED);
    /* the middle of the jmp (its displacement): whatever that does, T
     * stays closed */
    for (off = 1; off < w->span; off++) {
        code = in_child(JUMP, w->site + off, 0);
        print_message("jump to site+%u: exit %d\n", off, code);
        assert_true(code != OPENED);
    }
    /* after the span: the ret, T closed */
    assert_int_equal(in_child(JUMP, w->site + w->span, 0), CLOSED);
    /* the trampoline's own WRPKRU: the check after it aborts */
    assert_int_equal(in_child(JUMP, w->checked_site, 0), ABORTED);
    /* past it, into the check: no PKRU write happened, T closed or the
     * check aborts on the forged EAX */
    code = in_child(JUMP, w->checked_site + 3, 0);
    assert_true(code == ABORTED || code == CLOSED);
}

/* ---- 9. the blocks keep their semantics --------------------------------- */

static void
blocks_after_rewriting(void **state)
{
    uint32_t pkru = ks_rdpkru();
    uint64_t x = 0;

    (void) state;
    /* opening T aborts */
    assert_int_equal(in_child(CALL_WR, (uintptr_t) blocks + B_WR, 0),
                     ABORTED);
    assert_int_equal(in_child(CALL_WR, (uintptr_t) blocks + B_RIP, 0),
                     ABORTED);
    assert_int_equal(in_child(CALL_XR_OPEN, 0, 0), ABORTED);
    /* the same code with harmless values does what it did before */
    assert_int_equal(call_wr((uintptr_t) blocks + B_WR, pkru), 0);
    assert_int_equal(call_wr((uintptr_t) blocks + B_RIP, pkru), rip_data);
    assert_int_equal(ks_rdpkru(), pkru);
    assert_int_equal(call_xr(area_sse, XSSE, &x), 0x1234);
    assert_int_equal(x, XMM0_PATTERN);
    assert_int_equal(ks_rdpkru(), pkru);
}

/* ---- 10. what no rule rewrites: fail closed ----------------------------- */

/* push $0xef010f; pop %rax; ret: WRPKRU inside an immediate that no rule
 * rewrites safely */
static const uint8_t blk_imm[] = { X(0x68), X(0x0f), X(0x01), X(0xef),
                                   X(0x00), X(0x58), X(0xc3) };

static void
unrewritable_site_fails_closed(void **state)
{
    pid_t pid;

    (void) state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct inspect_report r = { 0 };
        uint8_t *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        size_t i, in_imm = 0;
        int rc;

        if (p == MAP_FAILED) {
            _exit(2);
        }
        memset(p, 0xcc, PAGE);
        unxor(p, blk_imm, sizeof(blk_imm));
        mprotect(p, PAGE, PROT_READ | PROT_EXEC);
        rc = inspect_rewrite_process(pkey, &r);
        for (i = 0; i < r.nhit; i++) {
            in_imm += r.hit[i].addr == (uintptr_t) p + 1 && !r.hit[i].safe
                      && r.hit[i].cls == INSPECT_IN_IMM;
        }
        _exit(rc == -1 && errno == EPERM && r.unsafe == 1 && in_imm == 1
              && r.rewritten == 0 ? 0 : 1);
    }
    assert_int_equal(child_exit_code(pid), 0);
}

static int
teardown(void **state)
{
    (void) state;
    inspect_report_free(&final);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gadget_opens_t_before_rewriting),
        cmocka_unit_test(rewrite_the_process),
        cmocka_unit_test(gadget_aborts_after_rewriting),
        cmocka_unit_test(pkey_set_other_key_works),
        cmocka_unit_test(lazy_binding_after_rewriting),
        cmocka_unit_test(signal_handlers_keep_working),
        cmocka_unit_test(rescan_is_clean),
        cmocka_unit_test(jumps_into_span_never_open),
        cmocka_unit_test(blocks_after_rewriting),
        cmocka_unit_test(unrewritable_site_fails_closed),
    };

    return cmocka_run_group_tests_name("rewrite", tests, setup, teardown);
}
