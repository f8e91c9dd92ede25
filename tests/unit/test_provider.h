/*
 * What the keystore provider's MPK tests (test_provider, test_provider_evp,
 * test_provider_badinput) share: the provider built in and preferred in
 * the default library context, and the keystore's crossing counter.
 * Static inline definitions: each test is one .c file.
 */

#ifndef TEST_PROVIDER_H
#define TEST_PROVIDER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "../../keystore/keystore.h"
#include "../../openssl-patch/provider/ks_provider.h"

/* Gate crossings so far, not counting this query's own (ks_stats). */
static inline uint64_t
crossings(void)
{
    static uint64_t queries;
    struct ks_stats st;

    assert_int_equal(ks_stats(&st), 0);
    queries++;
    return st.gate_crossings - queries;
}

/*
 * The default provider, then the keystore provider built in and preferred
 * ("?provider=keystore"), primed (ks_provider.h): 1, or 0 with OpenSSL's
 * errors on stderr.  The providers come back in *deflt and *ks.
 */
static inline int
provider_setup(OSSL_PROVIDER **deflt, OSSL_PROVIDER **ks)
{
    /* the default provider first: the keystore provider forwards to it */
    if ((*deflt = OSSL_PROVIDER_load(NULL, "default")) == NULL
        || !OSSL_PROVIDER_add_builtin(NULL, KS_PROVIDER_NAME, ks_provider_init)
        || (*ks = OSSL_PROVIDER_load(NULL, KS_PROVIDER_NAME)) == NULL
        || !EVP_set_default_properties(NULL, "?provider=" KS_PROVIDER_NAME)
        || !ks_provider_prime(NULL, NULL))
    {
        ERR_print_errors_fp(stderr);
        fprintf(stderr, "cannot set up the keystore provider\n");
        return 0;
    }
    return 1;
}

#endif /* TEST_PROVIDER_H */
