/*
 * inspect_xform.c — one instruction made free of WRPKRU/XRSTOR byte
 * sequences, for its copy in a trampoline: ERIM's rules for a sequence
 * that lies inside an instruction (in its ModRM or SIB byte, its
 * displacement, its immediate, or an opcode whose ModRM follows).
 *
 * Each rule gives an equivalent sequence: the same registers, memory and
 * flags afterwards as the instruction itself gives.  The rules, in the
 * order tried; the first whose bytes hold no sequence is used:
 *   relocate      the instruction as it is, moved (a RIP-relative
 *                 displacement or a branch's rel32 changes with the move);
 *   substitute    a register X of the instruction (in its ModRM or SIB
 *                 byte) is replaced by a register R it does not use:
 *                     xchg X,R; insn[X:=R]; xchg X,R
 *                 XCHG of two registers touches neither memory nor flags;
 *   split-imm     mov $imm,r = mov $a,r; lea b(r),r          (a + b = imm)
 *                 or lea b(r,r,m-1),r with a * m + b = imm (m = 3, 5, 9:
 *                 for a 64-bit immediate whose top half holds the bytes)
 *   move-disp     insn d(B,I,s) = lea a(B),B; insn (d-a)(B,I,s); lea -a(B),B
 *                 when the instruction uses the base B nowhere else (or
 *                 only overwrites all of it: then no LEA back);
 *   scratch-imm   op $imm,x = op R,x, with R loaded as in split-imm and
 *                 saved on the stack below the red zone:
 *                     lea -128(%rsp),%rsp; push R; mov $a,R; lea b(R),R;
 *                     op R,x; pop R; lea 128(%rsp),%rsp
 *                 for ADD/OR/ADC/SBB/AND/SUB/XOR/CMP/TEST/MOV, and IMUL
 *                 (imul $imm,y,r = imul y,R; mov R,r);
 *   scratch-disp  insn d(B,I,s) = the same saving of R around
 *                     lea a(B,I,s),R; insn (d-a)(R)
 * LEA, MOV, XCHG of registers, PUSH and POP leave the flags alone, so the
 * flags are those of the operation itself, on the same values.  An
 * operand based on RSP is corrected for the 136 bytes the scratch forms
 * move it.  The 128 bytes below RSP (the red zone, where leaf code keeps
 * data) are never written.
 *
 * Refused (the site stays unsafe and the caller fails closed): branches
 * and calls whose rel32 holds the bytes (relocation gives a new rel32, or
 * nothing does), instructions that use RSP other than as a memory base
 * (PUSH $imm, CALL, ...) when a scratch form is needed, 8-bit operations,
 * 32-bit addressing, and anything Zydis cannot re-encode.
 */
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "inspect_rewrite.h"

#define MODE ZYDIS_MACHINE_MODE_LONG_64
#define RED_ZONE 128
#define SAVED (RED_ZONE + 8)        /* what the scratch forms move RSP by */
#define RSP_INDEX 4

/* b in a + b = value: small values first (short encodings), all with
 * bytes that no sequence starts with */
static const int64_t deltas[] = {
    0x40, -0x40, 0x100, -0x100, 0x10000, -0x10000, 0x1000000, -0x1000000,
    0x11111111, -0x11111111, 0x7f, -0x7f, 0x2468ace, -0x2468ace,
};
#define NDELTAS (sizeof(deltas) / sizeof(*deltas))

/* free registers, by index (rax = 0 ... r15 = 15): r11 and r10 first
 * (scratch by the ABI), never RSP */
static const int scratch_order[] = {
    11, 10, 9, 8, 6, 7, 2, 1, 0, 3, 5, 12, 13, 14, 15,
};
#define NSCRATCH (sizeof(scratch_order) / sizeof(*scratch_order))
#define SCRATCH_TRIES 3             /* registers tried per rule */

struct xf {
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    ZydisEncoderRequest req;        /* visible operands; RIP targets absolute */
    uint32_t used;                  /* GPRs (by index) any operand uses */
    uint32_t fixed;                 /* GPRs that hidden operands use */
    int mem;                        /* the visible memory operand, or -1 */
};

struct out {
    uint8_t *b;
    size_t n;
    uint64_t ip;                    /* runtime address of b[0] */
    bool ok;
};

/* ---- registers ---------------------------------------------------------- */

