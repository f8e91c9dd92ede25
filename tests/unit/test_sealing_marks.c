/*
 * The markers of the libssl sealing series (openssl-patch/patches/) reach
 * the provider: explicit sealing, seen from a provider.
 *
 * Linked statically against the patched libssl/libcrypto.  A small
 * built-in provider, "recorder", is made the preferred one (as the
 * keystore provider will be, with EVP_set_default_properties).  It offers
 * the algorithms libssl uses for its secrets, each one the default
 * provider's own implementation whose dispatch table is copied with a few
 * entries wrapped: KDF derive (TLS13-KDF, TLS1-PRF), MAC init (HMAC),
 * cipher encrypt/decrypt init (the record AEADs, the ticket's AES-256-CBC,
 * the DRBG's AES-256-ECB/CTR), key-exchange init and derive (X25519), KEM
 * init and (en|de)capsulate (X25519MLKEM768), plus, unchanged, the X25519
 * and X25519MLKEM768 key managers (so that the keys are its own) and the
 * CTR-DRBG (3.5's DRBG takes its AES from its own provider: this way it is
 * the recorder's).  The wrappers record the parameters they receive and
 * forward the call; the recorder runs in the default provider's context,
 * so the work is the default provider's.
 *
 * In-memory TLS 1.3 and TLS 1.2 handshakes (two SSL objects over a BIO
 * pair, a certificate made here) plus application records, key updates,
 * exporters, resumption, an external PSK and a stateless HelloRetryRequest
 * with a cookie then show, call by call:
 *   - every derive/encapsulate/decapsulate init carries mpktls-out=secret;
 *   - every TLS13-KDF/TLS1-PRF derivation carries mpktls-out with the
 *     class the table below gives for its label (and, for the TLS 1.2 key
 *     block, the layout), and mpktls-key-token (and for extracts
 *     mpktls-salt-token) saying exactly whether the input is a value that
 *     an earlier key exchange or KDF call produced as a secret: so the
 *     external PSK and the all-zero early-secret input are raw;
 *   - cipher and MAC initialisations whose key is a record key or MAC key
 *     derived that way carry mpktls-key-token=1, all others (session
 *     ticket AES and HMAC keys, the cookie HMAC key, the DRBG) carry no
 *     marker at all;
 *   - the handshakes complete and the records arrive (the markers are
 *     harmless to the default provider);
 *   - with SSL_OP_ENABLE_KTLS, a fake kTLS socket is never offered a key.
 * Only calls made from outside the recorded algorithms count (the default
 * TLS13-KDF calls HMAC itself, X25519MLKEM768 calls X25519).
 *
 * Positive control: built against the unpatched libraries (Debian's series
 * only) the same test sees no markers and fails every marker assertion,
 * while the handshakes still complete, and the fake kTLS socket is handed
 * the record keys.  TEST_SEALING_TRACE=1 prints every recorded call.
 *
 * The marker names are written out here, not taken from OpenSSL's
 * internal/mpktls.h: they are the documented contract (README) that the
 * provider relies on.
 */

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_MAJOR != 3 || OPENSSL_VERSION_MINOR != 5
#error "test_sealing_marks needs the pinned OpenSSL 3.5 (patched libssl)"
#endif

/* ---- the contract (openssl-patch/README.md) ----------------------------- */

#define MARK_PREFIX     "mpktls-"
#define MARK_OUT        "mpktls-out"
#define MARK_KEY_TOKEN  "mpktls-key-token"
#define MARK_SALT_TOKEN "mpktls-salt-token"
#define MARK_KB_MAC     "mpktls-kb-mac"
#define MARK_KB_KEY     "mpktls-kb-key"
#define MARK_KB_IV      "mpktls-kb-iv"

#define OUT_SECRET      "secret"
#define OUT_RECORD_KEY  "record-key"
#define OUT_MAC_KEY     "mac-key"
#define OUT_CLEAR       "clear"
#define OUT_KEYBLOCK    "keyblock"

/*
 * The expected output class of every TLS13-KDF expand, by label and by
 * whether a context (data) is given; every other expand, and every
 * extract, derives a secret.  The exporter's first stage uses the
 * application's label with Hash("") as data: an application label "iv"
 * (used below) must still give a secret.
 */
static const struct {
    const char *label;
    int         data;
    const char *cls;
} tls13_classes[] = {
    { "key", 0, OUT_RECORD_KEY },
    { "iv", 0, OUT_CLEAR },
    { "finished", 0, OUT_MAC_KEY },
    { "exporter", 1, OUT_CLEAR },
};

/* TLS1-PRF, by the start of the seed; any other seed is an exporter */
static const struct {
    const char *prefix;
    const char *cls;
} prf_classes[] = {
    { "key expansion", OUT_KEYBLOCK },
    { "master secret", OUT_SECRET },
    { "extended master secret", OUT_SECRET },
    { "client finished", OUT_CLEAR },
    { "server finished", OUT_CLEAR },
};

/* ---- the record --------------------------------------------------------- */

enum ev_kind {
    EV_KEX_INIT = 1,    /* derive/encapsulate/decapsulate init */
    EV_KEX_SECRET,      /* a shared secret that came out */
    EV_KDF,
    EV_CIPHER_INIT,
    EV_MAC_INIT,
};

#define BUFMAX 256

struct blob {
    unsigned char b[BUFMAX];
    size_t        len;
    int           present;
};

struct marks {
    int  n;                     /* mpktls-* parameters */
    int  unknown;               /* of which with an unknown name */
    char out[32];               /* "" if absent */
    int  key_token, salt_token; /* -1 if absent */
    long kb_mac, kb_key, kb_iv; /* -1 if absent */
};

struct event {
    enum ev_kind kind;
    const char  *alg;
    struct marks m;
    /* KDF */
    int          mode;          /* TLS13-KDF: 1 extract, 2 expand */
    struct blob  key, salt, label, data, seed, out;
};

static struct event *events;
static size_t nevents, capevents;
static int depth;               /* > 0: inside a recorded algorithm */

static int trace;               /* TEST_SEALING_TRACE=1: print every call */

static struct event *new_event(enum ev_kind kind, const char *alg)
{
    if (trace)
        fprintf(stderr, "#   call %d %s\n", (int)kind, alg);
    if (nevents == capevents) {
        capevents = capevents ? 2 * capevents : 256;
        events = realloc(events, capevents * sizeof(*events));
        if (events == NULL)
            abort();
    }
    memset(&events[nevents], 0, sizeof(events[0]));
    events[nevents].kind = kind;
    events[nevents].alg = alg;
    return &events[nevents++];
}

static void blob_set(struct blob *bl, const void *p, size_t len)
{
    bl->present = 1;
    bl->len = len < BUFMAX ? len : BUFMAX;
    if (p != NULL && bl->len > 0)
        memcpy(bl->b, p, bl->len);
}

