/*
 * ks_pkru: RDPKRU, this thread's PKRU (U or T; no privilege needed, and it
 * changes nothing).  The keystore reads it once, when it builds the gate's
 * PKRU values (ks_domain.c); the benchmark and the tests read it to check
 * what the gate and the rewritten sites leave behind.  Writing PKRU is the
 * gate's alone (ks_gate.S).
 */

#ifndef KS_PKRU_H
#define KS_PKRU_H

#include <stdint.h>

static inline uint32_t
ks_rdpkru(void)
{
    uint32_t eax, edx;

    __asm__ volatile (".byte 0x0f, 0x01, 0xee"      /* RDPKRU */
                      : "=a" (eax), "=d" (edx) : "c" (0));
    return eax;
}

#endif /* KS_PKRU_H */