/* 0 (rax) ... 15 (r15) for any general register, else -1 */
static int
gpr(ZydisRegister r)
{
    if (r == ZYDIS_REGISTER_NONE)
        return -1;
    ZydisRegister e = ZydisRegisterGetLargestEnclosing(MODE, r);
    if (e >= ZYDIS_REGISTER_RAX && e <= ZYDIS_REGISTER_R15)
        return (int) (e - ZYDIS_REGISTER_RAX);
    return -1;
}

static ZydisRegister
r64(int idx)
{
    return (ZydisRegister) (ZYDIS_REGISTER_RAX + idx);
}

/* Register idx with the width (and 8-bit kind) of like; NONE if there is
 * none (AH's kind exists only for rax..rbx). */
static ZydisRegister
like(ZydisRegister r, int idx)
{
    if (r >= ZYDIS_REGISTER_AH && r <= ZYDIS_REGISTER_BH)
        return idx < 4 ? (ZydisRegister) (ZYDIS_REGISTER_AH + idx)
                       : ZYDIS_REGISTER_NONE;
    if (r >= ZYDIS_REGISTER_AL && r <= ZYDIS_REGISTER_R15B)
        return idx < 4 ? (ZydisRegister) (ZYDIS_REGISTER_AL + idx)
                       : (ZydisRegister) (ZYDIS_REGISTER_SPL + idx - 4);
    if (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_R15W)
        return (ZydisRegister) (ZYDIS_REGISTER_AX + idx);
    if (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_R15D)
        return (ZydisRegister) (ZYDIS_REGISTER_EAX + idx);
    if (r >= ZYDIS_REGISTER_RAX && r <= ZYDIS_REGISTER_R15)
        return r64(idx);
    return ZYDIS_REGISTER_NONE;
}

/* The general register idx at width bits (16, 32, 64). */
static ZydisRegister
gpr_width(int idx, unsigned width)
{
    return width == 64 ? r64(idx)
         : width == 32 ? (ZydisRegister) (ZYDIS_REGISTER_EAX + idx)
         : (ZydisRegister) (ZYDIS_REGISTER_AX + idx);
}

/* ---- emitting ----------------------------------------------------------- */

static void
put(struct out *o, const uint8_t *b, size_t n)
{
    if (!o->ok || o->n + n > INSP_XFORM_MAX) {
        o->ok = false;
        return;
    }
    memcpy(o->b + o->n, b, n);
    o->n += n;
}

static void
enc(struct out *o, const ZydisEncoderRequest *req)
{
    if (!o->ok)
        return;
    /* the encoder writes the relative operands back into its request */
    ZydisEncoderRequest r = *req;
    uint8_t b[ZYDIS_MAX_INSTRUCTION_LENGTH];
    ZyanUSize n = sizeof(b);
    if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstructionAbsolute(&r, b, &n,
                                                            o->ip + o->n))) {
        o->ok = false;
        return;
    }
    put(o, b, n);
}

static ZydisEncoderRequest
request(ZydisMnemonic m)
{
    ZydisEncoderRequest r;
    memset(&r, 0, sizeof(r));
    r.machine_mode = MODE;
    r.mnemonic = m;
    return r;
}

static void
add_reg(ZydisEncoderRequest *r, ZydisRegister reg)
{
    ZydisEncoderOperand *o = &r->operands[r->operand_count++];
    o->type = ZYDIS_OPERAND_TYPE_REGISTER;
    o->reg.value = reg;
}

static void
emit_lea(struct out *o, ZydisRegister dst, ZydisRegister base,
         ZydisRegister index, uint8_t scale, int64_t disp)
{
    ZydisEncoderRequest r = request(ZYDIS_MNEMONIC_LEA);
    add_reg(&r, dst);
    ZydisEncoderOperand *m = &r.operands[r.operand_count++];
    m->type = ZYDIS_OPERAND_TYPE_MEMORY;
    m->mem.base = base;
    m->mem.index = index;
    m->mem.scale = index == ZYDIS_REGISTER_NONE ? 0 : scale;
    m->mem.displacement = disp;
    m->mem.size = 8;                /* what Zydis wants for any LEA */
    enc(o, &r);
}

static void
emit_rr(struct out *o, ZydisMnemonic m, ZydisRegister a, ZydisRegister b)
{
    ZydisEncoderRequest r = request(m);
    add_reg(&r, a);
    if (b != ZYDIS_REGISTER_NONE)
        add_reg(&r, b);
    enc(o, &r);
}

static int64_t
sext(uint64_t v, unsigned width)
{
    unsigned s = 64 - width;
    return width >= 64 ? (int64_t) v : (int64_t) (v << s) >> s;
}