/* Appends an octet-string parameter (TLS1-PRF passes several seeds) */
static void blob_append_param(struct blob *bl, const OSSL_PARAM *p)
{
    size_t n = p->data_size;

    bl->present = 1;
    if (n > BUFMAX - bl->len)
        n = BUFMAX - bl->len;
    if (n > 0 && p->data != NULL)
        memcpy(bl->b + bl->len, p->data, n);
    bl->len += n;
}

static void read_marks(struct marks *m, const OSSL_PARAM *params)
{
    const OSSL_PARAM *p;
    int i;
    size_t z;
    const char *s;

    m->out[0] = '\0';
    m->key_token = m->salt_token = -1;
    m->kb_mac = m->kb_key = m->kb_iv = -1;
    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strncmp(p->key, MARK_PREFIX, strlen(MARK_PREFIX)) != 0)
            continue;
        m->n++;
        if (strcmp(p->key, MARK_OUT) == 0 && OSSL_PARAM_get_utf8_string_ptr(p, &s))
            snprintf(m->out, sizeof(m->out), "%s", s);
        else if (strcmp(p->key, MARK_KEY_TOKEN) == 0 && OSSL_PARAM_get_int(p, &i))
            m->key_token = i;
        else if (strcmp(p->key, MARK_SALT_TOKEN) == 0 && OSSL_PARAM_get_int(p, &i))
            m->salt_token = i;
        else if (strcmp(p->key, MARK_KB_MAC) == 0 && OSSL_PARAM_get_size_t(p, &z))
            m->kb_mac = (long)z;
        else if (strcmp(p->key, MARK_KB_KEY) == 0 && OSSL_PARAM_get_size_t(p, &z))
            m->kb_key = (long)z;
        else if (strcmp(p->key, MARK_KB_IV) == 0 && OSSL_PARAM_get_size_t(p, &z))
            m->kb_iv = (long)z;
        else
            m->unknown++;
    }
}

/* ---- the recorder provider ---------------------------------------------- */

/* The algorithms it offers: the default provider's, some calls wrapped. */
struct slot {
    int          op;            /* OSSL_OP_* */
    const char  *name;          /* the first of the default's names */
    OSSL_DISPATCH disp[64];
    OSSL_ALGORITHM alg;
    OSSL_FUNC_kdf_derive_fn *kdf_derive;
    OSSL_FUNC_mac_init_fn *mac_init;
    OSSL_FUNC_cipher_encrypt_init_fn *c_einit;
    OSSL_FUNC_cipher_decrypt_init_fn *c_dinit;
    OSSL_FUNC_keyexch_init_fn *kex_init;
    OSSL_FUNC_keyexch_derive_fn *kex_derive;
    OSSL_FUNC_kem_encapsulate_init_fn *kem_einit;
    OSSL_FUNC_kem_decapsulate_init_fn *kem_dinit;
    OSSL_FUNC_kem_encapsulate_fn *kem_enc;
    OSSL_FUNC_kem_decapsulate_fn *kem_dec;
};

static struct slot slots[] = {
    { .op = OSSL_OP_KDF, .name = "TLS13-KDF" },
    { .op = OSSL_OP_KDF, .name = "TLS1-PRF" },
    { .op = OSSL_OP_MAC, .name = "HMAC" },
    { .op = OSSL_OP_CIPHER, .name = "AES-128-GCM" },
    { .op = OSSL_OP_CIPHER, .name = "AES-256-GCM" },
    { .op = OSSL_OP_CIPHER, .name = "ChaCha20-Poly1305" },
    { .op = OSSL_OP_CIPHER, .name = "AES-256-CBC" },  /* session tickets */
    { .op = OSSL_OP_CIPHER, .name = "AES-256-ECB" },  /* the CTR-DRBG */
    { .op = OSSL_OP_CIPHER, .name = "AES-256-CTR" },
    { .op = OSSL_OP_KEYEXCH, .name = "X25519" },
    { .op = OSSL_OP_KEM, .name = "X25519MLKEM768" },
    { .op = OSSL_OP_KEYMGMT, .name = "X25519" },
    { .op = OSSL_OP_KEYMGMT, .name = "X25519MLKEM768" },
    { .op = OSSL_OP_RAND, .name = "CTR-DRBG" },     /* uses its provider's AES */
};
#define NSLOTS (sizeof(slots) / sizeof(slots[0]))

static void kdf_record(struct event *ev, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p;

    read_marks(&ev->m, params);
    for (p = params; p != NULL && p->key != NULL; p++) {
        if (strcmp(p->key, OSSL_KDF_PARAM_MODE) == 0)
            OSSL_PARAM_get_int(p, &ev->mode);
        else if (strcmp(p->key, OSSL_KDF_PARAM_KEY) == 0
            || strcmp(p->key, OSSL_KDF_PARAM_SECRET) == 0)
            blob_set(&ev->key, p->data, p->data_size);
        else if (strcmp(p->key, OSSL_KDF_PARAM_SALT) == 0)
            blob_set(&ev->salt, p->data, p->data_size);
        else if (strcmp(p->key, OSSL_KDF_PARAM_LABEL) == 0)
            blob_set(&ev->label, p->data, p->data_size);
        else if (strcmp(p->key, OSSL_KDF_PARAM_DATA) == 0)
            blob_set(&ev->data, p->data, p->data_size);
        else if (strcmp(p->key, OSSL_KDF_PARAM_SEED) == 0)
            blob_append_param(&ev->seed, p);
    }
}

static int w_kdf_derive(struct slot *sl, void *ctx, unsigned char *out,
    size_t outlen, const OSSL_PARAM params[])
{
    size_t idx = SIZE_MAX;
    int ret;

    if (depth == 0) {
        kdf_record(new_event(EV_KDF, sl->name), params);
        idx = nevents - 1;
    }
    depth++;
    ret = sl->kdf_derive(ctx, out, outlen, params);
    depth--;
    if (idx != SIZE_MAX && ret > 0)
        blob_set(&events[idx].out, out, outlen);
    return ret;
}

static int w_mac_init(struct slot *sl, void *ctx, const unsigned char *key,
    size_t keylen, const OSSL_PARAM params[])
{
    int ret;

    if (depth == 0) {
        struct event *ev = new_event(EV_MAC_INIT, sl->name);

        read_marks(&ev->m, params);
        if (key != NULL)
            blob_set(&ev->key, key, keylen);
    }
    depth++;
    ret = sl->mac_init(ctx, key, keylen, params);
    depth--;
    return ret;
}

