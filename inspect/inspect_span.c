/*
 * inspect_span.c — which bytes the jump to a trampoline replaces, and
 * whether replacing them is safe.
 *
 * A `jmp rel32` takes 5 bytes.  The span is the instruction to rewrite
 * (a PKRU write, or one that holds a sequence) and the whole instructions
 * after it, until it has at least 5.  Where a function start or the end
 * of the code comes first, the span takes whole instructions before it
 * instead (never across a function start: the span may start at one).
 * Every
 * span byte after the first becomes part of the jump (or int3), so a
 * control transfer that lands inside the span, anywhere but its start,
 * would run garbage.  Such a span is refused, and the site stays unsafe
 * (the caller fails closed):
 *   - a function start (an anchor: a symbol from .symtab, else .dynsym, or
 *     a section start) inside the span, or the code ending in it;
 *   - a direct jump, conditional jump or call anywhere in the stretch
 *     around the site (from the anchor before it to the anchor after it)
 *     whose target lies inside the span.
 * What a sweep cannot see is not checked: indirect branches (jump tables,
 * computed gotos, function pointers to a place that is no symbol),
 * exception landing pads, and direct branches from other stretches into
 * the middle of this one.  Compilers branch into a function's middle only
 * from the function itself, which is the stretch when symbols are there.
 * The README lists what was checked by hand for libc's pkey_set and
 * ld.so's _dl_runtime_resolve_xsave*.  A span of one instruction (ld.so's
 * 5-byte XRSTORs) has no inside to land in, and is not swept.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "inspect_rewrite.h"

int
insp_refuse(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static void
decoder_init(ZydisDecoder *dec)
{
    /* lengths and relative immediates are all that is needed here */
    ZydisDecoderInit(dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisDecoderEnableMode(dec, ZYDIS_DECODER_MODE_MINIMAL, ZYAN_TRUE);
}

static bool
decode(const ZydisDecoder *dec, const struct insp_region *r, uint64_t pos,
       uint64_t limit, ZydisDecodedInstruction *insn)
{
    return pos < limit
        && ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
               dec, NULL, r->bytes + (pos - r->base), limit - pos, insn));
}

/* The linear sweep of the stretch [from, to), as the classifier does it:
 * does it pass through the site, and does a direct branch land inside the
 * span? */
static int
sweep(const ZydisDecoder *dec, const struct insp_region *r,
      const struct insp_span *s, uint64_t from, uint64_t to, char *why,
      size_t whylen)
{
    bool saw_site = false;
    for (uint64_t pos = from; pos < to;) {
        ZydisDecodedInstruction insn;
        if (!decode(dec, r, pos, to, &insn)) {
            pos++;                          /* resynchronise, as classify */
            continue;
        }
        saw_site = saw_site || pos == s->site;
        if (insn.raw.imm[0].is_relative) {
            uint64_t target = pos + insn.length
                            + (uint64_t) insn.raw.imm[0].value.s;
            if (target > s->site && target < s->site + s->len)
                return insp_refuse(why, whylen,
                              "a branch at site%+lld lands inside the "
                              "%u-byte span (at +%llu)",
                              (long long) (pos - s->site), s->len,
                              (unsigned long long) (target - s->site));
        }
        pos += insn.length;
    }
    if (!saw_site)
        return insp_refuse(why, whylen, "the sweep does not start an "
                      "instruction at the site");
    return 0;
}

int
insp_insn_holding(const struct insp_region *r, uint64_t lo, uint64_t hi,
                  uint64_t *start)
{
    ZydisDecoder dec;
    decoder_init(&dec);
    for (uint64_t p = lo; p < hi; p++) {
        const struct insp_code *code = insp_code_at(r, p);
        if (!code)
            continue;
        uint64_t next = insp_anchor_after(r, p);
        uint64_t end = code->end < next ? code->end : next;
        /* the classifier's sweep: from the anchor, skipping bytes that do
         * not decode, never across the next anchor */
        for (uint64_t pos = r->anchor[insp_anchor_before(r, p)]; pos <= p;) {
            ZydisDecodedInstruction insn;
            if (!decode(&dec, r, pos, end, &insn)) {
                pos++;
                continue;
            }
            if (pos + insn.length > p) {
                *start = pos;
                return 0;
            }
            pos += insn.length;
        }
    }
    return -1;
}

