/*
 * The keystore provider (U): entry point, operation table, errors, and
 * how it finds the default provider.
 *
 * The default provider is found through the core's child-provider
 * callbacks (OSSL_FUNC_PROVIDER_REGISTER_CHILD_CB): the core reports every
 * provider activated in our library context, now and later, with its
 * name, provctx and dispatch table.  So a built-in provider and a module
 * loaded into a program with a static libcrypto (build/bin/openssl) work
 * the same way, without linking libcrypto.
 */

#include "ks_provider.h"
#include "ksp_local.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/opensslv.h>  /* OPENSSL_VERSION_TEXT */

#define KSP_VERSION "0.1"

/* The provider's openssl.cnf parameter naming the sealing key file */
#define KSP_CONF_SEAL_KEY_FILE "seal_key_file"

/* The core's functions; the same for every instance (the core has one set) */
static OSSL_FUNC_core_new_error_fn                 *c_new_error;
static OSSL_FUNC_core_set_error_debug_fn           *c_set_error_debug;
static OSSL_FUNC_core_vset_error_fn                *c_vset_error;
static OSSL_FUNC_core_get_params_fn                *c_get_params;
static OSSL_FUNC_provider_register_child_cb_fn     *c_register_child_cb;
static OSSL_FUNC_provider_deregister_child_cb_fn   *c_deregister_child_cb;
static OSSL_FUNC_provider_name_fn                  *c_provider_name;
static OSSL_FUNC_provider_get0_provider_ctx_fn     *c_provider_ctx;
static OSSL_FUNC_provider_get0_dispatch_fn         *c_provider_dispatch;

/* ---- errors -------------------------------------------------------------- */

void
ksp_raise(const struct ksp_provctx *pc, int reason, const char *file,
    int line, const char *func, const char *fmt, ...)
{
    va_list ap;

    if (pc == NULL || c_new_error == NULL || c_vset_error == NULL) {
        return;
    }
    c_new_error(pc->handle);
    if (c_set_error_debug != NULL) {
        c_set_error_debug(pc->handle, file, line, func);
    }
    va_start(ap, fmt);
    c_vset_error(pc->handle, (uint32_t) reason, fmt, ap);
    va_end(ap);
}

static const OSSL_ITEM reason_strings[] = {
    { KSP_R_REFUSED, "keystore refused the operation" },
    { KSP_R_NO_DEFAULT, "the default provider is not loaded" },
    { KSP_R_BAD_MARKER, "sealing marker that the keystore cannot serve" },
    { KSP_R_BAD_PARAM, "bad parameter" },
    { KSP_R_NOT_SUPPORTED, "not supported by the keystore provider" },
    { KSP_R_PRIVATE_KEY, "private keys stay in the keystore" },
    { 0, NULL }
};

static const char *
ks_err_name(long rc)
{
    switch (rc) {
    case KS_ERR_OP: return "unknown operation";
    case KS_ERR_ARG: return "argument refused";
    case KS_ERR_STATE: return "handle or key not usable";
    case KS_ERR_CRYPTO: return "crypto operation failed";
    default: return "error";
    }
}

long
ksp_gate(const struct ksp_provctx *pc, unsigned op, void *args,
    const char *what)
{
    long rc = ks_gate_call(op, args);

    if (rc < 0) {
        KSP_ERR(pc, KSP_R_REFUSED, "%s: %s (%ld)", what, ks_err_name(rc), rc);
    }
    return rc;
}

void
ksp_free_handle(const struct ksp_provctx *pc, uint64_t handle)
{
    struct ks_args_free a = { handle };

    if (handle != 0) {
        ksp_gate(pc, KS_OP_FREE, &a, "free");
    }
}

/* ---- the default provider ------------------------------------------------ */

static int
child_create(const OSSL_CORE_HANDLE *prov, void *cbdata)
{
    struct ksp_provctx *pc = cbdata;
    const OSSL_DISPATCH *d;
    const char *name = c_provider_name(prov);

    /*
     * The core holds its provider store locked while it calls us: only
     * note the provider here, call nothing back.
     */
    if (name == NULL || strcmp(name, "default") != 0) {
        return 1;
    }
    d = c_provider_dispatch(prov);
    pc->deflt.query = (OSSL_FUNC_provider_query_operation_fn *)
        ksp_dispatch_fn(d, OSSL_FUNC_PROVIDER_QUERY_OPERATION);
    pc->deflt.provctx = c_provider_ctx(prov);
    pc->deflt.handle = pc->deflt.query != NULL ? prov : NULL;
    pc->deflt.generation++;
    return 1;
}