static int w_cipher_init(struct slot *sl, int enc, void *ctx,
    const unsigned char *key, size_t keylen, const unsigned char *iv,
    size_t ivlen, const OSSL_PARAM params[])
{
    int ret;

    if (depth == 0) {
        struct event *ev = new_event(EV_CIPHER_INIT, sl->name);

        read_marks(&ev->m, params);
        if (key != NULL)
            blob_set(&ev->key, key, keylen);
    }
    depth++;
    ret = enc ? sl->c_einit(ctx, key, keylen, iv, ivlen, params)
              : sl->c_dinit(ctx, key, keylen, iv, ivlen, params);
    depth--;
    return ret;
}

static void kex_init_record(struct slot *sl, const OSSL_PARAM params[])
{
    if (depth == 0)
        read_marks(&new_event(EV_KEX_INIT, sl->name)->m, params);
}

static void kex_secret_record(struct slot *sl, const unsigned char *secret,
    size_t len)
{
    if (depth == 0 && secret != NULL)
        blob_set(&new_event(EV_KEX_SECRET, sl->name)->out, secret, len);
}

static int w_kex_init(struct slot *sl, void *ctx, void *key,
    const OSSL_PARAM params[])
{
    kex_init_record(sl, params);
    return sl->kex_init(ctx, key, params);
}

static int w_kex_derive(struct slot *sl, void *ctx, unsigned char *secret,
    size_t *secretlen, size_t outlen)
{
    int ret;

    depth++;
    ret = sl->kex_derive(ctx, secret, secretlen, outlen);
    depth--;
    if (ret > 0)
        kex_secret_record(sl, secret, *secretlen);
    return ret;
}

static int w_kem_einit(struct slot *sl, void *ctx, void *key,
    const OSSL_PARAM params[])
{
    kex_init_record(sl, params);
    return sl->kem_einit(ctx, key, params);
}

static int w_kem_dinit(struct slot *sl, void *ctx, void *key,
    const OSSL_PARAM params[])
{
    kex_init_record(sl, params);
    return sl->kem_dinit(ctx, key, params);
}

static int w_kem_enc(struct slot *sl, void *ctx, unsigned char *ct,
    size_t *ctlen, unsigned char *secret, size_t *secretlen)
{
    int ret;

    depth++;
    ret = sl->kem_enc(ctx, ct, ctlen, secret, secretlen);
    depth--;
    if (ret > 0 && ct != NULL)
        kex_secret_record(sl, secret, *secretlen);
    return ret;
}

static int w_kem_dec(struct slot *sl, void *ctx, unsigned char *secret,
    size_t *secretlen, const unsigned char *ct, size_t ctlen)
{
    int ret;

    depth++;
    ret = sl->kem_dec(ctx, secret, secretlen, ct, ctlen);
    depth--;
    if (ret > 0)
        kex_secret_record(sl, secret, *secretlen);
    return ret;
}

/* One set of entry points per slot, so that each finds its original. */
#define SLOT_FNS(n)                                                         \
static int kdf_derive_##n(void *c, unsigned char *o, size_t ol,             \
    const OSSL_PARAM p[])                                                   \
{ return w_kdf_derive(&slots[n], c, o, ol, p); }                            \
static int mac_init_##n(void *c, const unsigned char *k, size_t kl,         \
    const OSSL_PARAM p[])                                                   \
{ return w_mac_init(&slots[n], c, k, kl, p); }                              \
static int c_einit_##n(void *c, const unsigned char *k, size_t kl,          \
    const unsigned char *iv, size_t ivl, const OSSL_PARAM p[])              \
{ return w_cipher_init(&slots[n], 1, c, k, kl, iv, ivl, p); }               \
static int c_dinit_##n(void *c, const unsigned char *k, size_t kl,          \
    const unsigned char *iv, size_t ivl, const OSSL_PARAM p[])              \
{ return w_cipher_init(&slots[n], 0, c, k, kl, iv, ivl, p); }               \
static int kex_init_##n(void *c, void *k, const OSSL_PARAM p[])             \
{ return w_kex_init(&slots[n], c, k, p); }                                  \
static int kex_derive_##n(void *c, unsigned char *s, size_t *sl, size_t o)  \
{ return w_kex_derive(&slots[n], c, s, sl, o); }                            \
static int kem_einit_##n(void *c, void *k, const OSSL_PARAM p[])            \
{ return w_kem_einit(&slots[n], c, k, p); }                                 \
static int kem_dinit_##n(void *c, void *k, const OSSL_PARAM p[])            \
{ return w_kem_dinit(&slots[n], c, k, p); }                                 \
static int kem_enc_##n(void *c, unsigned char *o, size_t *ol,               \
    unsigned char *s, size_t *sl)                                           \
{ return w_kem_enc(&slots[n], c, o, ol, s, sl); }                           \
static int kem_dec_##n(void *c, unsigned char *o, size_t *ol,               \
    const unsigned char *i, size_t il)                                      \
{ return w_kem_dec(&slots[n], c, o, ol, i, il); }

SLOT_FNS(0) SLOT_FNS(1) SLOT_FNS(2) SLOT_FNS(3) SLOT_FNS(4) SLOT_FNS(5)
SLOT_FNS(6) SLOT_FNS(7) SLOT_FNS(8) SLOT_FNS(9) SLOT_FNS(10) SLOT_FNS(11)
SLOT_FNS(12) SLOT_FNS(13)

typedef void (*fn)(void);
#define SLOT_TAB(n) {                                                       \
    (fn)kdf_derive_##n, (fn)mac_init_##n, (fn)c_einit_##n, (fn)c_dinit_##n, \
    (fn)kex_init_##n, (fn)kex_derive_##n, (fn)kem_einit_##n,                \
    (fn)kem_dinit_##n, (fn)kem_enc_##n, (fn)kem_dec_##n }
enum { F_KDF_DERIVE, F_MAC_INIT, F_C_EINIT, F_C_DINIT, F_KEX_INIT,
       F_KEX_DERIVE, F_KEM_EINIT, F_KEM_DINIT, F_KEM_ENC, F_KEM_DEC, F_N };
static const fn slot_fns[][F_N] = {
    SLOT_TAB(0), SLOT_TAB(1), SLOT_TAB(2), SLOT_TAB(3), SLOT_TAB(4),
    SLOT_TAB(5), SLOT_TAB(6), SLOT_TAB(7), SLOT_TAB(8), SLOT_TAB(9),
    SLOT_TAB(10), SLOT_TAB(11), SLOT_TAB(12), SLOT_TAB(13),
};

/* Replaces dispatch entry |d| by wrapper |w| of slot |n|, keeping the original */
#define WRAP(d, id, type, field, w)                                         \
    if ((d)->function_id == (id)) {                                         \
        sl->field = (type *)(d)->function;                                  \
        (d)->function = slot_fns[n][w];                                     \
    }

