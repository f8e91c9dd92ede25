/*
 * OSSL_PARAM handling for the keystore provider (U), without libcrypto:
 * the few getters and setters the provider needs, with the semantics of
 * OpenSSL's (params.c) for the types it meets: integers of 1, 2, 4 or 8
 * bytes, size_t, UTF-8 strings and octet strings (and their _PTR forms).
 */

#include "ksp_local.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

const OSSL_PARAM *
ksp_param_find(const OSSL_PARAM *params, const char *key)
{
    for (; params != NULL && params->key != NULL; params++) {
        if (strcmp(params->key, key) == 0) {
            return params;
        }
    }
    return NULL;
}

OSSL_PARAM *
ksp_param_find_rw(OSSL_PARAM *params, const char *key)
{
    return (OSSL_PARAM *) ksp_param_find(params, key);
}

/* The value of an integer parameter as int64 (1 ok, 0 not representable) */
static int
get_i64(const OSSL_PARAM *p, int64_t *v)
{
    if (p == NULL || p->data == NULL) {
        return 0;
    }
    if (p->data_type == OSSL_PARAM_INTEGER) {
        switch (p->data_size) {
        case 1: *v = *(const int8_t *) p->data; return 1;
        case 2: *v = *(const int16_t *) p->data; return 1;
        case 4: *v = *(const int32_t *) p->data; return 1;
        case 8: *v = *(const int64_t *) p->data; return 1;
        default: return 0;
        }
    }
    if (p->data_type == OSSL_PARAM_UNSIGNED_INTEGER) {
        uint64_t u;

        switch (p->data_size) {
        case 1: u = *(const uint8_t *) p->data; break;
        case 2: u = *(const uint16_t *) p->data; break;
        case 4: u = *(const uint32_t *) p->data; break;
        case 8: u = *(const uint64_t *) p->data; break;
        default: return 0;
        }
        if (u > INT64_MAX) {
            return 0;
        }
        *v = (int64_t) u;
        return 1;
    }
    return 0;
}

int
ksp_param_get_int(const OSSL_PARAM *p, int *v)
{
    int64_t x;

    if (!get_i64(p, &x) || x < INT_MIN || x > INT_MAX) {
        return 0;
    }
    *v = (int) x;
    return 1;
}

int
ksp_param_get_size_t(const OSSL_PARAM *p, size_t *v)
{
    int64_t x;

    if (!get_i64(p, &x) || x < 0) {
        return 0;
    }
    *v = (size_t) x;
    return 1;
}

int
ksp_param_get_utf8(const OSSL_PARAM *p, const char **s)
{
    if (p == NULL) {
        return 0;
    }
    if (p->data_type == OSSL_PARAM_UTF8_STRING && p->data != NULL) {
        /* NUL-terminated, as OpenSSL reads it: OSSL_PARAM_utf8_string()
         * with a size of 0 is common (the size is not the length) */
        *s = p->data;
        return 1;
    }
    if (p->data_type == OSSL_PARAM_UTF8_PTR && p->data != NULL) {
        *s = *(const char *const *) p->data;
        return *s != NULL;
    }
    return 0;
}

int
ksp_param_get_octets(const OSSL_PARAM *p, const void **d, size_t *n)
{
    if (p == NULL) {
        return 0;
    }
    if (p->data_type == OSSL_PARAM_OCTET_STRING) {
        *d = p->data;
        *n = p->data_size;
        return p->data != NULL || p->data_size == 0;
    }
    if (p->data_type == OSSL_PARAM_OCTET_PTR && p->data != NULL) {
        *d = *(const void *const *) p->data;
        *n = p->data_size;
        return 1;
    }
    return 0;
}

static int
set_i64(OSSL_PARAM *p, int64_t v)
{
    if (p == NULL) {
        return 0;
    }
    p->return_size = 0;
    if (p->data_type == OSSL_PARAM_INTEGER) {
        if (p->data == NULL) {
            p->return_size = p->data_size ? p->data_size : sizeof(int64_t);
            return 1;
        }
        switch (p->data_size) {
        case 4:
            if (v < INT32_MIN || v > INT32_MAX) {
                return 0;
            }
            *(int32_t *) p->data = (int32_t) v;
            break;
        case 8:
            *(int64_t *) p->data = v;
            break;
        default:
            return 0;
        }
        p->return_size = p->data_size;
        return 1;
    }
    if (p->data_type == OSSL_PARAM_UNSIGNED_INTEGER) {
        if (v < 0) {
            return 0;
        }
        if (p->data == NULL) {
            p->return_size = p->data_size ? p->data_size : sizeof(uint64_t);
            return 1;
        }
        switch (p->data_size) {
        case 4:
            if ((uint64_t) v > UINT32_MAX) {
                return 0;
            }
            *(uint32_t *) p->data = (uint32_t) v;
            break;
        case 8:
            *(uint64_t *) p->data = (uint64_t) v;
            break;
        default:
            return 0;
        }
        p->return_size = p->data_size;
        return 1;
    }
    return 0;
}