static int
child_remove(const OSSL_CORE_HANDLE *prov, void *cbdata)
{
    struct ksp_provctx *pc = cbdata;

    if (prov == pc->deflt.handle) {
        pc->deflt.handle = NULL;
        pc->deflt.query = NULL;
        pc->deflt.provctx = NULL;
        pc->deflt.generation++;
    }
    return 1;
}

static int
child_global_props(const char *props, void *cbdata)
{
    (void) props;
    (void) cbdata;
    return 1;
}

void (*ksp_dispatch_fn(const OSSL_DISPATCH *d, int id))(void)
{
    for (; d != NULL && d->function_id != 0; d++) {
        if (d->function_id == id) {
            return d->function;
        }
    }
    return NULL;
}

/* 1 if the first name of the colon-separated list names is name */
static int
first_name_is(const char *names, const char *name)
{
    size_t n = strlen(name);

    return strncasecmp(names, name, n) == 0
           && (names[n] == '\0' || names[n] == ':');
}

const OSSL_DISPATCH *
ksp_fwd_impl(struct ksp_provctx *pc, struct ksp_fwd *f)
{
    const OSSL_ALGORITHM *a;
    int no_cache = 0;

    if (f->impl != NULL && f->generation == pc->deflt.generation) {
        return f->impl;
    }
    f->impl = NULL;
    if (pc->deflt.query == NULL) {
        KSP_ERR(pc, KSP_R_NO_DEFAULT, "%s", f->name);
        return NULL;
    }
    for (a = pc->deflt.query(pc->deflt.provctx, f->op, &no_cache);
         a != NULL && a->algorithm_names != NULL; a++)
    {
        if (first_name_is(a->algorithm_names, f->name)) {
            f->impl = a->implementation;
            f->generation = pc->deflt.generation;
            return f->impl;
        }
    }
    KSP_ERR(pc, KSP_R_NO_DEFAULT, "the default provider has no %s", f->name);
    return NULL;
}

/* ---- the provider -------------------------------------------------------- */

static const OSSL_PARAM gettable_params[] = {
    { OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0, 0 },
    { OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0, 0 },
    { OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0, 0 },
    { OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, sizeof(int), 0 },
    OSSL_PARAM_END
};

static const OSSL_PARAM *
ksp_gettable_params(void *provctx)
{
    (void) provctx;
    return gettable_params;
}

static int
ksp_get_params(void *provctx, OSSL_PARAM params[])
{
    struct ksp_provctx *pc = provctx;
    OSSL_PARAM *p;

    if ((p = ksp_param_find_rw(params, OSSL_PROV_PARAM_NAME)) != NULL
        && !ksp_param_set_utf8(p, "mpk-tls keystore provider"))
    {
        return 0;
    }
    if ((p = ksp_param_find_rw(params, OSSL_PROV_PARAM_VERSION)) != NULL
        && !ksp_param_set_utf8(p, KSP_VERSION))
    {
        return 0;
    }
    if ((p = ksp_param_find_rw(params, OSSL_PROV_PARAM_BUILDINFO)) != NULL
        && !ksp_param_set_utf8(p, "built against " OPENSSL_VERSION_TEXT))
    {
        return 0;
    }
    /* running: the keystore is there and the default provider too */
    if ((p = ksp_param_find_rw(params, OSSL_PROV_PARAM_STATUS)) != NULL
        && !ksp_param_set_int(p, pc->deflt.query != NULL))
    {
        return 0;
    }
    return 1;
}

static const OSSL_ALGORITHM *
ksp_query(void *provctx, int op, int *no_cache)
{
    *no_cache = 0;
    switch (op) {
    case OSSL_OP_KDF:
        return ksp_kdfs;
    case OSSL_OP_MAC:
        return ksp_macs;
    case OSSL_OP_CIPHER:
        ksp_cipher_prime(provctx);
        return ksp_ciphers;
    case OSSL_OP_KEYMGMT:
        return ksp_keymgmts;
    case OSSL_OP_KEYEXCH:
        return ksp_keyexchs;
    case OSSL_OP_KEM:
        return ksp_kems;
    case OSSL_OP_SIGNATURE:
        return ksp_signatures;
    case OSSL_OP_STORE:
        return ksp_stores;
    default:
        return NULL;
    }
}

static const OSSL_ITEM *
ksp_reasons(void *provctx)
{
    (void) provctx;
    return reason_strings;
}

static void
ksp_teardown(void *provctx)
{
    struct ksp_provctx *pc = provctx;

    if (pc == NULL) {
        return;
    }
    if (pc->child_cb && c_deregister_child_cb != NULL) {
        c_deregister_child_cb(pc->handle);
    }
    free(pc);
}

