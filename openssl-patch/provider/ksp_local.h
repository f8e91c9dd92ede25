/*
 * The keystore provider (U side): what its files share.
 *
 * The provider uses nothing of libcrypto but its public headers: OSSL_PARAM
 * handling is done here (ksp_params.c), errors and the default provider
 * are reached through the functions the core hands every provider at init
 * (core_dispatch.h), memory is libc's.  So the same objects serve as a
 * built-in provider (linked into a program with a static libcrypto) and
 * as a loadable module (keystore.so, which links only libc and
 * libkeystore.so, -z defs).
 *
 * Calls that carry no libssl marker are ordinary raw-key crypto and are
 * forwarded to the default provider's own implementation: every context
 * of ours holds an "inner" context of the default algorithm of the same
 * name, created with the default provider's provctx.
 */

#ifndef KSP_LOCAL_H
#define KSP_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"

/* ---- the markers of the libssl series (openssl-patch/README.md) -------- */

#define KSP_MARK_OUT        "mpktls-out"
#define KSP_MARK_KEY_TOKEN  "mpktls-key-token"
#define KSP_MARK_SALT_TOKEN "mpktls-salt-token"
#define KSP_MARK_KB_MAC     "mpktls-kb-mac"
#define KSP_MARK_KB_KEY     "mpktls-kb-key"
#define KSP_MARK_KB_IV      "mpktls-kb-iv"

#define KSP_OUT_SECRET      "secret"
#define KSP_OUT_RECORD_KEY  "record-key"
#define KSP_OUT_MAC_KEY     "mac-key"
#define KSP_OUT_CLEAR       "clear"
#define KSP_OUT_KEYBLOCK    "keyblock"

#define KSP_PROPS           "provider=keystore"

/* ---- the provider context ------------------------------------------------ */

/* The default provider, as the core's child callbacks reported it. */
struct ksp_default {
    const OSSL_CORE_HANDLE                  *handle;    /* NULL: not there */
    void                                    *provctx;
    OSSL_FUNC_provider_query_operation_fn   *query;
    unsigned                                 generation; /* bumped on change */
};

struct ksp_provctx {
    const OSSL_CORE_HANDLE  *handle;
    struct ksp_default       deflt;
    int                      child_cb;      /* registered with the core */
};

/* ---- errors (through the core, as any provider reports them) ------------ */

enum ksp_reason {
    KSP_R_REFUSED = 1,          /* the keystore refused (KS_ERR_*) */
    KSP_R_NO_DEFAULT,           /* the default provider is not loaded */
    KSP_R_BAD_MARKER,           /* a marker this provider cannot serve */
    KSP_R_BAD_PARAM,            /* a parameter of a wrong type or size */
    KSP_R_NOT_SUPPORTED,        /* a request the provider does not serve */
    KSP_R_PRIVATE_KEY,          /* private keys stay in T */
};

void ksp_raise(const struct ksp_provctx *pc, int reason, const char *file,
    int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define KSP_ERR(pc, reason, ...) \
    ksp_raise((pc), (reason), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* A gate call; on failure (< 0) it raises KSP_R_REFUSED naming what. */
long ksp_gate(const struct ksp_provctx *pc, unsigned op, void *args,
    const char *what);

/* KS_OP_FREE of a handle (0 is ignored). */
void ksp_free_handle(const struct ksp_provctx *pc, uint64_t handle);

/* ---- the default provider's implementations ----------------------------- */

/*
 * One of our algorithms and the default's of the same name: the dispatch
 * table is looked up on first use and again whenever the default provider
 * changed (generation).
 */
struct ksp_fwd {
    int                   op;               /* OSSL_OP_* */
    const char           *name;             /* first name, as the default's */
    const OSSL_DISPATCH  *impl;             /* the default's, or NULL */
    unsigned              generation;
};

/* The default's dispatch table for f (NULL, with an error, if none). */
const OSSL_DISPATCH *ksp_fwd_impl(struct ksp_provctx *pc, struct ksp_fwd *f);

/* Function id of a dispatch table, or NULL. */
void (*ksp_dispatch_fn(const OSSL_DISPATCH *d, int id))(void);

/* ---- OSSL_PARAM, without libcrypto (ksp_params.c) ----------------------- */

const OSSL_PARAM *ksp_param_find(const OSSL_PARAM *params, const char *key);
OSSL_PARAM *ksp_param_find_rw(OSSL_PARAM *params, const char *key);
int ksp_param_get_int(const OSSL_PARAM *p, int *v);
int ksp_param_get_size_t(const OSSL_PARAM *p, size_t *v);
int ksp_param_get_utf8(const OSSL_PARAM *p, const char **s);
int ksp_param_get_octets(const OSSL_PARAM *p, const void **d, size_t *n);
int ksp_param_set_int(OSSL_PARAM *p, int v);
int ksp_param_set_size_t(OSSL_PARAM *p, size_t v);
int ksp_param_set_octets(OSSL_PARAM *p, const void *d, size_t n);
int ksp_param_set_utf8(OSSL_PARAM *p, const char *s);

/*
 * The key-token marker in params: 1 or 0 if present, -1 if absent,
 * -2 if present but not an int 0/1.
 */
int ksp_param_key_token(const OSSL_PARAM *params);

/* enum ks_md for a digest name (SHA2-256, SHA256, SHA-256, ...), or 0 */
uint32_t ksp_md_from_name(const char *name);
size_t ksp_md_len(uint32_t md);
size_t ksp_md_block(uint32_t md);

/*
 * Calls fn(ctx, {*p, END}) for each parameter p of params for which skip
 * returns 0, and copies return_size back: lets a wrapper answer some
 * parameters itself and forward the rest.  1, or 0 at the first failure.
 */
int ksp_params_forward_get(void *ctx, OSSL_PARAM params[],
    int (*fn)(void *, OSSL_PARAM[]), int (*skip)(const OSSL_PARAM *));
int ksp_params_forward_set(void *ctx, const OSSL_PARAM params[],
    int (*fn)(void *, const OSSL_PARAM[]), int (*skip)(const OSSL_PARAM *));

/* ---- the algorithms ------------------------------------------------------ */

extern const OSSL_ALGORITHM ksp_kdfs[];
extern const OSSL_ALGORITHM ksp_macs[];
extern const OSSL_ALGORITHM ksp_ciphers[];
extern const OSSL_ALGORITHM ksp_keymgmts[];
extern const OSSL_ALGORITHM ksp_keyexchs[];
extern const OSSL_ALGORITHM ksp_kems[];
extern const OSSL_ALGORITHM ksp_signatures[];
extern const OSSL_ALGORITHM ksp_stores[];
extern const OSSL_DISPATCH ksp_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH ksp_ed25519_keymgmt_functions[];

/* EC signing keys (ksp_kex.c's EC key management, used by ksp_sig.c): a
 * key with its group, its point and a KS_HT_PKEY handle (taken over; freed
 * on failure).  info: 1 and the fields (handle 0: no private key), or 0
 * if not an EC key with a public key. */
void *ksp_ec_key_new_signing(struct ksp_provctx *pc, const char *group,
    const unsigned char *pub, size_t publen, uint64_t handle);
int ksp_ec_key_info(const void *keydata, uint64_t *handle, const char **group,
    const unsigned char **pub, size_t *publen, int *maxsize);

typedef void (*ksp_fn)(void);

/* Looks up the default's cipher tables now: a cipher's get_params has no
 * provctx, and EVP calls it when it builds the method, before any newctx */
void ksp_cipher_prime(struct ksp_provctx *pc);

#endif /* KSP_LOCAL_H */
