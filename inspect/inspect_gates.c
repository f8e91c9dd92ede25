/*
 * inspect_gates.c — the registry of gate sites, the only places where a
 * real WRPKRU/XRSTOR is safe (DESIGN.md: "Safe: only the keystore's
 * registered gate sites"), and the second rule: the rewritten sites.
 *
 * A rewritten site is ERIM's other safe form, a PKRU-writing instruction
 * followed at once by a check that PKRU still denies the keystore's key
 * (inspect_tramp.c).  Only the rewriter registers one, by the address of
 * the copy in its trampoline, together with the trampoline's bytes as it
 * wrote them; the site counts as safe only while those bytes are still
 * there, so a trampoline changed afterwards (or memory reused at the same
 * address) is unsafe again.  The same form is also recognised by its
 * bytes alone (insp_checked_form, for the key set by inspect_set_pkey):
 * that is how a statically rewritten file, or its mapping, is judged.
 *
 * Sites are registered by address (a running process) or by symbol name in
 * a named object (also works offline, and for hidden labels such as the
 * keystore's, which no other object can take the address of).  The symbol
 * is looked up in the object's own symbol table, from the very file that
 * is mapped (inspect_process checks device and inode), so a different
 * library cannot declare itself a gate by carrying the same name.
 */
#include <stdlib.h>
#include <string.h>

#include "inspect_internal.h"

#define MAX_ADDRESSES 64
#define MAX_SYMBOLS 16

struct gate_symbol {
    char object[128];                   /* file base name, "" = any */
    char symbol[128];
};

static uint64_t addresses[MAX_ADDRESSES];
static size_t naddresses;
static struct gate_symbol symbols[MAX_SYMBOLS];
static size_t nsymbols;

int
inspect_gate_add_address(const void *site)
{
    if (naddresses == MAX_ADDRESSES)
        return -1;
    addresses[naddresses++] = (uint64_t) (uintptr_t) site;
    return 0;
}

int
inspect_gate_add_symbol(const char *object, const char *symbol)
{
    if (nsymbols == MAX_SYMBOLS || !symbol || !*symbol
        || strlen(symbol) >= sizeof(symbols[0].symbol)
        || (object && strlen(object) >= sizeof(symbols[0].object)))
        return -1;
    struct gate_symbol *g = &symbols[nsymbols++];
    insp_copy_name(g->object, sizeof(g->object), object ? object : "");
    insp_copy_name(g->symbol, sizeof(g->symbol), symbol);
    return 0;
}

int
inspect_gate_add_keystore(const char *object)
{
    if (inspect_gate_add_symbol(object, INSPECT_KS_GATE_ENTER) != 0)
        return -1;
    return inspect_gate_add_symbol(object, INSPECT_KS_GATE_LEAVE);
}

void
inspect_gate_reset(void)
{
    naddresses = 0;
    nsymbols = 0;
}

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

bool
insp_gate_is_site(const char *object, const struct insp_elf *elf,
                  uint64_t insn_off, uint64_t insn_addr)
{
    if (insn_addr != INSPECT_NONE)
        for (size_t i = 0; i < naddresses; i++)
            if (addresses[i] == insn_addr)
                return true;
    if (!elf || insn_off == INSPECT_NONE)
        return false;
    for (size_t i = 0; i < nsymbols; i++) {
        if (symbols[i].object[0]
            && strcmp(symbols[i].object, base_name(object)) != 0)
            continue;
        for (size_t k = 0; k < elf->nsym; k++)
            if (elf->sym[k].off == insn_off
                && strcmp(elf->sym[k].name, symbols[i].symbol) == 0)
                return true;
    }
    return false;
}

static int checked_pkey;

void
inspect_set_pkey(int pkey)
{
    checked_pkey = pkey >= 1 && pkey <= 15 ? pkey : 0;
}

int
insp_checked_pkey(void)
{
    return checked_pkey;
}

struct rewritten {
    uint64_t site, tramp;
    size_t len;
    uint8_t *bytes;                     /* the trampoline as written */
};

static struct rewritten *rewritten;
static size_t nrewritten, caprewritten;

int
insp_rewritten_add(uint64_t site, uint64_t tramp, const uint8_t *bytes,
                   size_t len)
{
    if (site < tramp || site >= tramp + len)
        return -1;
    if (nrewritten == caprewritten) {
        size_t ncap = caprewritten ? caprewritten * 2 : 16;
        struct rewritten *n = realloc(rewritten, ncap * sizeof(*n));
        if (!n)
            return -1;
        rewritten = n;
        caprewritten = ncap;
    }
    uint8_t *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, bytes, len);
    rewritten[nrewritten++] = (struct rewritten) { site, tramp, len, copy };
    return 0;
}

bool
insp_rewritten_is_site(uint64_t insn_addr, const struct insp_region *r)
{
    for (size_t i = 0; i < nrewritten; i++) {
        const struct rewritten *w = &rewritten[i];
        if (w->site != insn_addr)
            continue;
        /* compared with the bytes the scan saw, never read in place */
        return w->tramp >= r->base && w->tramp - r->base <= r->len
            && w->len <= r->len - (w->tramp - r->base)
            && memcmp(r->bytes + (w->tramp - r->base), w->bytes,
                      w->len) == 0;
    }
    return false;
}
