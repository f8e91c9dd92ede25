/*
 * inspect_check.c — the machine code of the check that follows each
 * PKRU-writing instruction in a trampoline, and of the abort it ends in.
 *
 * The check passes when PKRU denies the keystore's key, that is when the
 * key's access-disable bit (bit 2 * pkey) is set.  AD alone denies every
 * data access, read or write, so it is the bit that matters.  The
 * write-disable bit is not required: the kernel starts every signal
 * handler with its init_pkru (AD set, WD clear, for keys 1-15), and
 * ld.so's lazy-binding trampoline (an XRSTOR site) must keep working in a
 * handler.  The gate's own check is stricter (it compares the exact value
 * it wrote), which a rewritten site cannot do: it does not know the value
 * its caller means to write.
 *
 * After a WRPKRU the check touches no memory and no flags.  WRPKRU
 * faults unless ECX = EDX = 0 (the low 32 bits), and it leaves
 * PKRU = EAX, so EAX is the value to test (RDPKRU would give the same and
 * clear the upper halves of RAX and RDX).  The test uses only
 * instructions that leave RFLAGS alone: BSWAP, MOV, NOT, and LEA with a
 * 16-bit destination as a shift; JECXZ branches on it.  Only CL and CH
 * are changed, and they are 0 again when the check passes, so RCX is
 * exactly what WRPKRU left.  Not touching the stack matters: an attacker
 * who jumps to the WRPKRU also chooses RSP, and T may be open then.
 *
 * After an XRSTOR (XRSTOR64, XRSTORS) every general register may be live
 * and nothing is known about their values, so the check saves RAX, RCX,
 * RDX and RFLAGS on the stack, below the red zone (leaf code may keep data
 * in the 128 bytes below RSP), reads PKRU with RDPKRU and restores them.
 * Those pushes go to wherever RSP points, with the PKRU the XRSTOR just
 * loaded; if that opened T the process ends right after them.  (XRSTORS
 * faults at CPL 3 before the check runs; it gets the same form so that
 * every real site is handled by one rule.)
 *
 * On failure: RSI = the abort line in the trampoline's data page, EDX =
 * its length, then a jump to the page's abort stub: write(2), then
 * exit_group(70), then ud2, as the gate does.
 */
#include <string.h>

#include "inspect_rewrite.h"

struct emit {
    uint8_t *out;
    size_t n;
    uint64_t at;                    /* runtime address of out[0] */
    bool ok;
};

static void
put(struct emit *e, const uint8_t *b, size_t len)
{
    memcpy(e->out + e->n, b, len);
    e->n += len;
}

#define PUT(e, ...)                                                        \
    do {                                                                   \
        static const uint8_t b_[] = { __VA_ARGS__ };                       \
        put((e), b_, sizeof(b_));                                          \
    } while (0)

static void
put32(struct emit *e, uint32_t v)
{
    uint8_t b[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16),
                     (uint8_t) (v >> 24) };
    put(e, b, 4);
}

/* A rel32 to target, measured from the end of these 4 bytes. */
static void
put_rel32(struct emit *e, uint64_t target)
{
    int64_t rel = (int64_t) (target - (e->at + e->n + 4));
    if (rel != (int32_t) rel)
        e->ok = false;
    put32(e, (uint32_t) rel);
}

#define FAIL_LEN 17

/* lea msg(%rip),%rsi; mov $len,%edx; jmp abort_stub */
static void
put_fail(struct emit *e, uint64_t msg, uint32_t msglen, uint64_t abort_stub)
{
    PUT(e, 0x48, 0x8d, 0x35);
    put_rel32(e, msg);
    PUT(e, 0xba);
    put32(e, msglen);
    PUT(e, 0xe9);
    put_rel32(e, abort_stub);
}

/* CX <<= k (k < 16), flag-free: LEA with a 16-bit destination writes only
 * CX, and the low 16 bits of the address do not depend on RCX's upper
 * bits. */