/* Multipliers LEA can apply without touching the flags (base + index *
 * scale, base = index) and their inverses modulo 2^64 (they are odd). */
static const struct {
    uint64_t m, inverse;
    uint8_t scale;
} mults[] = {
    { 1, 1, 0 },
    { 3, 0xaaaaaaaaaaaaaaabull, 2 },
    { 5, 0xcccccccccccccccdull, 4 },
    { 9, 0x8e38e38e38e38e39ull, 8 },
};
#define NMULTS (sizeof(mults) / sizeof(*mults))
#define NSPLITS (NMULTS * NDELTAS)

/* reg (16, 32 or 64 bits) = the low width bits of v, without v's bytes:
 *     mov $a,reg; lea d(reg64[,reg64,m-1]),reg     with a * m + d = v
 * (modulo 2^width; m odd, so a exists).  m = 1 is the plain split; the
 * others change the upper bytes too, which a 32-bit d cannot (a movabs
 * whose top half holds the sequence).  k picks m and d.  The upper bits
 * are those a plain MOV would leave (kept for 16 bits, zeroed for 32). */
static void
emit_split_mov(struct out *o, ZydisRegister reg, unsigned width, uint64_t v,
               size_t k)
{
    int64_t d = deltas[k % NDELTAS];
    size_t mi = k / NDELTAS;
    uint64_t a = (v - (uint64_t) d) * mults[mi].inverse;
    ZydisEncoderRequest r = request(ZYDIS_MNEMONIC_MOV);
    add_reg(&r, reg);
    ZydisEncoderOperand *imm = &r.operands[r.operand_count++];
    imm->type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    imm->imm.s = sext(a, width);    /* Zydis wants it signed */
    enc(o, &r);
    ZydisRegister base = r64(gpr(reg));
    emit_lea(o, reg, base, mi ? base : ZYDIS_REGISTER_NONE, mults[mi].scale,
             d);
}

/* lea -128(%rsp),%rsp; push R  /  pop R; lea 128(%rsp),%rsp */
static void
emit_save(struct out *o, int r)
{
    emit_lea(o, r64(RSP_INDEX), r64(RSP_INDEX), ZYDIS_REGISTER_NONE, 0,
             -RED_ZONE);
    emit_rr(o, ZYDIS_MNEMONIC_PUSH, r64(r), ZYDIS_REGISTER_NONE);
}

static void
emit_restore(struct out *o, int r)
{
    emit_rr(o, ZYDIS_MNEMONIC_POP, r64(r), ZYDIS_REGISTER_NONE);
    emit_lea(o, r64(RSP_INDEX), r64(RSP_INDEX), ZYDIS_REGISTER_NONE, 0,
             RED_ZONE);
}

static void
reset(struct out *o)
{
    o->n = 0;
    o->ok = true;
}

static bool
clean(const struct out *o)
{
    return o->ok && o->n > 0 && !insp_bytes_have_sequence(o->b, o->n, 0, o->n);
}

/* ---- the instruction ---------------------------------------------------- */

static bool
analyse(struct xf *x, const uint8_t *b, size_t len, uint64_t old_ip)
{
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, MODE, ZYDIS_STACK_WIDTH_64);
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, b, len, &x->insn, x->ops))
        || x->insn.length != len)
        return false;
    x->used = x->fixed = 0;
    x->mem = -1;
    int nmem = 0;
    for (unsigned i = 0; i < x->insn.operand_count; i++) {
        const ZydisDecodedOperand *op = &x->ops[i];
        bool hidden = i >= x->insn.operand_count_visible;
        uint32_t m = 0;
        int g;
        if (op->type == ZYDIS_OPERAND_TYPE_REGISTER
            && (g = gpr(op->reg.value)) >= 0)
            m |= 1u << g;
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY) {
            if ((g = gpr(op->mem.base)) >= 0)
                m |= 1u << g;
            if ((g = gpr(op->mem.index)) >= 0)
                m |= 1u << g;
            if (!hidden) {
                nmem++;
                x->mem = (int) i;
            }
        }
        x->used |= m;
        if (hidden)
            x->fixed |= m;
    }
    if (nmem != 1)
        x->mem = -1;
    if (!ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(
            &x->insn, x->ops, x->insn.operand_count_visible, &x->req)))
        return false;
    /* the encoder is used in absolute mode: RIP-relative operands are
     * given by their target */
    for (unsigned i = 0; i < x->req.operand_count; i++) {
        ZydisEncoderOperand *o = &x->req.operands[i];
        if (o->type == ZYDIS_OPERAND_TYPE_MEMORY
            && o->mem.base == ZYDIS_REGISTER_RIP)
            o->mem.displacement = (int64_t) (old_ip + len
                                             + (uint64_t) o->mem.displacement);
    }
    return true;
}

