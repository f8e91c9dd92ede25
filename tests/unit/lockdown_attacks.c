/*
 * The attacks of test_lockdown.c, classes 1-4 of pku-attacks.md: the
 * kernel reading or writing T for U, code written through /proc/self/mem,
 * T's pages re-tagged or replaced, new code.  (Classes 5-13:
 * lockdown_attacks2.c.)  See lockdown_attacks.h.
 *
 * An attack that got T open for U proves it by reading the canary with a
 * plain load: if T is still closed that load faults, and the child's
 * SIGSEGV handler (test_lockdown.c) ends it with a code the test reports.
 */

#define _GNU_SOURCE
#include "lockdown_attacks.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"

#define PAGE  4096u

/* xor ecx,ecx; xor edx,edx; xor eax,eax; wrpkru; ret: every key open */
static const unsigned char lk_open_all_code[10] = {
    0x31, 0xc9, 0x31, 0xd2, 0x31, 0xc0, 0x0f, 0x01, 0xef, 0xc3,
};

void
lk_record(struct lk_outcome *o, const char *step, long rc)
{
    int e = errno;

    snprintf(o->step, sizeof(o->step), "%s", step);
    o->rc = rc;
    o->err = rc == -1 ? e : 0;
}

static int
find_ks_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct lk_ctx *c = arg;
    uintptr_t f = (uintptr_t) ks_gate_call, s;
    int i;

    (void) size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        s = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && f >= s
            && f < s + ph->p_memsz)
        {
            c->ks_text_start = s;
            c->ks_text_end = s + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

int
lk_find_ks_text(struct lk_ctx *c)
{
    return dl_iterate_phdr(find_ks_text, c) == 1 ? 0 : -1;
}

static int
t_peek(uintptr_t addr, unsigned char *buf, size_t len)
{
    struct ks_args_test_mem a = { addr, buf, len };

    return ks_gate_call(KS_OP_TEST_PEEK, &a) == 0 ? 0 : -1;
}

int
lk_t_canary_intact(const struct lk_ctx *c)
{
    unsigned char now[LK_CANARY_LEN];

    return t_peek(c->canary, now, sizeof(now)) == 0
           && memcmp(now, c->canary_bytes, sizeof(now)) == 0;
}

/* T reads len bytes of value v at the canary (what the attacker put). */
static int
t_reads(const struct lk_ctx *c, unsigned char v)
{
    unsigned char now[LK_CANARY_LEN];
    size_t i;

    if (t_peek(c->canary, now, sizeof(now)) != 0) {
        return 0;
    }
    for (i = 0; i < sizeof(now) && now[i] == v; i++) {
    }
    return i == sizeof(now);
}

int
lk_u_reads_canary(const struct lk_ctx *c, struct lk_outcome *o)
{
    int same = memcmp((const void *) c->canary, c->canary_bytes,
                      LK_CANARY_LEN) == 0;

    snprintf(o->detail, sizeof(o->detail), "U read T's canary directly%s",
             same ? "" : " (wrong bytes)");
    return same;
}

/* ---- 1: the kernel as deputy -------------------------------------------- */

void
lk_proc_mem_read(const struct lk_ctx *c, struct lk_outcome *o)
{
    unsigned char buf[LK_CANARY_LEN];
    int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    lk_record(o, "open(/proc/self/mem)", fd);
    if (fd < 0) {
        return;
    }
    n = pread(fd, buf, sizeof(buf), (off_t) c->canary);
    lk_record(o, "pread(/proc/self/mem)", n);
    close(fd);
    o->success = n == sizeof(buf) && memcmp(buf, c->canary_bytes, n) == 0;
    snprintf(o->detail, sizeof(o->detail), "read T's canary");
}

/* process_vm_readv or _writev of T's canary, on this process itself */
static void
vm_rw(const struct lk_ctx *c, struct lk_outcome *o, int write)
{
    unsigned char buf[LK_CANARY_LEN];
    struct iovec l = { buf, sizeof(buf) };
    struct iovec r = { (void *) c->canary, sizeof(buf) };
    ssize_t n;

    memset(buf, 0xaa, sizeof(buf));
    n = write ? process_vm_writev(getpid(), &l, 1, &r, 1, 0)
              : process_vm_readv(getpid(), &l, 1, &r, 1, 0);
    lk_record(o, write ? "process_vm_writev(self)" : "process_vm_readv(self)",
              n);
    o->success = n == sizeof(buf)
                 && (write ? t_reads(c, 0xaa)
                           : memcmp(buf, c->canary_bytes, n) == 0);
    snprintf(o->detail, sizeof(o->detail), "%s T's canary",
             write ? "overwrote" : "read");
}

void
lk_vm_readv(const struct lk_ctx *c, struct lk_outcome *o)
{
    vm_rw(c, o, 0);
}

void
lk_vm_writev(const struct lk_ctx *c, struct lk_outcome *o)
{
    vm_rw(c, o, 1);
}

/* ---- 2: code written through /proc/self/mem ------------------------------- */

static int __attribute__((noinline))
lk_victim(void)
{
    __asm__ volatile ("");
    return 1;
}

static int (*volatile victim)(void) = lk_victim;

void
lk_proc_mem_code(const struct lk_ctx *c, struct lk_outcome *o)
{
    static const unsigned char ret2[6] = { 0xb8, 2, 0, 0, 0, 0xc3 };
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    ssize_t n;

    (void) c;
    lk_record(o, "open(/proc/self/mem, O_RDWR)", fd);
    if (fd < 0) {
        return;
    }
    /* FOLL_FORCE writes into r-x text: here "return 2", a WRPKRU alike */
    n = pwrite(fd, ret2, sizeof(ret2), (off_t) (uintptr_t) lk_victim);
    lk_record(o, "pwrite(/proc/self/mem) into r-x code", n);
    close(fd);
    o->success = n == sizeof(ret2) && victim() == 2;
    snprintf(o->detail, sizeof(o->detail), "changed r-x code");
}

/* ---- 3: T's pages re-tagged, moved, replaced, discarded ------------------ */

void
lk_pkey_mprotect(const struct lk_ctx *c, struct lk_outcome *o)
{
    long rc = pkey_mprotect((void *) c->canary_page, PAGE,
                            PROT_READ | PROT_WRITE, 0);

    lk_record(o, "pkey_mprotect(T page, key 0)", rc);
    o->success = rc == 0 && lk_u_reads_canary(c, o);
}

void
lk_mprotect_xonly(const struct lk_ctx *c, struct lk_outcome *o)
{
    /* PROT_EXEC alone moves the page to the execute-only key; PROT_READ|
     * PROT_WRITE then resets an execute-only page to key 0 */
    long rc = mprotect((void *) c->canary_page, PAGE, PROT_EXEC);

    lk_record(o, "mprotect(T page, PROT_EXEC)", rc);
    if (rc != 0) {
        return;
    }
    rc = mprotect((void *) c->canary_page, PAGE, PROT_READ | PROT_WRITE);
    lk_record(o, "mprotect(T page, PROT_READ|PROT_WRITE)", rc);
    o->success = rc == 0 && lk_u_reads_canary(c, o);
}

/* Put a page of 0x5a where T's canary page was; 1 if T now reads it. */
static int
supply_page(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap((void *) c->canary_page, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

    if (p == MAP_FAILED) {
        return 0;
    }
    memset(p, 0x5a, PAGE);
    snprintf(o->detail, sizeof(o->detail), "T reads the attacker's page");
    return t_reads(c, 0x5a);
}

void
lk_mremap(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *to = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *p = mremap((void *) c->canary_page, PAGE, PAGE,
                     MREMAP_MAYMOVE | MREMAP_FIXED, to);

    lk_record(o, "mremap(T page away)", p == MAP_FAILED ? -1 : 0);
    o->success = p != MAP_FAILED && supply_page(c, o);
}

void
lk_munmap_remap(const struct lk_ctx *c, struct lk_outcome *o)
{
    long rc = munmap((void *) c->canary_page, PAGE);

    lk_record(o, "munmap(T page)", rc);
    o->success = rc == 0 && supply_page(c, o);
}

void
lk_map_fixed(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap((void *) c->canary_page, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

    lk_record(o, "mmap(MAP_FIXED over T)", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        memset(p, 0x5a, PAGE);
        snprintf(o->detail, sizeof(o->detail), "T reads the attacker's page");
        o->success = t_reads(c, 0x5a);
    }
}

void
lk_madvise(const struct lk_ctx *c, struct lk_outcome *o)
{
    long rc = madvise((void *) c->canary_page, PAGE, MADV_DONTNEED);

    lk_record(o, "madvise(T page, MADV_DONTNEED)", rc);
    o->success = rc == 0 && t_reads(c, 0);
    snprintf(o->detail, sizeof(o->detail), "T's canary page zeroed");
}

void
lk_userfaultfd(const struct lk_ctx *c, struct lk_outcome *o)
{
    /* user-mode-only works unprivileged: the way to supply T's next page */
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

    (void) c;
    lk_record(o, "userfaultfd(UFFD_USER_MODE_ONLY)", fd);
    o->success = fd >= 0;
    snprintf(o->detail, sizeof(o->detail), "got a userfaultfd");
}

/*
 * The gate's page holds the PKRU values the gate loads (ks_gate.S).  Made
 * writable, U's value becomes T's, and the next gate call leaves T open.
 * Found as an attacker would: the RIP-relative load before the enter
 * WRPKRU (mov ks_gate_pkru_t(%rip),%eax; xor %ecx,%ecx; xor %edx,%edx).
 */
void
lk_gate_page(const struct lk_ctx *c, struct lk_outcome *o)
{
    const unsigned char *g = (const unsigned char *) (uintptr_t) ks_gate_call;
    uint32_t *pkru = NULL;
    int32_t disp;
    unsigned i;
    long rc;

    for (i = 10; i < 256 && pkru == NULL; i++) {
        if (memcmp(g + i, "\x0f\x01\xef", 3) == 0
            && memcmp(g + i - 10, "\x8b\x05", 2) == 0
            && memcmp(g + i - 4, "\x31\xc9\x31\xd2", 4) == 0)
        {
            memcpy(&disp, g + i - 8, 4);
            pkru = (uint32_t *) (uintptr_t) (g + i - 4 + disp);
        }
    }
    if (pkru == NULL) {
        lk_record(o, "find the gate page", -1);
        return;
    }
    rc = mprotect((void *) ((uintptr_t) pkru & ~(uintptr_t) (PAGE - 1)), PAGE,
                  PROT_READ | PROT_WRITE);
    lk_record(o, "mprotect(gate page, RW)", rc);
    if (rc != 0) {
        return;
    }
    pkru[1] = pkru[0];                      /* pkru_u := pkru_t */
    ks_gate_call(KS_OP_NOP, NULL);          /* leaves with T open */
    o->success = lk_u_reads_canary(c, o);
}

/* ---- 4: new code ------------------------------------------------------------ */

static int
run_open_all(void *code, const struct lk_ctx *c, struct lk_outcome *o)
{
    ((void (*)(void)) code)();
    return lk_u_reads_canary(c, o);
}

void
lk_mmap_exec(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    lk_record(o, "mmap(PROT_EXEC)", p == MAP_FAILED ? -1 : 0);
    if (p != MAP_FAILED) {
        memcpy(p, lk_open_all_code, sizeof(lk_open_all_code));
        o->success = run_open_all(p, c, o);
    }
}

void
lk_mprotect_exec(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long rc;

    if (p == MAP_FAILED) {
        lk_record(o, "mmap(RW)", -1);
        return;
    }
    memcpy(p, lk_open_all_code, sizeof(lk_open_all_code));
    rc = mprotect(p, PAGE, PROT_READ | PROT_EXEC);
    lk_record(o, "mprotect(RW page, PROT_EXEC)", rc);
    o->success = rc == 0 && run_open_all(p, c, o);
}

/* A page below 4 GiB (int 0x80 takes 32-bit pointers) with the code. */
void
lk_int80_prep(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);

    (void) c;
    if (p != MAP_FAILED) {
        memcpy(p, lk_open_all_code, sizeof(lk_open_all_code));
    }
    o->aux[0] = p == MAP_FAILED ? 0 : (long) (uintptr_t) p;
}

void
lk_int80(const struct lk_ctx *c, struct lk_outcome *o)
{
    long rc;

    if (o->aux[0] == 0) {
        lk_record(o, "mmap(MAP_32BIT)", -1);
        return;
    }
    /* i386 mprotect (125) through int 0x80: AUDIT_ARCH_I386, which an
     * x86-64-only filter that forgot the arch check would not match */
    __asm__ volatile ("int $0x80"
                      : "=a" (rc)
                      : "a" (125), "b" (o->aux[0]), "c" (PAGE),
                        "d" (PROT_READ | PROT_EXEC)
                      : "memory", "r8", "r9", "r10", "r11");
    if (rc < 0 && rc > -4096) {
        errno = (int) -rc;
        rc = -1;
    }
    lk_record(o, "int 0x80 mprotect(PROT_EXEC)", rc);
    o->success = rc == 0 && run_open_all((void *) o->aux[0], c, o);
}

void
lk_x32(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long rc;

    (void) c;
    /* x32 mprotect: the x86-64 number with bit 30 */
    rc = syscall(0x40000000 | SYS_mprotect, p, PAGE, PROT_READ);
    lk_record(o, "x32 mprotect", rc);
    /* the goal here is only to reach the kernel past the filter: this
     * kernel may have x32 turned off (ENOSYS), which is its own answer */
    o->success = rc == 0 || o->err == ENOSYS;
    snprintf(o->detail, sizeof(o->detail), "reached the kernel (%s)",
             rc == 0 ? "done" : "ENOSYS: x32 is off in this kernel");
}

/* Code that exists before lockdown (here: one page, r-x)... */
void
lk_code_prep(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    (void) c;
    o->aux[0] = 0;
    if (p != MAP_FAILED) {
        memset(p, 0xc3, PAGE);              /* ret */
        if (mprotect(p, PAGE, PROT_READ | PROT_EXEC) == 0) {
            o->aux[0] = (long) (uintptr_t) p;
        }
    }
}

/* ... made writable, rewritten with a WRPKRU and run. */
void
lk_code_rw(const struct lk_ctx *c, struct lk_outcome *o)
{
    void *p = (void *) (uintptr_t) o->aux[0];
    long rc;

    if (p == NULL) {
        lk_record(o, "map code", -1);
        return;
    }
    rc = mprotect(p, PAGE, PROT_READ | PROT_WRITE);
    lk_record(o, "mprotect(r-x code, RW)", rc);
    if (rc != 0) {
        return;
    }
    memcpy(p, lk_open_all_code, sizeof(lk_open_all_code));
    o->success = mprotect(p, PAGE, PROT_READ | PROT_EXEC) == 0
                 && run_open_all(p, c, o);
}
