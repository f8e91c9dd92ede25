/* ks_domain: set up the protection domain T.  See ks_domain.h. */

#define _GNU_SOURCE
#include "ks_domain.h"

#include <cpuid.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "ks_heap.h"
#include "ks_ops.h"
#include "ks_pkru.h"
#include "ks_platform.h"
#include "ks_range.h"

#define PAGE  4096u

/* The gate's page (ks_gate.S): written here, then read-only. */
struct ks_gate_page {
    uint32_t  pkru_t;
    uint32_t  pkru_u;
    uint32_t  vec;                          /* 0 SSE, 1 AVX, 2 AVX-512 */
    int32_t   pkey;                         /* 0 until initialised */
    int32_t   ready;
};
extern struct ks_gate_page  ks_gate_page;
extern uintptr_t            ks_gate_tstack_top;

/* Which vector registers the OS lets us use, so the gate scrubs them all. */
static uint32_t
vector_level(void)
{
    unsigned a, b, c, d;
    uint32_t xcr0_lo, xcr0_hi;

    __cpuid(1, a, b, c, d);
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX)) {
        return 0;
    }
    __asm__ volatile ("xgetbv" : "=a" (xcr0_lo), "=d" (xcr0_hi) : "c" (0));
    if ((xcr0_lo & 0x6) != 0x6) {           /* XMM and YMM state */
        return 0;
    }
    __cpuid_count(7, 0, a, b, c, d);
    if ((b & bit_AVX512F) && (xcr0_lo & 0xe0) == 0xe0) {  /* k, zmm */
        return 2;
    }
    return 1;
}

static int
tag(void *start, size_t len, int prot, int pkey, char *err, size_t errlen)
{
    if (pkey_mprotect(start, len, prot, pkey) != 0
        || ks_range_add(start, len) != 0)
    {
        snprintf(err, errlen, "cannot tag %zu bytes at %p with pkey %d: %s",
                 len, start, pkey, strerror(errno));
        return -1;
    }
    return 0;
}

struct own_data {
    uintptr_t  start, end;                  /* writable PT_LOAD */
    uintptr_t  relro_end;                   /* 0 if none in it */
};

/* Find the writable segment of the object that holds the gate page. */
static int
find_own_data(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct own_data *own = arg;
    uintptr_t page = (uintptr_t) &ks_gate_page, s, e;
    int i, found = 0;

    (void) size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) {
            continue;
        }
        s = info->dlpi_addr + ph->p_vaddr;
        e = s + ph->p_memsz;
        if (page >= s && page < e) {
            own->start = s & ~(uintptr_t) (PAGE - 1);
            own->end = (e + PAGE - 1) & ~(uintptr_t) (PAGE - 1);
            found = 1;
        }
    }
    if (!found) {
        return 0;
    }
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type == PT_GNU_RELRO) {
            own->relro_end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        }
    }
    return 1;
}

/*
 * Tag the keystore's .data/.bss, which hold the private libcrypto's state
 * too: everything writable after relocation, except the gate page, which
 * U must read.  The RELRO part (.data.rel.ro, .dynamic, GOT) stays
 * untagged: ld.so reads every library's .dynamic on each symbol lookup in
 * the process (lazy binding, dlsym), and the GOT shares its pages.  RELRO
 * holds no secret and is read-only since relocation (BIND_NOW); lockdown
 * seals it.
 */
static int
tag_own_data(int pkey, char *err, size_t errlen)
{
    struct own_data own = { 0, 0, 0 };
    uintptr_t start, page = (uintptr_t) &ks_gate_page;

    if (dl_iterate_phdr(find_own_data, &own) != 1) {
        snprintf(err, errlen, "cannot find the keystore's data segment");
        return -1;
    }
    start = own.start;
    if (own.relro_end > start && own.relro_end <= own.end) {
        start = (own.relro_end + PAGE - 1) & ~(uintptr_t) (PAGE - 1);
    }
    if (page < start || page + PAGE > own.end) {
        snprintf(err, errlen, "the gate page is not in the data segment");
        return -1;
    }
    if (page > start
        && tag((void *) start, page - start, PROT_READ | PROT_WRITE, pkey,
               err, errlen) != 0)
    {
        return -1;
    }
    if (own.end > page + PAGE
        && tag((void *) (page + PAGE), own.end - page - PAGE,
               PROT_READ | PROT_WRITE, pkey, err, errlen) != 0)
    {
        return -1;
    }
    return 0;
}

/* The T stack, with an inaccessible guard page at each end. */
static int
make_stack(size_t size, int pkey, char *err, size_t errlen)
{
    unsigned char *m;

    size = (size + PAGE - 1) & ~(size_t) (PAGE - 1);
    m = mmap(NULL, size + 2 * PAGE, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the T stack: %s", strerror(errno));
        return -1;
    }
    if (tag(m + PAGE, size, PROT_READ | PROT_WRITE, pkey, err, errlen) != 0) {
        return -1;
    }
    /* the guards are part of T too: no U pointer may point at them */
    if (ks_range_add(m, PAGE) != 0 || ks_range_add(m + PAGE + size, PAGE) != 0)
    {
        snprintf(err, errlen, "too many T ranges");
        return -1;
    }
    ks_gate_tstack_top = (uintptr_t) (m + PAGE + size);  /* 16-aligned */
    return 0;
}

int
ks_domain_init(const struct ks_domain_config *cfg, char *err, size_t errlen)
{
    char why[160];
    void *heap;
    size_t heap_len;
    uint32_t bits;
    int pkey;

    if (errlen > 0) {
        err[0] = '\0';
    }
    if (ks_gate_page.ready) {
        snprintf(err, errlen, "the keystore is already initialised");
        return -1;
    }
    if (ks_platform_check(why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }

    /* Any free key; the calling thread may use it until we leave below. */
    pkey = pkey_alloc(0, 0);
    if (pkey < 0) {
        snprintf(err, errlen, "pkey_alloc: %s", strerror(errno));
        return -1;
    }

    if (ks_heap_init(cfg->heap_size) != 0
        || ks_heap_range(&heap, &heap_len) != 0)
    {
        snprintf(err, errlen, "cannot reserve the T heap (%zu bytes)",
                 cfg->heap_size ? cfg->heap_size : KS_HEAP_DEFAULT_SIZE);
        return -1;
    }
    if (tag(heap, heap_len, PROT_READ | PROT_WRITE, pkey, err, errlen) != 0
        || make_stack(cfg->stack_size ? cfg->stack_size
                                      : KS_DOMAIN_STACK_DEFAULT,
                      pkey, err, errlen) != 0)
    {
        return -1;
    }

    bits = 3u << (2 * pkey);                /* access- and write-disable */
    ks_gate_page.pkru_t = ks_rdpkru() & ~bits;
    ks_gate_page.pkru_u = ks_gate_page.pkru_t | bits;
    ks_gate_page.vec = vector_level();
    ks_gate_page.pkey = pkey;
    ks_gate_page.ready = 1;
    if (mprotect(&ks_gate_page, PAGE, PROT_READ) != 0) {
        snprintf(err, errlen, "cannot make the gate page read-only: %s",
                 strerror(errno));
        return -1;
    }
    return tag_own_data(pkey, err, errlen);
}

int
ks_domain_close(char *err, size_t errlen)
{
    /* Leave T the one way there is: through the gate. */
    if (ks_gate_call(KS_OP_NOP, NULL) != 0) {
        snprintf(err, errlen, "the first gate call failed");
        return -1;
    }
    return 0;
}

int
ks_domain_pkey(void)
{
    return ks_gate_page.ready ? ks_gate_page.pkey : -1;
}