static OSSL_PROVIDER *default_prov, *recorder_prov;
static OSSL_ALGORITHM op_algs[OSSL_OP__HIGHEST + 1][NSLOTS + 1];

static int first_name_is(const char *names, const char *name)
{
    size_t len = strlen(name);

    return OPENSSL_strncasecmp(names, name, len) == 0
        && (names[len] == '\0' || names[len] == ':');
}

static int build_slots(void)
{
    size_t n, nop[OSSL_OP__HIGHEST + 1] = { 0 };

    for (n = 0; n < NSLOTS; n++) {
        struct slot *sl = &slots[n];
        int no_cache = 0;
        const OSSL_ALGORITHM *a
            = OSSL_PROVIDER_query_operation(default_prov, sl->op, &no_cache);
        size_t i;

        for (; a != NULL && a->algorithm_names != NULL; a++)
            if (first_name_is(a->algorithm_names, sl->name))
                break;
        if (a == NULL || a->algorithm_names == NULL) {
            fprintf(stderr, "the default provider has no %s\n", sl->name);
            return 0;
        }
        for (i = 0; a->implementation[i].function_id != 0; i++) {
            OSSL_DISPATCH *d = &sl->disp[i];

            if (i + 1 >= sizeof(sl->disp) / sizeof(sl->disp[0]))
                return 0;
            *d = a->implementation[i];
            switch (sl->op) {
            case OSSL_OP_KDF:
                WRAP(d, OSSL_FUNC_KDF_DERIVE, OSSL_FUNC_kdf_derive_fn,
                    kdf_derive, F_KDF_DERIVE);
                break;
            case OSSL_OP_MAC:
                WRAP(d, OSSL_FUNC_MAC_INIT, OSSL_FUNC_mac_init_fn,
                    mac_init, F_MAC_INIT);
                break;
            case OSSL_OP_CIPHER:
                WRAP(d, OSSL_FUNC_CIPHER_ENCRYPT_INIT,
                    OSSL_FUNC_cipher_encrypt_init_fn, c_einit, F_C_EINIT);
                WRAP(d, OSSL_FUNC_CIPHER_DECRYPT_INIT,
                    OSSL_FUNC_cipher_decrypt_init_fn, c_dinit, F_C_DINIT);
                break;
            case OSSL_OP_KEYEXCH:
                WRAP(d, OSSL_FUNC_KEYEXCH_INIT, OSSL_FUNC_keyexch_init_fn,
                    kex_init, F_KEX_INIT);
                WRAP(d, OSSL_FUNC_KEYEXCH_DERIVE,
                    OSSL_FUNC_keyexch_derive_fn, kex_derive, F_KEX_DERIVE);
                break;
            case OSSL_OP_KEM:
                WRAP(d, OSSL_FUNC_KEM_ENCAPSULATE_INIT,
                    OSSL_FUNC_kem_encapsulate_init_fn, kem_einit,
                    F_KEM_EINIT);
                WRAP(d, OSSL_FUNC_KEM_DECAPSULATE_INIT,
                    OSSL_FUNC_kem_decapsulate_init_fn, kem_dinit,
                    F_KEM_DINIT);
                WRAP(d, OSSL_FUNC_KEM_ENCAPSULATE,
                    OSSL_FUNC_kem_encapsulate_fn, kem_enc, F_KEM_ENC);
                WRAP(d, OSSL_FUNC_KEM_DECAPSULATE,
                    OSSL_FUNC_kem_decapsulate_fn, kem_dec, F_KEM_DEC);
                break;
            default:                        /* key managers, DRBG: as is */
                break;
            }
        }
        sl->disp[i].function_id = 0;
        sl->disp[i].function = NULL;
        sl->alg.algorithm_names = a->algorithm_names;
        sl->alg.property_definition = "provider=recorder";
        sl->alg.implementation = sl->disp;
        sl->alg.algorithm_description = a->algorithm_description;
        op_algs[sl->op][nop[sl->op]++] = sl->alg;
    }
    return 1;
}

static const OSSL_ALGORITHM *recorder_query(void *provctx, int op,
    int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    if (op < 0 || op > OSSL_OP__HIGHEST || op_algs[op][0].algorithm_names == NULL)
        return NULL;
    return op_algs[op];
}

static const OSSL_DISPATCH recorder_dispatch[] = {
    { OSSL_FUNC_PROVIDER_QUERY_OPERATION, (fn)recorder_query },
    OSSL_DISPATCH_END
};

/* Runs in the default provider's context: its algorithms expect that. */
static int recorder_init(const OSSL_CORE_HANDLE *handle,
    const OSSL_DISPATCH *in, const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(default_prov);
    *out = recorder_dispatch;
    return *provctx != NULL;
}

/* ---- TLS between two SSL objects ---------------------------------------- */

static EVP_PKEY *cert_key;
static X509 *cert;

/* The server's ticket keys: name, HMAC key, AES key (80 bytes) */
static unsigned char ticket_keys[80];
#define TICKET_HMAC_KEY (ticket_keys + 16)
#define TICKET_AES_KEY  (ticket_keys + 48)

static int make_cert(void)
{
    X509_NAME *name;

    cert_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cert = X509_new();
    if (cert_key == NULL || cert == NULL)
        return 0;
    name = X509_get_subject_name(cert);
    return X509_set_version(cert, X509_VERSION_3)
        && ASN1_INTEGER_set(X509_get_serialNumber(cert), 1)
        && X509_gmtime_adj(X509_getm_notBefore(cert), 0)
        && X509_gmtime_adj(X509_getm_notAfter(cert), 86400)
        && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
               (const unsigned char *)"localhost", -1, -1, 0)
        && X509_set_issuer_name(cert, name)
        && X509_set_pubkey(cert, cert_key)
        && X509_sign(cert, cert_key, EVP_sha256()) > 0;
}

struct tls_case {
    const char *name;
    int         tls12;
    const char *ciphers;        /* TLS 1.3 suites or TLS 1.2 list */
    const char *groups;
    size_t      kb_key, kb_iv;  /* TLS 1.2 key-block layout */
};

static SSL_CTX *server_ctx(const struct tls_case *tc)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, cert_key), 1);
    assert_int_equal(SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys,
                         sizeof(ticket_keys)), 1);
    assert_int_equal(SSL_CTX_set1_groups_list(ctx, tc->groups), 1);
    if (tc->tls12)
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, tc->ciphers), 1);
    else
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, tc->ciphers), 1);
    return ctx;
}

static SSL_CTX *client_ctx(const struct tls_case *tc)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    assert_non_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    assert_int_equal(SSL_CTX_set1_groups_list(ctx, tc->groups), 1);
    if (tc->tls12) {
        assert_int_equal(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION), 1);
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, tc->ciphers), 1);
    } else {
        assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, tc->ciphers), 1);
    }
    return ctx;
}

