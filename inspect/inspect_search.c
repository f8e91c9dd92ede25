/*
 * inspect_search.c — find WRPKRU/XRSTOR byte sequences at every offset.
 *
 * Every sequence starts with the escape byte 0F followed by 01, AE or C7,
 * so SSE2 (baseline on x86-64) tests 16 positions at a time for that pair
 * and only the rare candidates are checked byte by byte.  This keeps the
 * search far below the cost of decoding, which happens only at hits.
 *
 * The constants are compared one byte at a time on purpose: a compiler that
 * merged "0F 01 EF" into one 32-bit immediate would plant exactly the
 * sequence this file looks for in the inspector's own code (the unit tests
 * check that the inspector's objects have no hits).
 */
#include <emmintrin.h>

#include "inspect_internal.h"

/* ModRM with mod != 3 and reg == r: the memory forms of group opcodes. */
static inline bool
modrm_mem_reg(uint8_t modrm, unsigned r)
{
    return (modrm >> 6) != 3 && ((modrm >> 3) & 7) == r;
}

int
insp_match_at(const uint8_t *b, size_t len, size_t i)
{
    if (i + 3 > len || b[i] != 0x0f)
        return -1;
    uint8_t op = b[i + 1], modrm = b[i + 2];
    if (op == 0x01 && modrm == 0xef)
        return INSPECT_WRPKRU;
    if (op == 0xae && modrm_mem_reg(modrm, 5)) {
        /* REX.W (48-4F) must be the byte right before the escape */
        if (i > 0 && (b[i - 1] & 0xf8) == 0x48)
            return INSPECT_XRSTOR64;
        return INSPECT_XRSTOR;
    }
    if (op == 0xc7 && modrm_mem_reg(modrm, 3))
        return INSPECT_XRSTORS;
    return -1;
}

int
insp_search(const uint8_t *b, size_t len, insp_found_fn found, void *ctx)
{
    const __m128i esc = _mm_set1_epi8(0x0f);
    const __m128i op1 = _mm_set1_epi8(0x01);
    const __m128i op2 = _mm_set1_epi8((char) 0xae);
    const __m128i op3 = _mm_set1_epi8((char) 0xc7);
    size_t i = 0;
    int rc;

    /* the second load reads b[i + 1 .. i + 16]: stay inside the buffer */
    for (; i + 17 <= len; i += 16) {
        __m128i x0 = _mm_loadu_si128((const __m128i *) (b + i));
        __m128i x1 = _mm_loadu_si128((const __m128i *) (b + i + 1));
        __m128i ops = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x1, op1),
                                                _mm_cmpeq_epi8(x1, op2)),
                                   _mm_cmpeq_epi8(x1, op3));
        unsigned mask = (unsigned) _mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(x0, esc), ops));
        while (mask) {
            size_t j = i + (size_t) __builtin_ctz(mask);
            mask &= mask - 1;
            int kind = insp_match_at(b, len, j);
            if (kind >= 0 && (rc = found(ctx, j, (enum inspect_kind) kind)))
                return rc;
        }
    }
    for (; i < len; i++) {
        int kind = insp_match_at(b, len, i);
        if (kind >= 0 && (rc = found(ctx, i, (enum inspect_kind) kind)))
            return rc;
    }
    return 0;
}