static void
shl_cx(struct emit *e, unsigned k)
{
    for (; k >= 3; k -= 3)
        PUT(e, 0x66, 0x8d, 0x0c, 0xcd, 0, 0, 0, 0);  /* lea 0(,%rcx,8),%cx */
    if (k == 2)
        PUT(e, 0x66, 0x8d, 0x0c, 0x8d, 0, 0, 0, 0);  /* lea 0(,%rcx,4),%cx */
    else if (k == 1)
        PUT(e, 0x66, 0x8d, 0x0c, 0x09);              /* lea (%rcx,%rcx),%cx */
}

/*
 * EAX = PKRU, ECX = EDX = 0 (low halves).  With b = 2 * pkey, the AD bit
 * is bit t = b % 8 of byte b / 8 of EAX:
 *   CL = ~that byte           (BSWAP brings bytes 2 and 3 to AH and AL,
 *                              and a second BSWAP puts them back)
 *   CX <<= 15 - t             bit t at bit 15, the bits above it gone
 *   CX = CH; CX <<= 1; CX = CH   the bits below it gone
 * so ECX = 0 exactly when the AD bit is set, and then RCX is unchanged.
 */
static void
check_wrpkru(struct emit *e, int pkey)
{
    unsigned bit = 2u * (unsigned) pkey, byte = bit / 8, t = bit % 8;
    if (byte >= 2)
        PUT(e, 0x0f, 0xc8);                     /* bswap %eax */
    if (byte == 0 || byte == 3)
        PUT(e, 0x88, 0xc1);                     /* mov %al,%cl */
    else
        PUT(e, 0x88, 0xe1);                     /* mov %ah,%cl */
    if (byte >= 2)
        PUT(e, 0x0f, 0xc8);                     /* bswap %eax */
    PUT(e, 0xf6, 0xd1);                         /* not %cl */
    shl_cx(e, 15 - t);
    PUT(e, 0x88, 0xe9, 0xb5, 0x00);             /* mov %ch,%cl; mov $0,%ch */
    shl_cx(e, 1);
    PUT(e, 0x88, 0xe9, 0xb5, 0x00);             /* mov %ch,%cl; mov $0,%ch */
    PUT(e, 0x67, 0xe3, FAIL_LEN);               /* jecxz over the fail */
}

/* Anything may be live: save, RDPKRU, test, restore. */
static void
check_rdpkru_head(struct emit *e, int pkey)
{
    PUT(e, 0x48, 0x8d, 0x64, 0x24, 0x80);       /* lea -0x80(%rsp),%rsp */
    PUT(e, 0x9c, 0x50, 0x51, 0x52);             /* pushfq; push rax/rcx/rdx */
    PUT(e, 0x31, 0xc9);                         /* xor %ecx,%ecx */
    PUT(e, 0x0f, 0x01, 0xee);                   /* rdpkru */
    PUT(e, 0xa9);                               /* test $AD,%eax */
    put32(e, 1u << (2 * pkey));
    PUT(e, 0x75, FAIL_LEN);                     /* jnz over the fail */
}

static void
check_rdpkru_tail(struct emit *e)
{
    PUT(e, 0x5a, 0x59, 0x58, 0x9d);             /* pop rdx/rcx/rax; popfq */
    PUT(e, 0x48, 0x8d, 0xa4, 0x24, 0x80, 0, 0, 0);  /* lea 0x80(%rsp),%rsp */
}

/* The check, and where its fail block (put_fail) starts in it. */
static size_t
emit_check(enum inspect_kind kind, int pkey, uint8_t *out, uint64_t at,
           uint64_t msg, uint32_t msglen, uint64_t abort_stub,
           size_t *fail_off)
{
    struct emit e = { out, 0, at, true };
    if (pkey < 1 || pkey > 15)
        return 0;
    if (kind == INSPECT_WRPKRU) {
        check_wrpkru(&e, pkey);
        *fail_off = e.n;
        put_fail(&e, msg, msglen, abort_stub);
    } else {
        check_rdpkru_head(&e, pkey);
        *fail_off = e.n;
        put_fail(&e, msg, msglen, abort_stub);
        check_rdpkru_tail(&e);
    }
    return e.ok ? e.n : 0;
}

