/*
 * inspect_classify.c — where each hit lies relative to the instructions.
 *
 * Instruction boundaries come from a linear sweep with Zydis that starts
 * at anchors (section starts, function symbols, the start of an anonymous
 * mapping).  Decoding everything costs ~60 µs per 4 KiB page with Zydis,
 * so the sweep runs only where it is needed: for each hit, from the
 * nearest anchor at or before it (or from where the previous hit left the
 * sweep, if that is the same stretch), up to the instruction that holds
 * the hit's first byte.  The boundaries are the same as a full sweep that
 * restarts at every anchor would find.
 *
 * Code ranges and anchors are built only when a region has a hit (most
 * have none, and reading thousands of symbols costs more than the search).
 *
 * A stretch ends at the next anchor: an instruction that would run across
 * it is not decoded (its bytes count as outside code), because the anchor
 * is the better-founded start.  A byte that does not decode is skipped
 * (the sweep goes on at the next byte), as objdump does.
 */
#include <Zydis/Zydis.h>

#include "inspect_internal.h"

struct classifier {
    ZydisDecoder dec;
    struct insp_region *r;
    bool cursor_valid;
    uint64_t cursor_anchor;         /* the stretch the sweep is in */
    uint64_t cursor_pos;            /* an instruction start in it */
    insp_hit_fn hit;
    void *ctx;
};

static void
classifier_init(struct classifier *c, struct insp_region *r)
{
    /* minimal mode: no operand details, the raw field offsets remain */
    ZydisDecoderInit(&c->dec, ZYDIS_MACHINE_MODE_LONG_64,
                     ZYDIS_STACK_WIDTH_64);
    ZydisDecoderEnableMode(&c->dec, ZYDIS_DECODER_MODE_MINIMAL, ZYAN_TRUE);
    c->r = r;
    c->cursor_valid = false;
}

static bool
decode(const struct classifier *c, uint64_t pos, uint64_t limit,
       ZydisDecodedInstruction *insn)
{
    const uint8_t *p = c->r->bytes + (pos - c->r->base);
    return ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&c->dec, NULL, p,
                                                      limit - pos, insn));
}

/* Where the prefixes (legacy, REX, VEX/EVEX/XOP/MVEX) of insn end. */
static unsigned
prefix_end(const ZydisDecodedInstruction *insn)
{
    unsigned end = insn->raw.prefix_count;
    unsigned vex_end = 0;
    switch (insn->encoding) {
    case ZYDIS_INSTRUCTION_ENCODING_VEX:
        vex_end = insn->raw.vex.offset + insn->raw.vex.size;
        break;
    case ZYDIS_INSTRUCTION_ENCODING_EVEX:
        vex_end = insn->raw.evex.offset + 4u;
        break;
    case ZYDIS_INSTRUCTION_ENCODING_XOP:
        vex_end = insn->raw.xop.offset + 3u;
        break;
    case ZYDIS_INSTRUCTION_ENCODING_MVEX:
        vex_end = insn->raw.mvex.offset + 4u;
        break;
    default:
        break;
    }
    return vex_end > end ? vex_end : end;
}

static bool
in_field(unsigned off, unsigned start, unsigned size_bits)
{
    return size_bits && off >= start && off < start + size_bits / 8u;
}

/* The INSPECT_FIELD_* that byte off of insn belongs to. */
static uint8_t
field_of(const ZydisDecodedInstruction *insn, unsigned off)
{
    const ZydisDecodedInstructionRaw *raw = &insn->raw;
    for (int k = 0; k < 2; k++)
        if (in_field(off, raw->imm[k].offset, raw->imm[k].size))
            return INSPECT_FIELD_IMM;
    if (in_field(off, raw->disp.offset, raw->disp.size))
        return INSPECT_FIELD_DISP;
    if ((insn->attributes & ZYDIS_ATTRIB_HAS_SIB) && off == raw->sib.offset)
        return INSPECT_FIELD_SIB;
    if ((insn->attributes & ZYDIS_ATTRIB_HAS_MODRM)
        && off == raw->modrm.offset)
        return INSPECT_FIELD_MODRM;
    if (off < prefix_end(insn))
        return INSPECT_FIELD_PREFIX;
    return INSPECT_FIELD_OPCODE;        /* incl. a 3DNow! opcode suffix */
}