/* RSP appears only as the base of the memory operand, if at all. */
static bool
rsp_only_as_base(const struct xf *x)
{
    for (unsigned i = 0; i < x->insn.operand_count; i++) {
        const ZydisDecodedOperand *op = &x->ops[i];
        if (op->type == ZYDIS_OPERAND_TYPE_REGISTER
            && gpr(op->reg.value) == RSP_INDEX)
            return false;
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY
            && (gpr(op->mem.index) == RSP_INDEX
                || (gpr(op->mem.base) == RSP_INDEX && (int) i != x->mem)))
            return false;
    }
    return true;
}

/* The k-th register the instruction does not use (never RSP), or -1. */
static int
free_register(const struct xf *x, unsigned k)
{
    for (unsigned i = 0; i < NSCRATCH; i++) {
        int r = scratch_order[i];
        if (!(x->used & (1u << r)) && k-- == 0)
            return r;
    }
    return -1;
}

/* The request's memory operand (the same index as the decoded one). */
static ZydisEncoderOperand *
req_mem(ZydisEncoderRequest *r, const struct xf *x)
{
    return x->mem >= 0 && (unsigned) x->mem < r->operand_count
        && r->operands[x->mem].type == ZYDIS_OPERAND_TYPE_MEMORY
         ? &r->operands[x->mem] : NULL;
}

/* Correct an RSP-based operand for the bytes the scratch forms push. */
static void
adjust_rsp(ZydisEncoderRequest *r)
{
    for (unsigned i = 0; i < r->operand_count; i++)
        if (r->operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY
            && gpr(r->operands[i].mem.base) == RSP_INDEX)
            r->operands[i].mem.displacement += SAVED;
}

/* ---- the rules ---------------------------------------------------------- */

static bool
rule_substitute(const struct xf *x, struct out *o)
{
    uint32_t cand = x->used & ~x->fixed & ~(1u << RSP_INDEX);
    for (int v = 0; v < 16; v++) {
        if (!(cand & (1u << v)))
            continue;
        for (unsigned k = 0; k < NSCRATCH; k++) {
            int r = scratch_order[k];
            if (x->used & (1u << r))
                continue;
            ZydisEncoderRequest req = x->req;
            bool ok = true;
            for (unsigned i = 0; i < req.operand_count && ok; i++) {
                ZydisEncoderOperand *op = &req.operands[i];
                if (op->type == ZYDIS_OPERAND_TYPE_REGISTER
                    && gpr(op->reg.value) == v)
                    ok = (op->reg.value = like(op->reg.value, r))
                         != ZYDIS_REGISTER_NONE;
                if (op->type == ZYDIS_OPERAND_TYPE_MEMORY) {
                    if (gpr(op->mem.base) == v)
                        op->mem.base = like(op->mem.base, r);
                    if (gpr(op->mem.index) == v)
                        op->mem.index = like(op->mem.index, r);
                }
            }
            if (!ok)
                continue;
            reset(o);
            emit_rr(o, ZYDIS_MNEMONIC_XCHG, r64(v), r64(r));
            enc(o, &req);
            emit_rr(o, ZYDIS_MNEMONIC_XCHG, r64(v), r64(r));
            if (clean(o))
                return true;
        }
    }
    return false;
}

static bool
rule_split_imm(const struct xf *x, struct out *o)
{
    const ZydisDecodedOperand *ops = x->ops;
    if (x->insn.mnemonic != ZYDIS_MNEMONIC_MOV
        || x->insn.operand_count_visible != 2
        || ops[0].type != ZYDIS_OPERAND_TYPE_REGISTER
        || ops[1].type != ZYDIS_OPERAND_TYPE_IMMEDIATE)
        return false;
    int g = gpr(ops[0].reg.value);
    unsigned width = ops[0].size;
    /* RSP would point nowhere between the two (a signal would use it) */
    if (g < 0 || g == RSP_INDEX || width < 16)
        return false;
    for (size_t k = 0; k < NSPLITS; k++) {
        reset(o);
        emit_split_mov(o, ops[0].reg.value, width, ops[1].imm.value.u, k);
        if (clean(o))
            return true;
    }
    return false;
}

