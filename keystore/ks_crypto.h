/*
 * ks_crypto: the private libcrypto of T.  (T)
 *
 * libkeystore.so links its own copy of the pinned OpenSSL's libcrypto
 * statically, with every symbol hidden, so it never binds to (or is bound
 * by) the libcrypto that NGINX, libssl or the system use in U.  This file
 * is the only one that includes OpenSSL headers, and they must be the
 * private copy's (build/src/openssl-3.5.7/.openssl/include), never
 * /usr/include/openssl: ks_crypto.c refuses to compile otherwise.
 *
 * The private copy is built no-threads (see the Makefile): it has no locks
 * of its own, so at most one thread may run in it at a time.  The gates
 * will guarantee that (DESIGN.md, "Gates": one T stack with an in-use flag,
 * or a lock); until then the callers of ks_init()/ks_selftest_sha256() must.
 *
 * HOOK(ks_domain_tag_data): the private copy's .data and .bss (method
 * stores, provider tables, DRBG state) sit in libkeystore.so's writable
 * segment; the domain code will tag those pages with the T pkey (DESIGN.md,
 * "Crypto inside T").  Not written yet: this machine has no MPK.
 */

#ifndef KS_CRYPTO_H
#define KS_CRYPTO_H

#include <stddef.h>

/*
 * Point the private copy's allocator at the T heap (ks_heap_init() must
 * have succeeded), then initialize it without atexit handlers and without
 * reading any configuration file (OPENSSL_CONF is ignored).  Must be the
 * first call into the private copy: 0, or -1 if the copy had already
 * allocated or failed to initialize.
 */
int ks_crypto_init(void);

/* OpenSSL_version_num() of the private copy (0x30500070 for 3.5.7). */
unsigned long ks_crypto_version(void);

/* SHA-256 of in[0..len) with the private copy: 0, or -1. */
int ks_crypto_sha256(const void *in, size_t len, unsigned char out[32]);

#endif /* KS_CRYPTO_H */