static bool
writes_pkru(ZydisMnemonic m)
{
    return m == ZYDIS_MNEMONIC_WRPKRU || m == ZYDIS_MNEMONIC_XRSTOR
        || m == ZYDIS_MNEMONIC_XRSTOR64 || m == ZYDIS_MNEMONIC_XRSTORS
        || m == ZYDIS_MNEMONIC_XRSTORS64;
}

/* Classify the instruction insn at start, which holds hit->pos. */
static void
classify_in(struct insp_raw_hit *hit, const ZydisDecodedInstruction *insn,
            uint64_t start)
{
    unsigned off = (unsigned) (hit->pos - start);
    hit->insn_back = (uint8_t) off;
    hit->insn_len = insn->length;
    for (unsigned k = off; k < off + 3 && k < insn->length; k++)
        hit->fields |= field_of(insn, k);

    if (off + 3 > insn->length) {
        hit->cls = INSPECT_SPANNING;
        return;
    }
    switch (field_of(insn, off)) {
    case INSPECT_FIELD_OPCODE:
        /* real: the opcode of a PKRU-writing instruction starts here */
        hit->cls = writes_pkru(insn->mnemonic) && off == prefix_end(insn)
                 ? INSPECT_REAL : INSPECT_IN_OPCODE;
        break;
    case INSPECT_FIELD_PREFIX:
        hit->cls = INSPECT_IN_OPCODE;
        break;
    case INSPECT_FIELD_MODRM:
    case INSPECT_FIELD_SIB:
        hit->cls = INSPECT_IN_MODRM_SIB;
        break;
    case INSPECT_FIELD_DISP:
        hit->cls = INSPECT_IN_DISP;
        break;
    default:
        hit->cls = INSPECT_IN_IMM;
        break;
    }
}

static void
classify(struct classifier *c, struct insp_raw_hit *hit)
{
    const struct insp_region *r = c->r;
    uint64_t p = hit->pos;

    hit->cls = INSPECT_OUTSIDE_CODE;
    hit->fields = hit->insn_back = hit->insn_len = 0;
    const struct insp_code *code = insp_code_at(r, p);
    if (!code)
        return;
    size_t k = insp_anchor_before(r, p);
    uint64_t anchor = r->anchor[k];
    uint64_t limit = code->end;
    if (k + 1 < r->nanchor && r->anchor[k + 1] < limit)
        limit = r->anchor[k + 1];

    uint64_t pos = anchor;
    if (c->cursor_valid && c->cursor_anchor == anchor && c->cursor_pos <= p)
        pos = c->cursor_pos;
    c->cursor_valid = true;
    c->cursor_anchor = anchor;

    ZydisDecodedInstruction insn;
    for (;;) {
        if (!decode(c, pos, limit, &insn)) {
            if (++pos > p) {            /* p itself did not decode */
                c->cursor_pos = pos;
                return;
            }
            continue;
        }
        if (pos + insn.length > p)
            break;
        pos += insn.length;
    }
    c->cursor_pos = pos;               /* the next hit may be in it too */
    classify_in(hit, &insn, pos);
}

static int
on_found(void *ctx, size_t i, enum inspect_kind kind)
{
    struct classifier *c = ctx;
    struct insp_raw_hit hit = { .pos = c->r->base + i, .kind = kind };
    if (insp_region_prepare(c->r) != 0)
        return -1;
    classify(c, &hit);
    return c->hit(c->ctx, &hit);
}

int
insp_scan_region(struct insp_region *r, insp_hit_fn hit, void *ctx)
{
    struct classifier c;
    classifier_init(&c, r);
    c.hit = hit;
    c.ctx = ctx;
    return insp_search(r->bytes, r->len, on_found, &c);
}

size_t
insp_decode_all(struct insp_region *r)
{
    struct classifier c;
    size_t count = 0;
    if (insp_region_prepare(r) != 0)
        return 0;
    classifier_init(&c, r);
    for (size_t i = 0; i < r->ncode; i++) {
        size_t k = insp_anchor_before(r, r->code[i].start);
        for (uint64_t pos = r->code[i].start; pos < r->code[i].end;) {
            while (k + 1 < r->nanchor && r->anchor[k + 1] <= pos)
                k++;
            uint64_t limit = r->code[i].end;
            if (k + 1 < r->nanchor && r->anchor[k + 1] < limit)
                limit = r->anchor[k + 1];
            ZydisDecodedInstruction insn;
            if (decode(&c, pos, limit, &insn)) {
                pos += insn.length;
                count++;
            } else {
                pos = pos + 1;
            }
        }
    }
    return count;
}
