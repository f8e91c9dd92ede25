/*
 * libkeystore: the public API.  See keystore.h.
 *
 * These functions run in U.  ks_init() is the only one that runs before
 * T is closed; every other one crosses the gate.  Nothing here may keep
 * state in this file's data: it is T memory once ks_init() has tagged it,
 * and U reading it would fault.  Whether the keystore is ready is read
 * from the gate's page instead (ks_domain_pkey()).
 */

#include "keystore.h"

#include <stdio.h>
#include <string.h>

#include "ks_crypto.h"
#include "ks_domain.h"
#include "ks_ops.h"
#include "ks_seal.h"

/*
 * libkeystore.so is linked without start files (keystore/build.mk: no
 * destructors for ld.so to run at exit, when T is closed), which also
 * drops crtbeginS.o's __dso_handle.  libc's atexit() refers to it; the
 * private libcrypto never registers an atexit handler
 * (OPENSSL_INIT_NO_ATEXIT), so it only has to exist.
 */
void *__dso_handle __attribute__((visibility("hidden"))) = &__dso_handle;

int
ks_init(const struct ks_config *cfg, char *err, size_t errlen)
{
    struct ks_domain_config dc = { 0, 0 };

    if (cfg != NULL) {
        dc.heap_size = cfg->heap_size;
        dc.stack_size = cfg->stack_size;
    }
    if (ks_domain_init(&dc, err, errlen) != 0) {
        return -1;
    }
    /* T is still open for this thread: the private libcrypto must be set
     * up (allocator first) before anything else uses it */
    if (ks_crypto_init() != 0) {
        snprintf(err, errlen, "cannot initialise the private libcrypto");
        return -1;
    }
    /* tokens live for this start; a sealing key file replaces it later */
    if (ks_seal_key_random() != 0) {
        snprintf(err, errlen, "cannot make a sealing key");
        return -1;
    }
    return ks_domain_close(err, errlen);
}

int
ks_stats(struct ks_stats *out)
{
    struct ks_stats_out s;
    struct ks_args_stats a = { &s };

    if (ks_domain_pkey() < 0 || out == NULL
        || ks_gate_call(KS_OP_STATS, &a) != 0)
    {
        return -1;
    }
    out->t_heap_bytes = s.t_heap_bytes;
    out->t_heap_peak_bytes = s.t_heap_peak_bytes;
    out->gate_crossings = s.gate_crossings;
    out->pkey = s.pkey;
    return 0;
}

unsigned long
ks_private_openssl_version(void)
{
    return ks_crypto_version();     /* a constant: touches no T data */
}

int
ks_selftest_sha256(const void *in, size_t len, unsigned char out[32])
{
    struct ks_args_digest a = { in, len, out };

    if (ks_domain_pkey() < 0) {
        return -1;
    }
    return ks_gate_call(KS_OP_SELFTEST_SHA256, &a) == 0 ? 0 : -1;
}

int
ks_seal_key_load_file(const char *path, char *err, size_t errlen)
{
    struct ks_args_seal_key_load a;
    long rc;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (ks_domain_pkey() < 0) {
        snprintf(err, err != NULL ? errlen : 0, "the keystore is not ready");
        return -1;
    }
    if (path == NULL || path[0] == '\0') {
        snprintf(err, err != NULL ? errlen : 0, "no sealing key file given");
        return -1;
    }
    a.path = path;
    a.pathlen = strlen(path);
    a.err = err;
    a.errlen = err != NULL ? errlen : 0;
    rc = ks_gate_call(KS_OP_SEAL_KEY_LOAD, &a);
    if (rc == KS_ERR_ARG && err != NULL && errlen > 0 && err[0] == '\0') {
        snprintf(err, errlen, "\"%s\": file name refused (too long?)", path);
    }
    return rc == 0 ? 0 : -1;
}