/*
 * kTLS: a filter BIO that claims to be a kTLS socket.  libssl hands the
 * record keys to the kernel with BIO_set_ktls(), which is
 * BIO_ctrl(BIO_CTRL_SET_KTLS) (internal/bio.h); the fake kernel refuses
 * (returns 0), so that libssl falls back to the software record layer and
 * the connection works either way.  With the series it must never be asked.
 */
#define FAKE_BIO_CTRL_SET_KTLS 72

static int ktls_offers;
static struct blob ktls_info[8];    /* what the kernel was given */

static int fk_write(BIO *b, const char *buf, int len)
{
    int ret;

    BIO_clear_retry_flags(b);
    ret = BIO_write(BIO_next(b), buf, len);
    BIO_copy_next_retry(b);
    return ret;
}

static int fk_read(BIO *b, char *buf, int len)
{
    int ret;

    BIO_clear_retry_flags(b);
    ret = BIO_read(BIO_next(b), buf, len);
    BIO_copy_next_retry(b);
    return ret;
}

static long fk_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    if (cmd == FAKE_BIO_CTRL_SET_KTLS) {
        if (ktls_offers < 8)        /* Linux: a tls12_crypto_info_* */
            blob_set(&ktls_info[ktls_offers], ptr, 56);
        ktls_offers++;
        return 0;
    }
    return BIO_ctrl(BIO_next(b), cmd, num, ptr);
}

static int fk_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO *fake_ktls_bio(BIO *next)
{
    static BIO_METHOD *meth;

    if (meth == NULL) {
        meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER,
            "fake kTLS socket");
        assert_non_null(meth);
        BIO_meth_set_write(meth, fk_write);
        BIO_meth_set_read(meth, fk_read);
        BIO_meth_set_ctrl(meth, fk_ctrl);
        BIO_meth_set_create(meth, fk_create);
    }
    return BIO_push(BIO_new(meth), next);
}

/* A client and a server SSL over a BIO pair (behind fake kTLS sockets) */
static void connect_pair(SSL_CTX *cctx, SSL_CTX *sctx, SSL **c, SSL **s,
    int fake_ktls)
{
    BIO *bc, *bs;

    *c = SSL_new(cctx);
    *s = SSL_new(sctx);
    assert_non_null(*c);
    assert_non_null(*s);
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    if (fake_ktls) {
        bc = fake_ktls_bio(bc);
        bs = fake_ktls_bio(bs);
    }
    SSL_set_bio(*c, bc, bc);
    SSL_set_bio(*s, bs, bs);
    SSL_set_connect_state(*c);
    SSL_set_accept_state(*s);
}