size_t
insp_emit_check(enum inspect_kind kind, int pkey, uint8_t *out, uint64_t at,
                uint64_t msg, uint32_t msglen, uint64_t abort_stub)
{
    size_t fail_off;
    return emit_check(kind, pkey, out, at, msg, msglen, abort_stub,
                      &fail_off);
}

/*
 * ERIM's second safe form, by its bytes: the instruction that ends at
 * insn_end is followed at once by exactly the check for pkey, and the
 * check's failure path (lea line(%rip),%rsi; mov $len,%edx; jmp stub)
 * goes to an abort stub (write; exit_group(70); ud2) in the same region.
 * The line and its length are free: they only say what is written.  The
 * positions may be addresses or file offsets: the rel32s are the same
 * when the check and the stub lie in one segment, which the region is.
 */
bool
insp_checked_form(const struct insp_region *r, uint64_t insn_end,
                  enum inspect_kind kind, int pkey)
{
    uint8_t want[INSP_CHECK_MAX], stub[INSP_ABORT_LEN];
    size_t fail_off;
    size_t n = emit_check(kind, pkey, want, insn_end, insn_end, 0, insn_end,
                          &fail_off);
    if (n == 0 || insn_end < r->base || insn_end - r->base > r->len
        || r->len - (insn_end - r->base) < n)
        return false;
    const uint8_t *have = r->bytes + (insn_end - r->base);
    size_t tail = fail_off + FAIL_LEN;
    if (memcmp(have, want, fail_off) != 0
        || memcmp(have + tail, want + tail, n - tail) != 0
        || memcmp(have + fail_off, want + fail_off, 3) != 0     /* lea */
        || have[fail_off + 7] != want[fail_off + 7]             /* mov */
        || have[fail_off + 12] != want[fail_off + 12])          /* jmp */
        return false;
    int32_t rel;
    memcpy(&rel, have + fail_off + 13, 4);
    uint64_t target = insn_end + tail + (uint64_t) (int64_t) rel;
    insp_emit_abort(stub);
    return target >= r->base && target - r->base <= r->len
        && r->len - (target - r->base) >= INSP_ABORT_LEN
        && memcmp(r->bytes + (target - r->base), stub, INSP_ABORT_LEN) == 0;
}

size_t
insp_emit_abort(uint8_t *out)
{
    static const uint8_t stub[INSP_ABORT_LEN] = {
        0xb8, 0x01, 0x00, 0x00, 0x00,           /* mov $1,%eax (write) */
        0xbf, 0x02, 0x00, 0x00, 0x00,           /* mov $2,%edi */
        0x0f, 0x05,                             /* syscall */
        0xb8, 0xe7, 0x00, 0x00, 0x00,           /* mov $231,%eax */
        0xbf, 0x46, 0x00, 0x00, 0x00,           /* mov $70,%edi */
        0x0f, 0x05,                             /* syscall (exit_group) */
        0x0f, 0x0b,                             /* ud2 */
    };
    memcpy(out, stub, sizeof(stub));
    return sizeof(stub);
}

bool
insp_bytes_have_sequence(const uint8_t *b, size_t len, size_t lo, size_t hi)
{
    /* a sequence is the 0F byte i, the two after it, and for XRSTOR64 the
     * REX.W before it */
    size_t from = lo >= 2 ? lo - 2 : 0;
    for (size_t i = from; i <= hi && i < len; i++) {
        int kind = insp_match_at(b, len, i);
        if (kind < 0)
            continue;
        size_t first = kind == INSPECT_XRSTOR64 ? i - 1 : i;
        if (first < hi && i + 2 >= lo)
            return true;
    }
    return false;
}
