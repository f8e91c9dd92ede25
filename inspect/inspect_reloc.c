/*
 * inspect_reloc.c — copy one instruction to a trampoline so that it does
 * the same thing there.
 *
 * Most instructions are position-independent and are copied byte for
 * byte.  Two kinds depend on where they run:
 *   - a RIP-relative memory operand (mov x(%rip),%rax, lea, an XRSTOR on
 *     a RIP-relative area): the encoding is kept and its 32-bit
 *     displacement, whose offset Zydis gives, recomputed for the new
 *     address (same length, so the end of the instruction moves with it);
 *   - a relative jump or conditional jump: re-encoded with Zydis's encoder
 *     to the same absolute target, as rel32 (a rel8 rarely reaches from a
 *     trampoline).
 * Refused (the site stays unsafe and the caller fails closed):
 *   - a call: the callee would see a return address in the trampoline
 *     (unwinders, stack walkers and return-address checks would break);
 *     except a direct call that ends the span, which insp_emulate_call()
 *     turns into a push of its original return address and a jump;
 *   - LOOP*, JRCXZ/JECXZ (rel8 only) whose target is out of rel8 reach,
 *     and XBEGIN (its abort address would move);
 *   - anything whose target is out of rel32 reach from the trampoline.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "inspect_rewrite.h"

/* insp_refuse() for the functions here, which return 0 on failure */
#define refuse(...)  (insp_refuse(__VA_ARGS__), (size_t) 0)

static bool
rel8_only(ZydisMnemonic m)
{
    return m == ZYDIS_MNEMONIC_LOOP || m == ZYDIS_MNEMONIC_LOOPE
        || m == ZYDIS_MNEMONIC_LOOPNE || m == ZYDIS_MNEMONIC_JCXZ
        || m == ZYDIS_MNEMONIC_JECXZ || m == ZYDIS_MNEMONIC_JRCXZ;
}

static size_t
relocate_branch(const ZydisDecodedInstruction *insn,
                const ZydisDecodedOperand *ops, const uint8_t *b,
                uint64_t old_ip, uint64_t new_ip, uint8_t *out, char *why,
                size_t whylen)
{
    uint64_t target = old_ip + insn->length
                    + (uint64_t) insn->raw.imm[0].value.s;
    if (insn->meta.category == ZYDIS_CATEGORY_CALL)
        return refuse(why, whylen, "a call in the span (its return "
                      "address would be in the trampoline)");
    if (insn->mnemonic == ZYDIS_MNEMONIC_XBEGIN)
        return refuse(why, whylen, "XBEGIN in the span");
    if (rel8_only(insn->mnemonic)) {
        int64_t rel = (int64_t) (target - (new_ip + insn->length));
        if (rel != (int8_t) rel)
            return refuse(why, whylen, "a LOOP/JRCXZ whose target is out "
                          "of rel8 reach from the trampoline");
        memcpy(out, b, insn->length);
        out[insn->raw.imm[0].offset] = (uint8_t) rel;
        return insn->length;
    }
    ZydisEncoderRequest req;
    if (!ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(
            insn, ops, insn->operand_count_visible, &req)))
        return refuse(why, whylen, "a branch Zydis cannot re-encode");
    req.branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    req.branch_width = ZYDIS_BRANCH_WIDTH_32;
    for (unsigned i = 0; i < req.operand_count; i++)
        if (req.operands[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
            req.operands[i].imm.u = target;     /* absolute, see below */
    ZyanUSize n = ZYDIS_MAX_INSTRUCTION_LENGTH;
    /* the encoder turns the absolute target into rel32 from new_ip, and
     * fails if it does not fit */
    if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstructionAbsolute(&req, out, &n,
                                                            new_ip)))
        return refuse(why, whylen, "a branch whose target is out of rel32 "
                      "reach from the trampoline");
    return n;
}