static int step(SSL *ssl, int *done)
{
    int r, e;

    if (*done)
        return 1;
    r = SSL_do_handshake(ssl);
    if (r == 1) {
        *done = 1;
        return 1;
    }
    e = SSL_get_error(ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static void handshake(SSL *c, SSL *s)
{
    int cdone = 0, sdone = 0, i;

    for (i = 0; i < 64 && !(cdone && sdone); i++) {
        if (!step(c, &cdone) || !step(s, &sdone)) {
            ERR_print_errors_fp(stderr);
            fail_msg("handshake failed");
        }
    }
    assert_true(cdone && sdone);
}

/* One application record from |from| to |to| */
static void record(SSL *from, SSL *to, const char *msg)
{
    char buf[256];
    int n = (int)strlen(msg);

    assert_int_equal(SSL_write(from, msg, n), n);
    assert_int_equal(SSL_read(to, buf, sizeof(buf)), n);
    assert_memory_equal(buf, msg, n);
}

static void records(SSL *c, SSL *s)
{
    record(c, s, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    record(s, c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    record(c, s, "second request");
    record(s, c, "second response");
}

static void key_update(SSL *c, SSL *s)
{
    assert_int_equal(SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED), 1);
    record(c, s, "after the key update");
    record(s, c, "and back");
}

static void exporter(SSL *c, SSL *s, const char *label)
{
    unsigned char a[32], b[32];
    static const unsigned char context[] = "context";

    assert_int_equal(SSL_export_keying_material(c, a, sizeof(a), label,
                         strlen(label), context, sizeof(context), 1), 1);
    assert_int_equal(SSL_export_keying_material(s, b, sizeof(b), label,
                         strlen(label), context, sizeof(context), 1), 1);
    assert_memory_equal(a, b, sizeof(a));
}

/* Closes cleanly: a session of a connection that was not shut down is
 * marked not resumable */
static void close_pair(SSL *c, SSL *s)
{
    SSL_shutdown(c);
    SSL_shutdown(s);
    SSL_free(c);
    SSL_free(s);
}

/* ---- the checks ----------------------------------------------------------- */

/* What the checks saw (over one log) */
struct tally {
    int mismatches;
    int kex, kdf, kdf_extract_raw, keyblocks, exporter_iv_secret;
    int cipher_token, mac_token;                /* marked, as they must be */
    int ticket_aes, ticket_hmac, drbg, other_raw_cipher, other_raw_mac;
    int marks_total;                            /* mpktls-* params seen */
};

/* Values produced so far, by class */
struct valset {
    struct blob v[512];
    int         n;
};
static struct valset secrets, record_keys, mac_keys, keyblocks;

static void valset_add(struct valset *vs, const struct blob *b)
{
    if (vs->n < (int)(sizeof(vs->v) / sizeof(vs->v[0])))
        vs->v[vs->n++] = *b;
}

static int valset_has(const struct valset *vs, const struct blob *b)
{
    int i;

    for (i = 0; i < vs->n; i++)
        if (vs->v[i].len == b->len && memcmp(vs->v[i].b, b->b, b->len) == 0)
            return 1;
    return 0;
}

/* |b| is a slice of a key block */
static int in_keyblock(const struct blob *b)
{
    int i;

    for (i = 0; i < keyblocks.n; i++)
        if (b->len > 0
            && memmem(keyblocks.v[i].b, keyblocks.v[i].len, b->b, b->len))
            return 1;
    return 0;
}

static int blob_is(const struct blob *b, const char *s)
{
    return b->present && b->len == strlen(s) && memcmp(b->b, s, b->len) == 0;
}

static const char *expected_class(const struct event *ev)
{
    size_t i;

    if (strcmp(ev->alg, "TLS1-PRF") == 0) {
        for (i = 0; i < sizeof(prf_classes) / sizeof(prf_classes[0]); i++) {
            size_t n = strlen(prf_classes[i].prefix);

            if (ev->seed.len >= n && memcmp(ev->seed.b, prf_classes[i].prefix, n) == 0)
                return prf_classes[i].cls;
        }
        return OUT_CLEAR;
    }
    if (ev->mode != EVP_KDF_HKDF_MODE_EXPAND_ONLY)
        return OUT_SECRET;
    for (i = 0; i < sizeof(tls13_classes) / sizeof(tls13_classes[0]); i++)
        if (blob_is(&ev->label, tls13_classes[i].label)
            && ev->data.present == tls13_classes[i].data)
            return tls13_classes[i].cls;
    return OUT_SECRET;
}

static void describe(const struct event *ev, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s", ev->alg);

    if (ev->kind == EV_KDF && ev->label.present)
        snprintf(buf + n, len - n, " \"%.*s\" -> %zu bytes", (int)ev->label.len,
            (const char *)ev->label.b, ev->out.len);
    else if (ev->kind == EV_KDF && ev->seed.present) {
        size_t l = 0;

        while (l < ev->seed.len && l < 32 && ev->seed.b[l] >= 0x20
            && ev->seed.b[l] < 0x7f)
            l++;
        snprintf(buf + n, len - n, " \"%.*s\" -> %zu bytes", (int)l,
            (const char *)ev->seed.b, ev->out.len);
    }
    else if (ev->kind == EV_KDF)
        snprintf(buf + n, len - n, " extract -> %zu bytes", ev->out.len);
    else if (ev->key.present)
        snprintf(buf + n, len - n, " key %zu bytes", ev->key.len);
}

static void mismatch(struct tally *t, const struct event *ev, const char *fmt,
    ...)
{
    char what[128], msg[256];
    va_list ap;

    t->mismatches++;
    if (t->mismatches > 6)          /* enough to see the pattern */
        return;
    describe(ev, what, sizeof(what));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    print_message("#   %s: %s\n", what, msg);
}

static void check_kdf(struct tally *t, const struct event *ev,
    const struct tls_case *tc)
{
    const char *cls = expected_class(ev);
    int key_token = ev->key.present && valset_has(&secrets, &ev->key);

    t->kdf++;
    if (strcmp(ev->m.out, cls) != 0)
        mismatch(t, ev, "mpktls-out \"%s\", expected \"%s\"", ev->m.out, cls);
    if (ev->m.key_token != key_token)
        mismatch(t, ev, "mpktls-key-token %d, expected %d", ev->m.key_token,
            key_token);
    if (strcmp(ev->alg, "TLS13-KDF") == 0
        && ev->mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
        int salt_token = ev->salt.present && valset_has(&secrets, &ev->salt);

        if (ev->m.salt_token != salt_token)
            mismatch(t, ev, "mpktls-salt-token %d, expected %d",
                ev->m.salt_token, salt_token);
        if (ev->key.present && !key_token)
            t->kdf_extract_raw++;
    } else if (ev->m.salt_token != -1) {
        mismatch(t, ev, "unexpected mpktls-salt-token");
    }
    if (strcmp(cls, OUT_KEYBLOCK) == 0) {
        t->keyblocks++;
        if (ev->m.kb_mac != 0 || ev->m.kb_key != (long)tc->kb_key
            || ev->m.kb_iv != (long)tc->kb_iv)
            mismatch(t, ev, "layout {%ld, %ld, %ld}, expected {0, %zu, %zu}",
                ev->m.kb_mac, ev->m.kb_key, ev->m.kb_iv, tc->kb_key, tc->kb_iv);
        if (2 * (tc->kb_key + tc->kb_iv) != ev->out.len)
            mismatch(t, ev, "key block of %zu bytes", ev->out.len);
    } else if (ev->m.kb_mac != -1 || ev->m.kb_key != -1 || ev->m.kb_iv != -1) {
        mismatch(t, ev, "layout on a derivation that is no key block");
    }
    if (blob_is(&ev->label, "iv") && ev->data.present
        && strcmp(ev->m.out, OUT_SECRET) == 0)
        t->exporter_iv_secret++;

    /* what the output is, for the calls that follow */
    if (strcmp(cls, OUT_SECRET) == 0)
        valset_add(&secrets, &ev->out);
    else if (strcmp(cls, OUT_RECORD_KEY) == 0)
        valset_add(&record_keys, &ev->out);
    else if (strcmp(cls, OUT_MAC_KEY) == 0)
        valset_add(&mac_keys, &ev->out);
    else if (strcmp(cls, OUT_KEYBLOCK) == 0)
        valset_add(&keyblocks, &ev->out);
}

/* A cipher or MAC init: marked iff its key is a derived key */
static void check_init(struct tally *t, const struct event *ev)
{
    int derived;

    if (!ev->key.present) {         /* e.g. the per-record nonce inits */
        if (ev->m.n != 0)
            mismatch(t, ev, "marker without a key");
        return;
    }
    if (ev->kind == EV_CIPHER_INIT)
        derived = valset_has(&record_keys, &ev->key) || in_keyblock(&ev->key);
    else
        derived = valset_has(&mac_keys, &ev->key);
    if (derived) {
        if (ev->m.key_token != 1 || ev->m.n != 1)
            mismatch(t, ev, "key is a token: mpktls-key-token %d (%d markers)",
                ev->m.key_token, ev->m.n);
        else if (ev->kind == EV_CIPHER_INIT)
            t->cipher_token++;
        else
            t->mac_token++;
        return;
    }
    if (ev->m.n != 0)
        mismatch(t, ev, "raw key with %d markers", ev->m.n);
    if (ev->kind == EV_CIPHER_INIT) {
        if (ev->key.len == 32 && memcmp(ev->key.b, TICKET_AES_KEY, 32) == 0)
            t->ticket_aes++;
        else if (strcmp(ev->alg, "AES-256-ECB") == 0
            || strcmp(ev->alg, "AES-256-CTR") == 0)
            t->drbg++;
        else
            t->other_raw_cipher++;
    } else {
        if (ev->key.len == 32 && memcmp(ev->key.b, TICKET_HMAC_KEY, 32) == 0)
            t->ticket_hmac++;
        else
            t->other_raw_mac++;
    }
}

static void check_log(struct tally *t, const struct tls_case *tc)
{
    size_t i;

    memset(t, 0, sizeof(*t));
    for (i = 0; i < nevents; i++) {
        const struct event *ev = &events[i];

        t->marks_total += ev->m.n;
        if (ev->m.unknown != 0)
            mismatch(t, ev, "%d unknown mpktls-* parameters", ev->m.unknown);
        switch (ev->kind) {
        case EV_KEX_INIT:
            t->kex++;
            if (strcmp(ev->m.out, OUT_SECRET) != 0 || ev->m.n != 1)
                mismatch(t, ev, "key exchange: mpktls-out \"%s\" (%d markers)",
                    ev->m.out, ev->m.n);
            break;
        case EV_KEX_SECRET:
            valset_add(&secrets, &ev->out);
            break;
        case EV_KDF:
            check_kdf(t, ev, tc);
            break;
        case EV_CIPHER_INIT:
        case EV_MAC_INIT:
            check_init(t, ev);
            break;
        }
    }
    print_message("# %s: %zu calls, %d markers; key exchanges %d, KDF %d, "
        "token keys: cipher %d MAC %d; raw keys: ticket AES %d HMAC %d, "
        "DRBG %d, other cipher %d MAC %d; mismatches %d\n",
        tc->name, nevents, t->marks_total, t->kex, t->kdf, t->cipher_token,
        t->mac_token, t->ticket_aes, t->ticket_hmac, t->drbg,
        t->other_raw_cipher, t->other_raw_mac, t->mismatches);
}

static void reset_log(void)
{
    nevents = 0;
    secrets.n = record_keys.n = mac_keys.n = keyblocks.n = 0;
}

/* Assertions common to all cases */
static void assert_log(const struct tally *t, int kex, int cipher_token,
    int mac_token)
{
    assert_int_equal(t->mismatches, 0);
    assert_true(t->kex >= kex);
    assert_true(t->kdf > 0);
    assert_true(t->cipher_token >= cipher_token);
    assert_true(t->mac_token >= mac_token);
    assert_true(t->drbg > 0);                  /* the DRBG was seen, unmarked */
}

/* ---- the cases ------------------------------------------------------------ */

static const struct tls_case tls13_aes128 = {
    "TLS 1.3 X25519 AES-128-GCM", 0, "TLS_AES_128_GCM_SHA256", "X25519", 0, 0 };
static const struct tls_case tls13_mlkem_aes256 = {
    "TLS 1.3 X25519MLKEM768 AES-256-GCM", 0, "TLS_AES_256_GCM_SHA384",
    "X25519MLKEM768", 0, 0 };
static const struct tls_case tls13_chacha = {
    "TLS 1.3 X25519 ChaCha20-Poly1305", 0, "TLS_CHACHA20_POLY1305_SHA256",
    "X25519", 0, 0 };
static const struct tls_case tls12_aes128 = {
    "TLS 1.2 ECDHE AES-128-GCM", 1, "ECDHE-ECDSA-AES128-GCM-SHA256", "X25519:P-256", 16, 4 };
static const struct tls_case tls12_aes256 = {
    "TLS 1.2 ECDHE AES-256-GCM", 1, "ECDHE-ECDSA-AES256-GCM-SHA384", "X25519:P-256", 32, 4 };
static const struct tls_case tls12_chacha = {
    "TLS 1.2 ECDHE ChaCha20-Poly1305", 1, "ECDHE-ECDSA-CHACHA20-POLY1305",
    "X25519:P-256", 32, 12 };

/* A full handshake, records, a key update (1.3) and an exporter */
static void full_handshake(const struct tls_case *tc)
{
    SSL_CTX *cctx = client_ctx(tc), *sctx = server_ctx(tc);
    SSL *c, *s;
    struct tally t;

    reset_log();
    connect_pair(cctx, sctx, &c, &s, 0);
    handshake(c, s);
    assert_int_equal(SSL_version(c), tc->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    records(c, s);
    if (!tc->tls12)
        key_update(c, s);
    exporter(c, s, tc->tls12 ? "EXPERIMENTAL-mpktls" : "iv");
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    check_log(&t, tc);
    /* two key exchanges (one per side); 1.3: 2 + 2 + 2 (key update) per
     * side, 1.2: 2 per side; Finished: 2 per side in 1.3 */
    assert_log(&t, 2, tc->tls12 ? 4 : 12, tc->tls12 ? 0 : 4);
    assert_true(t.ticket_aes > 0 && t.ticket_hmac > 0);
    if (tc->tls12)
        assert_int_equal(t.keyblocks, 2);
    else
        assert_int_equal(t.exporter_iv_secret, 2);
}

static void tls13_x25519_aes128gcm(void **state)
{
    (void)state;
    full_handshake(&tls13_aes128);
}

static void tls13_x25519mlkem768_aes256gcm(void **state)
{
    (void)state;
    full_handshake(&tls13_mlkem_aes256);
}

static void tls13_x25519_chacha20(void **state)
{
    (void)state;
    full_handshake(&tls13_chacha);
}

static void tls12_ecdhe_aes128gcm(void **state)
{
    (void)state;
    full_handshake(&tls12_aes128);
}

static void tls12_ecdhe_aes256gcm(void **state)
{
    (void)state;
    full_handshake(&tls12_aes256);
}

static void tls12_ecdhe_chacha20(void **state)
{
    (void)state;
    full_handshake(&tls12_chacha);
}

/* TLS 1.3 resumption: the resumption PSK is a token, the binder key too */
static void tls13_resumption(void **state)
{
    const struct tls_case *tc = &tls13_aes128;
    SSL_CTX *cctx = client_ctx(tc), *sctx = server_ctx(tc);
    SSL *c, *s;
    SSL_SESSION *sess;
    struct tally t;

    (void)state;
    reset_log();
    connect_pair(cctx, sctx, &c, &s, 0);
    handshake(c, s);
    records(c, s);                      /* the client reads the tickets */
    sess = SSL_get1_session(c);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    close_pair(c, s);

    connect_pair(cctx, sctx, &c, &s, 0);
    assert_int_equal(SSL_set_session(c, sess), 1);
    handshake(c, s);
    assert_int_equal(SSL_session_reused(c), 1);
    records(c, s);
    close_pair(c, s);
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    check_log(&t, tc);
    /* second handshake: binder on both sides, plus the Finished MACs */
    assert_log(&t, 4, 16, 10);
    assert_true(t.ticket_aes >= 2 && t.ticket_hmac >= 2);  /* made, opened */
    assert_int_equal(t.kdf_extract_raw, 0);
}

/* An external PSK is a raw key: the early secret's extract says so */
static const unsigned char ext_psk[32] = "an external PSK of 32 bytes....";
static const unsigned char ext_psk_id[] = "mpktls-test-psk";
static SSL_SESSION *ext_psk_sess;

static int use_psk_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
    size_t *idlen, SSL_SESSION **sess)
{
    (void)ssl;
    (void)md;
    SSL_SESSION_up_ref(ext_psk_sess);
    *sess = ext_psk_sess;
    *id = ext_psk_id;
    *idlen = sizeof(ext_psk_id) - 1;
    return 1;
}

static int find_psk_cb(SSL *ssl, const unsigned char *id, size_t idlen,
    SSL_SESSION **sess)
{
    (void)ssl;
    if (idlen != sizeof(ext_psk_id) - 1 || memcmp(id, ext_psk_id, idlen) != 0) {
        *sess = NULL;
        return 1;
    }
    SSL_SESSION_up_ref(ext_psk_sess);
    *sess = ext_psk_sess;
    return 1;
}

static void tls13_external_psk(void **state)
{
    const struct tls_case *tc = &tls13_aes128;
    SSL_CTX *cctx = client_ctx(tc), *sctx = server_ctx(tc);
    SSL *c, *s;
    struct tally t;
    static const unsigned char aes128gcm[] = { 0x13, 0x01 };

    (void)state;
    reset_log();
    connect_pair(cctx, sctx, &c, &s, 0);
    ext_psk_sess = SSL_SESSION_new();
    assert_non_null(ext_psk_sess);
    assert_int_equal(SSL_SESSION_set1_master_key(ext_psk_sess, ext_psk,
                         sizeof(ext_psk)), 1);
    assert_int_equal(SSL_SESSION_set_cipher(ext_psk_sess,
                         SSL_CIPHER_find(c, aes128gcm)), 1);
    assert_int_equal(SSL_SESSION_set_protocol_version(ext_psk_sess,
                         TLS1_3_VERSION), 1);
    SSL_set_psk_use_session_callback(c, use_psk_cb);
    SSL_set_psk_find_session_callback(s, find_psk_cb);
    handshake(c, s);
    assert_int_equal(SSL_session_reused(c), 1);
    records(c, s);
    close_pair(c, s);
    SSL_SESSION_free(ext_psk_sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    check_log(&t, tc);
    assert_log(&t, 2, 8, 6);
    assert_true(t.kdf_extract_raw >= 2);   /* client and server early secret */
}

/* A stateless HelloRetryRequest: the cookie's HMAC key is raw */
static int cookie_gen_cb(SSL *ssl, unsigned char *cookie, size_t *len)
{
    (void)ssl;
    memcpy(cookie, "cookie", 6);
    *len = 6;
    return 1;
}

static int cookie_verify_cb(SSL *ssl, const unsigned char *cookie, size_t len)
{
    (void)ssl;
    return len == 6 && memcmp(cookie, "cookie", 6) == 0;
}

static void tls13_stateless_cookie(void **state)
{
    const struct tls_case *tc = &tls13_aes128;
    SSL_CTX *cctx = client_ctx(tc), *sctx = server_ctx(tc);
    SSL *c, *s;
    struct tally t;

    (void)state;
    reset_log();
    SSL_CTX_clear_options(cctx, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
    SSL_CTX_set_stateless_cookie_generate_cb(sctx, cookie_gen_cb);
    SSL_CTX_set_stateless_cookie_verify_cb(sctx, cookie_verify_cb);
    connect_pair(cctx, sctx, &c, &s, 0);
    assert_int_equal(SSL_connect(c), -1);          /* ClientHello */
    assert_int_equal(SSL_stateless(s), 0);         /* HRR with a cookie */
    assert_int_equal(SSL_connect(c), -1);          /* ClientHello again */
    assert_int_equal(SSL_stateless(s), 1);         /* cookie verified */
    handshake(c, s);
    records(c, s);
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    check_log(&t, tc);
    assert_log(&t, 2, 8, 4);
    assert_true(t.other_raw_mac >= 2);             /* cookie made, checked */
}

static void ktls_case(const struct tls_case *tc)
{
    SSL_CTX *cctx = client_ctx(tc), *sctx = server_ctx(tc);
    SSL *c, *s;
    struct tally t;
    int i, j, with_key = 0;

    reset_log();
    ktls_offers = 0;
    SSL_CTX_set_options(cctx, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_options(sctx, SSL_OP_ENABLE_KTLS);
    connect_pair(cctx, sctx, &c, &s, 1);
    handshake(c, s);
    records(c, s);
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    check_log(&t, tc);
    /* the control: what the kernel would have been given */
    for (i = 0; i < ktls_offers && i < 8; i++) {
        const struct blob *in = &ktls_info[i];
        int found = 0;

        for (j = 0; j < record_keys.n; j++)
            found |= memmem(in->b, in->len, record_keys.v[j].b,
                         record_keys.v[j].len) != NULL;
        for (j = 0; j < keyblocks.n; j++)       /* client, server key */
            found |= memmem(in->b, in->len, keyblocks.v[j].b, tc->kb_key)
                    != NULL
                || memmem(in->b, in->len, keyblocks.v[j].b + tc->kb_key,
                       tc->kb_key) != NULL;
        with_key += found;
    }
    print_message("# %s: kTLS asked for %d times, %d times with a record "
        "key\n", tc->name, ktls_offers, with_key);
    assert_int_equal(ktls_offers, 0);
    assert_int_equal(t.mismatches, 0);
}

static void tls13_ktls_refused(void **state)
{
    (void)state;
    ktls_case(&tls13_aes128);
}

static void tls12_ktls_refused(void **state)
{
    (void)state;
    ktls_case(&tls12_aes256);
}

/* ---- main ------------------------------------------------------------------ */

static int setup_recorder(void)
{
    default_prov = OSSL_PROVIDER_load(NULL, "default");
    if (default_prov == NULL || !build_slots()
        || !OSSL_PROVIDER_add_builtin(NULL, "recorder", recorder_init)
        || (recorder_prov = OSSL_PROVIDER_load(NULL, "recorder")) == NULL
        || !EVP_set_default_properties(NULL, "?provider=recorder"))
        return 0;
    /* before anything else uses the DRBG: it is to use the recorder's AES */
    return make_cert() && RAND_bytes(ticket_keys, sizeof(ticket_keys)) == 1;
}

int main(void)
{
    int failed;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls13_x25519_aes128gcm),
        cmocka_unit_test(tls13_x25519mlkem768_aes256gcm),
        cmocka_unit_test(tls13_x25519_chacha20),
        cmocka_unit_test(tls13_resumption),
        cmocka_unit_test(tls13_external_psk),
        cmocka_unit_test(tls13_stateless_cookie),
        cmocka_unit_test(tls12_ecdhe_aes128gcm),
        cmocka_unit_test(tls12_ecdhe_aes256gcm),
        cmocka_unit_test(tls12_ecdhe_chacha20),
        cmocka_unit_test(tls13_ktls_refused),
        cmocka_unit_test(tls12_ktls_refused),
    };

    trace = getenv("TEST_SEALING_TRACE") != NULL;
    if (!setup_recorder()) {
        ERR_print_errors_fp(stderr);
        fprintf(stderr, "cannot set up the recording provider\n");
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    X509_free(cert);
    EVP_PKEY_free(cert_key);
    OSSL_PROVIDER_unload(recorder_prov);
    OSSL_PROVIDER_unload(default_prov);
    free(events);
    return failed;
}