static bool
rule_move_disp(const struct xf *x, struct out *o)
{
    if (x->mem < 0 || x->insn.address_width != 64)
        return false;
    const ZydisDecodedOperand *m = &x->ops[x->mem];
    int b = gpr(m->mem.base);
    if (!m->mem.disp.has_displacement || b < 0 || b == RSP_INDEX
        || gpr(m->mem.index) == b
        || (m->mem.type != ZYDIS_MEMOP_TYPE_MEM
            && m->mem.type != ZYDIS_MEMOP_TYPE_AGEN))
        return false;
    /* any other use of B: only a write of all of it (then B needs no
     * restoring: the instruction overwrites it after the access) */
    bool restore = true;
    for (unsigned i = 0; i < x->insn.operand_count; i++) {
        const ZydisDecodedOperand *op = &x->ops[i];
        if ((int) i == x->mem)
            continue;
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY
            && (gpr(op->mem.base) == b || gpr(op->mem.index) == b))
            return false;
        if (op->type != ZYDIS_OPERAND_TYPE_REGISTER
            || gpr(op->reg.value) != b)
            continue;
        if (op->actions != ZYDIS_OPERAND_ACTION_WRITE
            || (op->size != 32 && op->size != 64))
            return false;
        restore = false;
    }
    int64_t disp = m->mem.disp.value;
    for (size_t i = 0; i < NDELTAS; i++) {
        int64_t a = deltas[i], rest = disp - a;
        if (rest != (int32_t) rest)
            continue;
        ZydisEncoderRequest req = x->req;
        ZydisEncoderOperand *rm = req_mem(&req, x);
        if (!rm)
            return false;
        rm->mem.displacement = rest;
        reset(o);
        emit_lea(o, r64(b), r64(b), ZYDIS_REGISTER_NONE, 0, a);
        enc(o, &req);
        if (restore)
            emit_lea(o, r64(b), r64(b), ZYDIS_REGISTER_NONE, 0, -a);
        if (clean(o))
            return true;
    }
    return false;
}

static bool
alu_with_imm(ZydisMnemonic m)
{
    switch (m) {
    case ZYDIS_MNEMONIC_ADD: case ZYDIS_MNEMONIC_OR:
    case ZYDIS_MNEMONIC_ADC: case ZYDIS_MNEMONIC_SBB:
    case ZYDIS_MNEMONIC_AND: case ZYDIS_MNEMONIC_SUB:
    case ZYDIS_MNEMONIC_XOR: case ZYDIS_MNEMONIC_CMP:
    case ZYDIS_MNEMONIC_TEST: case ZYDIS_MNEMONIC_MOV:
        return true;
    default:
        return false;
    }
}

static bool
rule_scratch_imm(const struct xf *x, struct out *o)
{
    const ZydisDecodedOperand *ops = x->ops;
    unsigned nvis = x->insn.operand_count_visible, immi;
    bool imul = x->insn.mnemonic == ZYDIS_MNEMONIC_IMUL;
    if (alu_with_imm(x->insn.mnemonic) && nvis == 2)
        immi = 1;
    else if (imul && nvis == 3)
        immi = 2;
    else
        return false;
    unsigned width = ops[0].size;
    if (ops[immi].type != ZYDIS_OPERAND_TYPE_IMMEDIATE
        || (width != 16 && width != 32 && width != 64)
        || !rsp_only_as_base(x) || (x->insn.address_width != 64
                                    && x->mem >= 0))
        return false;
    for (unsigned k = 0; k < SCRATCH_TRIES; k++) {
        int r = free_register(x, k);
        if (r < 0)
            break;
        ZydisRegister rw = gpr_width(r, width);
        ZydisEncoderRequest op1 = x->req, op2;
        adjust_rsp(&op1);
        if (imul) {
            /* imul y,R (R = R * y); mov R,dst */
            op2 = request(ZYDIS_MNEMONIC_MOV);
            op2.operands[op2.operand_count++] = op1.operands[0];
            add_reg(&op2, rw);
            op1.operands[0].type = ZYDIS_OPERAND_TYPE_REGISTER;
            op1.operands[0].reg.value = rw;
            op1.operand_count = 2;
        } else {
            op1.operands[1].type = ZYDIS_OPERAND_TYPE_REGISTER;
            op1.operands[1].reg.value = rw;
        }
        for (size_t k = 0; k < NSPLITS; k++) {
            reset(o);
            emit_save(o, r);
            emit_split_mov(o, rw, width, ops[immi].imm.value.u, k);
            enc(o, &op1);
            if (imul)
                enc(o, &op2);
            emit_restore(o, r);
            if (clean(o))
                return true;
        }
    }
    return false;
}