static const OSSL_DISPATCH ksp_dispatch[] = {
    { OSSL_FUNC_PROVIDER_TEARDOWN, (ksp_fn) ksp_teardown },
    { OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (ksp_fn) ksp_gettable_params },
    { OSSL_FUNC_PROVIDER_GET_PARAMS, (ksp_fn) ksp_get_params },
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (ksp_fn) ksp_query },
    { OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (ksp_fn) ksp_reasons },
    OSSL_DISPATCH_END
};

/* The keystore: ready, or created now (NGINX's module creates it earlier) */
static int
keystore_ready(char *err, size_t errlen)
{
    struct ks_stats st;

    if (ks_stats(&st) == 0) {
        return 1;
    }
    return ks_init(NULL, err, errlen) == 0;
}

/*
 * The sealing key file named in the provider's openssl.cnf section
 * (seal_key_file = /path), read by T itself (ks_seal_key_load_file): so
 * that processes, and restarts, with the same file make the same tokens.
 * 1 if none is named or it was loaded; 0 with the reason in err, and the
 * provider does not start (fail closed: tokens under a random key would
 * not resume anywhere else, silently).  The key is the process's: the
 * last activation that names a file sets it.
 */
static int
seal_key_from_conf(const OSSL_CORE_HANDLE *handle, char *err, size_t errlen)
{
    const char *path = NULL;
    OSSL_PARAM p[] = {
        { KSP_CONF_SEAL_KEY_FILE, OSSL_PARAM_UTF8_PTR, &path, 0, 0 },
        { NULL, 0, NULL, 0, 0 }
    };

    if (c_get_params == NULL || !c_get_params(handle, p) || path == NULL) {
        return 1;
    }
    return ks_seal_key_load_file(path, err, errlen) == 0;
}

int
ks_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx)
{
    struct ksp_provctx *pc;
    char err[256] = "";

    for (; in != NULL && in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_NEW_ERROR:
            c_new_error = OSSL_FUNC_core_new_error(in);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            c_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            c_vset_error = OSSL_FUNC_core_vset_error(in);
            break;
        case OSSL_FUNC_CORE_GET_PARAMS:
            c_get_params = OSSL_FUNC_core_get_params(in);
            break;
        case OSSL_FUNC_PROVIDER_REGISTER_CHILD_CB:
            c_register_child_cb = OSSL_FUNC_provider_register_child_cb(in);
            break;
        case OSSL_FUNC_PROVIDER_DEREGISTER_CHILD_CB:
            c_deregister_child_cb = OSSL_FUNC_provider_deregister_child_cb(in);
            break;
        case OSSL_FUNC_PROVIDER_NAME:
            c_provider_name = OSSL_FUNC_provider_name(in);
            break;
        case OSSL_FUNC_PROVIDER_GET0_PROVIDER_CTX:
            c_provider_ctx = OSSL_FUNC_provider_get0_provider_ctx(in);
            break;
        case OSSL_FUNC_PROVIDER_GET0_DISPATCH:
            c_provider_dispatch = OSSL_FUNC_provider_get0_dispatch(in);
            break;
        default:
            break;
        }
    }
    if (c_register_child_cb == NULL || c_provider_name == NULL
        || c_provider_ctx == NULL || c_provider_dispatch == NULL)
    {
        return 0;                   /* a core without child callbacks */
    }
    pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        return 0;
    }
    pc->handle = handle;
    if (!keystore_ready(err, sizeof(err))) {
        KSP_ERR(pc, KSP_R_REFUSED, "ks_init: %s", err);
        free(pc);
        return 0;
    }
    if (!seal_key_from_conf(handle, err, sizeof(err))) {
        KSP_ERR(pc, KSP_R_REFUSED, "%s: %s", KSP_CONF_SEAL_KEY_FILE, err);
        free(pc);
        return 0;
    }
    /* reports the providers active now (default, if loaded) and later */
    if (!c_register_child_cb(handle, child_create, child_remove,
                             child_global_props, pc))
    {
        free(pc);
        return 0;
    }
    pc->child_cb = 1;
    *out = ksp_dispatch;
    *provctx = pc;
    return 1;
}

#ifdef KSP_MODULE
/* The loadable module's entry point (build/lib/ossl-modules/keystore.so) */
__attribute__((visibility("default")))
OSSL_provider_init_fn OSSL_provider_init;

int
OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx)
{
    return ks_provider_init(handle, in, out, provctx);
}
#endif
