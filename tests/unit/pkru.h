/*
 * RDPKRU for the tests: this thread's PKRU.  (Reading it needs no
 * privilege and changes nothing; the keystore itself never reads it this
 * way — its gate loads the values it writes from read-only data.)
 */

#ifndef TESTS_PKRU_H
#define TESTS_PKRU_H

#include <stdint.h>

static inline uint32_t
rdpkru(void)
{
    uint32_t eax, edx;

    __asm__ volatile (".byte 0x0f, 0x01, 0xee" : "=a" (eax), "=d" (edx)
                      : "c" (0));
    return eax;
}

#endif /* TESTS_PKRU_H */