int
ksp_param_set_int(OSSL_PARAM *p, int v)
{
    return set_i64(p, v);
}

int
ksp_param_set_size_t(OSSL_PARAM *p, size_t v)
{
    return v <= INT64_MAX && set_i64(p, (int64_t) v);
}

int
ksp_param_set_octets(OSSL_PARAM *p, const void *d, size_t n)
{
    if (p == NULL) {
        return 0;
    }
    p->return_size = 0;
    if (p->data_type == OSSL_PARAM_OCTET_PTR) {
        p->return_size = n;
        if (p->data != NULL) {
            *(const void **) p->data = d;
        }
        return 1;
    }
    if (p->data_type != OSSL_PARAM_OCTET_STRING) {
        return 0;
    }
    p->return_size = n;
    if (p->data == NULL) {
        return 1;                   /* a size query */
    }
    if (p->data_size < n) {
        return 0;
    }
    if (n > 0) {
        memcpy(p->data, d, n);
    }
    return 1;
}

int
ksp_param_set_utf8(OSSL_PARAM *p, const char *s)
{
    size_t n = strlen(s);

    if (p == NULL) {
        return 0;
    }
    p->return_size = 0;
    if (p->data_type == OSSL_PARAM_UTF8_PTR) {
        p->return_size = n;
        if (p->data != NULL) {
            *(const char **) p->data = s;
        }
        return 1;
    }
    if (p->data_type != OSSL_PARAM_UTF8_STRING) {
        return 0;
    }
    p->return_size = n;
    if (p->data == NULL) {
        return 1;
    }
    if (p->data_size < n + 1) {
        return 0;
    }
    memcpy(p->data, s, n + 1);
    return 1;
}

int
ksp_param_key_token(const OSSL_PARAM *params)
{
    const OSSL_PARAM *p = ksp_param_find(params, KSP_MARK_KEY_TOKEN);
    int v;

    if (p == NULL) {
        return -1;
    }
    if (!ksp_param_get_int(p, &v) || (v != 0 && v != 1)) {
        return -2;
    }
    return v;
}

/* ---- digests ------------------------------------------------------------- */

static const struct {
    const char  *name;
    uint32_t     md;
} md_names[] = {
    { "SHA2-256", KS_MD_SHA256 }, { "SHA256", KS_MD_SHA256 },
    { "SHA-256", KS_MD_SHA256 }, { "2.16.840.1.101.3.4.2.1", KS_MD_SHA256 },
    { "SHA2-384", KS_MD_SHA384 }, { "SHA384", KS_MD_SHA384 },
    { "SHA-384", KS_MD_SHA384 }, { "2.16.840.1.101.3.4.2.2", KS_MD_SHA384 },
    { "SHA2-512", KS_MD_SHA512 }, { "SHA512", KS_MD_SHA512 },
    { "SHA-512", KS_MD_SHA512 }, { "2.16.840.1.101.3.4.2.3", KS_MD_SHA512 },
};

uint32_t
ksp_md_from_name(const char *name)
{
    size_t i;

    for (i = 0; name != NULL && i < sizeof(md_names) / sizeof(md_names[0]); i++) {
        if (strcasecmp(name, md_names[i].name) == 0) {
            return md_names[i].md;
        }
    }
    return 0;
}

size_t
ksp_md_len(uint32_t md)
{
    switch (md) {
    case KS_MD_SHA256: return 32;
    case KS_MD_SHA384: return 48;
    case KS_MD_SHA512: return 64;
    default: return 0;
    }
}

size_t
ksp_md_block(uint32_t md)
{
    switch (md) {
    case KS_MD_SHA256: return 64;
    case KS_MD_SHA384:
    case KS_MD_SHA512: return 128;
    default: return 0;
    }
}

/* ---- answering some parameters, forwarding the others --------------------- */

int
ksp_params_forward_get(void *ctx, OSSL_PARAM params[],
    int (*fn)(void *, OSSL_PARAM[]), int (*skip)(const OSSL_PARAM *))
{
    OSSL_PARAM one[2];
    OSSL_PARAM *p;

    for (p = params; p != NULL && p->key != NULL; p++) {
        if (skip != NULL && skip(p)) {
            continue;
        }
        if (fn == NULL) {
            continue;               /* nothing to ask: left unmodified */
        }
        one[0] = *p;
        one[1] = (OSSL_PARAM) OSSL_PARAM_END;
        if (!fn(ctx, one)) {
            return 0;
        }
        p->return_size = one[0].return_size;
    }
    return 1;
}

int
ksp_params_forward_set(void *ctx, const OSSL_PARAM params[],
    int (*fn)(void *, const OSSL_PARAM[]), int (*skip)(const OSSL_PARAM *))
{
    OSSL_PARAM one[2];
    const OSSL_PARAM *p;

    for (p = params; p != NULL && p->key != NULL; p++) {
        if ((skip != NULL && skip(p)) || fn == NULL) {
            continue;
        }
        one[0] = *p;
        one[1] = (OSSL_PARAM) OSSL_PARAM_END;
        if (!fn(ctx, one)) {
            return 0;
        }
    }
    return 1;
}
