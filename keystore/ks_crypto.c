/* ks_crypto: the private libcrypto of T.  See ks_crypto.h. */

#include "ks_crypto.h"
#include "ks_heap.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

/*
 * These headers must be the private copy's: compiled against the system's
 * 3.0 headers, this file would still link (to the private 3.5 code) but
 * with the wrong structure layouts and macros.
 */
#if OPENSSL_VERSION_MAJOR != 3 || OPENSSL_VERSION_MINOR != 5
#error "ks_crypto.c needs the pinned OpenSSL 3.5 headers, not the system's"
#endif

/* OpenSSL's allocator signatures; file and line are for its debugging. */

static void *
t_malloc(size_t n, const char *file, int line)
{
    (void) file; (void) line;
    return ks_heap_alloc(n);
}

static void *
t_realloc(void *p, size_t n, const char *file, int line)
{
    (void) file; (void) line;
    return ks_heap_realloc(p, n);
}

static void
t_free(void *p, const char *file, int line)
{
    (void) file; (void) line;
    ks_heap_free(p);
}

int
ks_crypto_init(void)
{
    /*
     * First, before anything can allocate: OpenSSL accepts new functions
     * only until its first allocation, and then every later allocation of
     * the private copy (keys, contexts, method stores) lands in T.
     */
    if (!CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free)) {
        return -1;
    }
    /*
     * No atexit handler: an exit in a worker must not run the private
     * copy's cleanup from U.  No config file: OPENSSL_CONF and openssl.cnf
     * are U-controlled input and could load modules or change defaults.
     */
    if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT
                             | OPENSSL_INIT_NO_LOAD_CONFIG, NULL)) {
        return -1;
    }
    /* Headers and code are the same release. */
    return OpenSSL_version_num() == OPENSSL_VERSION_NUMBER ? 0 : -1;
}

unsigned long
ks_crypto_version(void)
{
    return OpenSSL_version_num();
}

int
ks_crypto_sha256(const void *in, size_t len, unsigned char out[32])
{
    /* An explicit fetch: goes through the provider and method store. */
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    unsigned int outlen = 0;
    int ok;

    ok = md != NULL && EVP_Digest(in, len, out, &outlen, md, NULL)
         && outlen == 32;
    EVP_MD_free(md);
    return ok ? 0 : -1;
}