static bool
rule_scratch_disp(const struct xf *x, struct out *o)
{
    if (x->mem < 0 || x->insn.address_width != 64 || !rsp_only_as_base(x))
        return false;
    const ZydisDecodedOperand *m = &x->ops[x->mem];
    if (!m->mem.disp.has_displacement || m->mem.base == ZYDIS_REGISTER_RIP
        || (m->mem.base != ZYDIS_REGISTER_NONE && gpr(m->mem.base) < 0)
        || (m->mem.index != ZYDIS_REGISTER_NONE && gpr(m->mem.index) < 0)
        || (m->mem.type != ZYDIS_MEMOP_TYPE_MEM
            && m->mem.type != ZYDIS_MEMOP_TYPE_AGEN))
        return false;
    int64_t disp = m->mem.disp.value;
    int64_t adj = gpr(m->mem.base) == RSP_INDEX ? SAVED : 0;
    for (unsigned k = 0; k < SCRATCH_TRIES; k++) {
        int r = free_register(x, k);
        if (r < 0)
            break;
        for (size_t i = 0; i < NDELTAS; i++) {
            int64_t a = deltas[i], rest = disp - a;
            if (rest != (int32_t) rest || a + adj != (int32_t) (a + adj))
                continue;
            ZydisEncoderRequest req = x->req;
            ZydisEncoderOperand *rm = req_mem(&req, x);
            if (!rm)
                return false;
            rm->mem.base = r64(r);
            rm->mem.index = ZYDIS_REGISTER_NONE;
            rm->mem.scale = 0;
            rm->mem.displacement = rest;
            reset(o);
            emit_save(o, r);
            emit_lea(o, r64(r), m->mem.base == ZYDIS_REGISTER_NONE
                              ? ZYDIS_REGISTER_NONE : r64(gpr(m->mem.base)),
                     m->mem.index == ZYDIS_REGISTER_NONE
                     ? ZYDIS_REGISTER_NONE : r64(gpr(m->mem.index)),
                     m->mem.scale, a + adj);
            enc(o, &req);
            emit_restore(o, r);
            if (clean(o))
                return true;
        }
    }
    return false;
}

static const struct {
    bool (*apply)(const struct xf *, struct out *);
    uint32_t rule;
} rules[] = {
    { rule_substitute, INSPECT_RULE_SUBSTITUTE },
    { rule_split_imm, INSPECT_RULE_SPLIT_IMM },
    { rule_move_disp, INSPECT_RULE_MOVE_DISP },
    { rule_scratch_imm, INSPECT_RULE_SCRATCH_IMM },
    { rule_scratch_disp, INSPECT_RULE_SCRATCH_DISP },
};

size_t
insp_xform(const uint8_t *b, size_t len, uint64_t old_ip, uint64_t new_ip,
           uint8_t *out, uint32_t *rule, char *why, size_t whylen)
{
    uint8_t moved[ZYDIS_MAX_INSTRUCTION_LENGTH + 1];
    size_t n = insp_relocate(b, len, old_ip, new_ip, moved, why, whylen);
    if (n == 0)
        return 0;                   /* why: the relocation's reason */
    if (!insp_bytes_have_sequence(moved, n, 0, n)) {
        memcpy(out, moved, n);
        *rule = INSPECT_RULE_RELOCATE;
        return n;
    }
    struct xf x;
    if (!analyse(&x, b, len, old_ip)) {
        insp_refuse(why, whylen, "an instruction Zydis cannot re-encode "
                    "holds the sequence");
        return 0;
    }
    if (x.insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE
        && (x.insn.raw.imm[0].is_relative || x.insn.raw.imm[1].is_relative)) {
        insp_refuse(why, whylen, "a branch's displacement holds the "
                    "sequence");
        return 0;
    }
    struct out o = { out, 0, new_ip, true };
    for (size_t i = 0; i < sizeof(rules) / sizeof(*rules); i++)
        if (rules[i].apply(&x, &o)) {
            *rule = rules[i].rule;
            return o.n;
        }
    insp_refuse(why, whylen, "no rule removes the sequence from %s (%u "
                "bytes)", ZydisMnemonicGetString(x.insn.mnemonic),
                (unsigned) len);
    return 0;
}