#define BACK 8                      /* instruction starts kept, backwards */

int
insp_span_plan(const struct insp_region *r, uint64_t insn, uint64_t floor,
               struct insp_span *s, char *why, size_t whylen)
{
    memset(s, 0, sizeof(*s));
    const struct insp_code *code = insp_code_at(r, insn);
    if (!code)
        return insp_refuse(why, whylen, "not in code");
    uint64_t next = insp_anchor_after(r, insn);
    uint64_t end = code->end < next ? code->end : next;
    uint64_t anchor = r->anchor[insp_anchor_before(r, insn)];

    ZydisDecoder dec;
    decoder_init(&dec);
    uint64_t starts[BACK + INSP_SPAN_MAX];
    size_t nstarts = 0;
    uint64_t pos = insn;
    bool cut = false;               /* an anchor or the code's end first */
    while (pos - insn < INSP_JMP_LEN) {
        ZydisDecodedInstruction in;
        if (pos >= end || (!decode(&dec, r, pos, end, &in)
                           && decode(&dec, r, pos, code->end, &in))) {
            cut = true;
            break;
        }
        if (!decode(&dec, r, pos, end, &in))
            return insp_refuse(why, whylen, "the bytes at site+%u do not "
                               "decode", (unsigned) (pos - insn));
        starts[nstarts++] = pos;
        pos += in.length;
    }
    uint64_t first = insn;
    if (cut && nstarts == 0)
        return insp_refuse(why, whylen, "the instruction runs into a "
                           "function start or the end of the code");
    if (cut) {
        /* whole instructions before insn instead: the last few starts of
         * the sweep of its stretch, contiguous up to insn */
        uint64_t ring[BACK], lo = anchor > floor ? anchor : floor;
        size_t nring = 0;
        uint64_t p = anchor;
        while (p < insn) {
            ZydisDecodedInstruction in;
            if (!decode(&dec, r, p, end, &in)) {
                p++;
                nring = 0;          /* a byte that is no instruction */
                continue;
            }
            ring[nring++ % BACK] = p;
            p += in.length;
        }
        if (p != insn)
            return insp_refuse(why, whylen, "the sweep does not start an "
                               "instruction at the site");
        size_t back = 0;
        first = UINT64_MAX;
        for (size_t k = 1; k <= nring && k <= BACK; k++) {
            uint64_t b = ring[(nring - k) % BACK];
            if (b < lo)
                break;
            if (pos - b >= INSP_JMP_LEN) {
                first = b;
                back = k;
                break;
            }
        }
        if (first == UINT64_MAX)
            return insp_refuse(why, whylen, "%s within %d bytes of the site",
                               end == next ? "a function starts"
                                           : "the code ends",
                               INSP_JMP_LEN);
        memmove(starts + back, starts, nstarts * sizeof(*starts));
        for (size_t k = 0; k < back; k++)
            starts[k] = ring[(nring - back + k) % BACK];
        nstarts += back;
    }
    if (pos - first > INSP_SPAN_MAX)
        return insp_refuse(why, whylen, "the span would be %u bytes long",
                           (unsigned) (pos - first));
    s->site = first;
    s->len = (uint8_t) (pos - first);
    s->ninsn = (uint8_t) nstarts;
    for (size_t k = 0; k < nstarts; k++)
        s->insn_off[k] = (uint8_t) (starts[k] - first);
    memcpy(s->bytes, r->bytes + (first - r->base), s->len);
    /* a run ends where executable memory does: no sequence crosses that */
    s->nbefore = (uint8_t) (first - r->base < 3 ? first - r->base : 3);
    memcpy(s->before, r->bytes + (first - r->base) - s->nbefore, s->nbefore);
    uint64_t left = r->base + r->len - pos;
    s->nafter = (uint8_t) (left < 3 ? left : 3);
    memcpy(s->after, r->bytes + (pos - r->base), s->nafter);

    /* one instruction: nothing inside it to land on (and the classifier's
     * sweep already found it at the site) */
    if (s->ninsn == 1)
        return 0;
    return sweep(&dec, r, s, anchor, end, why, whylen);
}