size_t
insp_relocate(const uint8_t *b, size_t len, uint64_t old_ip, uint64_t new_ip,
              uint8_t *out, char *why, size_t whylen)
{
    ZydisDecoder dec;
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, b, len, &insn, ops))
        || insn.length != len)
        return refuse(why, whylen, "an instruction that does not decode");
    if (!(insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE)) {
        memcpy(out, b, len);
        return len;
    }
    if (insn.raw.imm[0].is_relative)
        return relocate_branch(&insn, ops, b, old_ip, new_ip, out, why,
                               whylen);
    for (unsigned i = 0; i < insn.operand_count; i++) {
        if (ops[i].type != ZYDIS_OPERAND_TYPE_MEMORY
            || ops[i].mem.base != ZYDIS_REGISTER_RIP)
            continue;
        if (insn.raw.disp.size != 32)
            break;
        uint64_t target = old_ip + len + (uint64_t) insn.raw.disp.value;
        int64_t disp = (int64_t) (target - (new_ip + len));
        if (disp != (int32_t) disp)
            return refuse(why, whylen, "a RIP-relative operand out of "
                          "rel32 reach from the trampoline");
        memcpy(out, b, len);
        uint32_t d = (uint32_t) disp;
        for (unsigned k = 0; k < 4; k++)
            out[insn.raw.disp.offset + k] = (uint8_t) (d >> (8 * k));
        return len;
    }
    return refuse(why, whylen, "a relative form the rewriter does not "
                  "handle");
}

size_t
insp_emulate_call(const uint8_t *b, size_t len, uint64_t old_ip,
                  uint64_t new_ip, uint8_t *out)
{
    /* call rel32 (E8), nothing else: its return address is old_ip + len,
     * which the caller has checked is the end of the span, i.e. original
     * code that the rewrite leaves in place */
    if (len != 5 || b[0] != 0xe8)
        return 0;
    int32_t rel;
    memcpy(&rel, b + 1, 4);
    uint64_t target = old_ip + len + (uint64_t) (int64_t) rel;
    uint64_t ret = old_ip + len;
    /* push %rax; lea ret(%rip),%rax; xchg %rax,(%rsp); jmp target:
     * the return address on the stack, %rax and the flags as they were.
     * RIP-relative, so the static rewriter's trampolines (addresses of
     * the file, not of the process) are right too. */
    static const uint8_t seq[INSP_CALL_EMU_LEN] = {
        0x50,                                   /* push %rax */
        0x48, 0x8d, 0x05, 0, 0, 0, 0,           /* lea rel32(%rip),%rax */
        0x48, 0x87, 0x04, 0x24,                 /* xchg %rax,(%rsp) */
        0xe9, 0, 0, 0, 0                        /* jmp rel32 */
    };
    int64_t lrel = (int64_t) (ret - (new_ip + 8));
    int64_t jrel = (int64_t) (target - (new_ip + INSP_CALL_EMU_LEN));
    if (lrel != (int32_t) lrel || jrel != (int32_t) jrel)
        return 0;
    int32_t l32 = (int32_t) lrel, j32 = (int32_t) jrel;
    memcpy(out, seq, sizeof(seq));
    memcpy(out + 4, &l32, 4);
    memcpy(out + 13, &j32, 4);
    return INSP_CALL_EMU_LEN;
}

int
insp_insn_pkru_kind(const uint8_t *b, size_t avail, size_t *len)
{
    ZydisDecoder dec;
    ZydisDecodedInstruction insn;
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_MINIMAL, ZYAN_TRUE);
    *len = 0;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, NULL, b, avail,
                                                    &insn)))
        return -1;
    *len = insn.length;
    switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_WRPKRU:
        return INSPECT_WRPKRU;
    case ZYDIS_MNEMONIC_XRSTOR:
        return INSPECT_XRSTOR;
    case ZYDIS_MNEMONIC_XRSTOR64:
        return INSPECT_XRSTOR64;
    case ZYDIS_MNEMONIC_XRSTORS:
    case ZYDIS_MNEMONIC_XRSTORS64:
        return INSPECT_XRSTORS;
    default:
        return -1;
    }
}
