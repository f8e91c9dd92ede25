/*
 * ks_domain: set up the protection domain T.  (runs once, before T is
 * closed; needs MPK)
 *
 * ks_domain_init() allocates a protection key (any free one), reserves
 * the T heap and the T stack, tags them and the keystore's own writable
 * data (.data/.bss, which hold the private libcrypto's state too) with the
 * key, and fills the gate's page (PKRU values, vector-scrub level) and
 * makes it read-only.  T stays open for the calling thread until
 * ks_domain_close(), so the caller can finish setting T up (the private
 * libcrypto); ks_domain_close() leaves through the gate, and from then on
 * T is entered only through ks_gate_call().
 *
 * What is shared after fork(): everything — the child inherits the key,
 * the tags, the T heap, stack and data (copy-on-write), and the PKRU of
 * the forking thread, so handles and tokens made before the fork keep
 * working in both processes; what either process changes later (new
 * handles, counters) is its own.
 */

#ifndef KS_DOMAIN_H
#define KS_DOMAIN_H

#include <stddef.h>

struct ks_domain_config {
    size_t  heap_size;                      /* 0: KS_HEAP_DEFAULT_SIZE */
    size_t  stack_size;                     /* 0: KS_DOMAIN_STACK_DEFAULT */
};

#define KS_DOMAIN_STACK_DEFAULT  ((size_t) 256 << 10)

/* 0, or -1 with a one-line reason in err (NUL-terminated). */
int ks_domain_init(const struct ks_domain_config *cfg, char *err,
    size_t errlen);

/* Close T for the calling thread: 0, or -1 with the reason in err. */
int ks_domain_close(char *err, size_t errlen);

/* The keystore's key, or -1 before ks_domain_init().  Readable from U. */
int ks_domain_pkey(void);

#endif /* KS_DOMAIN_H */
