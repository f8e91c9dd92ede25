/*
 * The keystore provider (openssl-patch/provider/), built in, in TLS 1.3
 * handshakes: an MPK test (the provider creates the keystore).
 *
 * Linked statically against the patched libssl/libcrypto, with
 * libkeystore.so (whose own libcrypto copy is hidden) and the provider
 * (libkeystore_provider.a).  The provider is registered and preferred in
 * the default library context (EVP_set_default_properties(NULL,
 * "?provider=keystore")) before any SSL_CTX exists; the server's SSL_CTX
 * lives there.  The client's SSL_CTX lives in a library context of its
 * own that has only the default provider: an independent peer that
 * computes the real secrets.  Client and server talk over a BIO pair.
 *
 * For TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
 * TLS_CHACHA20_POLY1305_SHA256, each with X25519MLKEM768 and X25519:
 *   1. the handshake and application data both ways succeed (and the
 *      exporter, whose output is public, agrees on both sides);
 *   2. the secrets the server's libssl holds in U (its keylog lines and
 *      its session's master key, the resumption PSK) differ from the
 *      client's, which are the real ones: the server only ever had tokens.
 *      Positive control: the same handshake without the provider
 *      preferred (default properties "" while the server's SSL_CTX is
 *      made and used) gives the server exactly the client's secrets, and
 *      crosses no gate;
 *   3. steady state: one gate crossing per application record, in each
 *      direction (ks_stats() around N records); the crossings of the whole
 *      handshake are printed;
 *   4. a record with one byte flipped on its way to the server fails the
 *      server's read cleanly (bad_record_mac, the client gets the alert),
 *      and the keystore keeps working.
 * Also: the fetches land on the provider; unmarked calls (raw-key HMAC,
 * TLS13-KDF, AES-GCM) give the default provider's results without a
 * crossing; resumption (resumption PSK token, binder with a MAC-key
 * token); a key update; both sides on the provider (the client's key
 * generation and decapsulation/derive in T).
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "../../openssl-patch/provider/ks_provider.h"

#if OPENSSL_VERSION_MAJOR != 3 || OPENSSL_VERSION_MINOR != 5
#error "test_provider needs the pinned OpenSSL 3.5 (patched libssl)"
#endif

static OSSL_PROVIDER *default_prov, *ks_prov, *client_default;
static OSSL_LIB_CTX *client_lib;        /* the peer: default provider only */
static EVP_PKEY *cert_key;
static X509 *cert;
static unsigned char ticket_keys[80];

/* ---- the keystore's crossing counter ------------------------------------ */

/*
 * The provider's gate calls, by operation: this definition of
 * ks_gate_call() is the one the provider (a static archive) is linked to;
 * it counts and calls libkeystore's.  (libkeystore's own calls, ks_stats,
 * are bound inside the library and do not come here.)  The crossings
 * themselves are counted by T (ks_stats); the two must agree.
 */
static uint64_t op_calls[KS_OP_COUNT];

long
ks_gate_call(unsigned op, void *args)
{
    static long (*real)(unsigned, void *);

    if (real == NULL) {
        real = (long (*)(unsigned, void *))dlsym(RTLD_NEXT, "ks_gate_call");
        if (real == NULL)
            abort();
    }
    if (op < KS_OP_COUNT)
        op_calls[op]++;
    return real(op, args);
}

struct opsnap {
    uint64_t calls[KS_OP_COUNT];
};

static void
ops_snap(struct opsnap *o)
{
    memcpy(o->calls, op_calls, sizeof(op_calls));
}

/* What the provider called since |o|, as text in buf; the total in *total */
static const char *
ops_since(const struct opsnap *o, uint64_t *total, char buf[256])
{
    static const char *const names[KS_OP_COUNT] = {
        [KS_OP_FREE] = "FREE", [KS_OP_AEAD_NEW] = "AEAD_NEW",
        [KS_OP_AEAD_RECORD] = "AEAD_RECORD", [KS_OP_KDF] = "KDF",
        [KS_OP_MAC] = "MAC", [KS_OP_KEX_KEYGEN] = "KEX_KEYGEN",
        [KS_OP_KEX_DERIVE] = "KEX_DERIVE", [KS_OP_KEM_ENCAP] = "KEM_ENCAP",
        [KS_OP_KEM_DECAP] = "KEM_DECAP",
    };
    size_t n = 0, op;

    buf[0] = '\0';
    *total = 0;
    for (op = 0; op < KS_OP_COUNT; op++) {
        uint64_t d = op_calls[op] - o->calls[op];

        if (d == 0)
            continue;
        *total += d;
        n += (size_t)snprintf(buf + n, 256 - n, "%s%s %llu",
            n ? ", " : "", names[op] ? names[op] : "?",
            (unsigned long long)d);
        if (n >= 256)
            break;
    }
    return buf;
}

/* Crossings so far, not counting this query's own crossing. */
static uint64_t
crossings(void)
{
    static uint64_t queries;
    struct ks_stats st;

    assert_int_equal(ks_stats(&st), 0);
    queries++;
    return st.gate_crossings - queries;
}

/* ---- keylog: what each side's libssl holds ------------------------------ */

#define KL_MAX 16

struct keylog {
    int   n;
    char  label[KL_MAX][48];
    char  secret[KL_MAX][2 * 64 + 1];
};
static struct keylog kl_client, kl_server;

static void
keylog_add(struct keylog *kl, const char *line)
{
    char label[48], random[2 * 32 + 1], secret[2 * 64 + 1];

    if (kl->n < KL_MAX
        && sscanf(line, "%47s %64s %128s", label, random, secret) == 3)
    {
        strcpy(kl->label[kl->n], label);
        strcpy(kl->secret[kl->n], secret);
        kl->n++;
    }
}

static void
keylog_client_cb(const SSL *ssl, const char *line)
{
    (void)ssl;
    keylog_add(&kl_client, line);
}

static void
keylog_server_cb(const SSL *ssl, const char *line)
{
    (void)ssl;
    keylog_add(&kl_server, line);
}

static const char *
keylog_get(const struct keylog *kl, const char *label)
{
    int i;

    for (i = kl->n - 1; i >= 0; i--)
        if (strcmp(kl->label[i], label) == 0)
            return kl->secret[i];
    return NULL;
}

static const char *const tls13_labels[] = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET",
};
#define NLABELS (sizeof(tls13_labels) / sizeof(tls13_labels[0]))

/* ---- TLS between two SSL objects ----------------------------------------- */

static int
make_cert(void)
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
    const char *suite;
    const char *group;
};

/* The server: in the default library context, where the keystore provider
 * is preferred (but not in the controls, see not_preferred()). */
static SSL_CTX *
server_ctx(const struct tls_case *tc)
{
    SSL_CTX *ctx = SSL_CTX_new_ex(NULL, NULL, TLS_server_method());

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, cert_key), 1);
    assert_int_equal(SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys,
                         sizeof(ticket_keys)), 1);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    assert_int_equal(SSL_CTX_set1_groups_list(ctx, tc->group), 1);
    assert_int_equal(SSL_CTX_set_ciphersuites(ctx, tc->suite), 1);
    SSL_CTX_set_keylog_callback(ctx, keylog_server_cb);
    return ctx;
}

/* The client: its own library context (default provider only), or with
 * on_keystore the default library context too. */
static SSL_CTX *
client_ctx(const struct tls_case *tc, int on_keystore)
{
    SSL_CTX *ctx = SSL_CTX_new_ex(on_keystore ? NULL : client_lib, NULL,
        TLS_client_method());

    assert_non_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    assert_int_equal(SSL_CTX_set1_groups_list(ctx, tc->group), 1);
    assert_int_equal(SSL_CTX_set_ciphersuites(ctx, tc->suite), 1);
    SSL_CTX_set_keylog_callback(ctx, keylog_client_cb);
    return ctx;
}

/*
 * A filter BIO in front of the server's end of the pair that can flip one
 * byte of what the server reads: tamper_at = n flips the n-th byte read
 * from now on (0: off).
 */
static long tamper_at;
static int tampered;

static int
tf_write(BIO *b, const char *buf, int len)
{
    int ret;

    BIO_clear_retry_flags(b);
    ret = BIO_write(BIO_next(b), buf, len);
    BIO_copy_next_retry(b);
    return ret;
}

static int
tf_read(BIO *b, char *buf, int len)
{
    int ret;

    BIO_clear_retry_flags(b);
    ret = BIO_read(BIO_next(b), buf, len);
    BIO_copy_next_retry(b);
    if (ret > 0 && tamper_at > 0) {
        if (tamper_at <= ret) {
            buf[tamper_at - 1] ^= 0x01;
            tamper_at = 0;
            tampered++;
        } else {
            tamper_at -= ret;
        }
    }
    return ret;
}

static long
tf_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    return BIO_ctrl(BIO_next(b), cmd, num, ptr);
}

static int
tf_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO *
tamper_bio(BIO *next)
{
    static BIO_METHOD *meth;

    if (meth == NULL) {
        meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tamper");
        assert_non_null(meth);
        BIO_meth_set_write(meth, tf_write);
        BIO_meth_set_read(meth, tf_read);
        BIO_meth_set_ctrl(meth, tf_ctrl);
        BIO_meth_set_create(meth, tf_create);
    }
    return BIO_push(BIO_new(meth), next);
}

static void
connect_pair(SSL_CTX *cctx, SSL_CTX *sctx, SSL **c, SSL **s)
{
    BIO *bc, *bs;

    *c = SSL_new(cctx);
    *s = SSL_new(sctx);
    assert_non_null(*c);
    assert_non_null(*s);
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    bs = tamper_bio(bs);
    SSL_set_bio(*c, bc, bc);
    SSL_set_bio(*s, bs, bs);
    SSL_set_connect_state(*c);
    SSL_set_accept_state(*s);
    kl_client.n = kl_server.n = 0;
}

static int
step(SSL *ssl, int *done)
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

static void
handshake(SSL *c, SSL *s)
{
    int cdone = 0, sdone = 0, i;

    for (i = 0; i < 64 && !(cdone && sdone); i++) {
        if (!step(c, &cdone) || !step(s, &sdone)) {
            ERR_print_errors_fp(stderr);
            fail_msg("handshake failed");
        }
    }
    assert_true(cdone && sdone);
    assert_int_equal(SSL_version(s), TLS1_3_VERSION);
}

/* One application record of len bytes from |from| to |to| */
static void
record_n(SSL *from, SSL *to, size_t len)
{
    static unsigned char out[16384], in[16384];
    size_t got = 0;
    int r;

    assert_true(len > 0 && len <= sizeof(out));
    out[0] = (unsigned char)len;
    memset(out + 1, 'a' + (int)(len % 26), len - 1);
    assert_int_equal(SSL_write(from, out, (int)len), (int)len);
    while (got < len) {
        r = SSL_read(to, in + got, (int)(len - got));
        if (r <= 0) {
            ERR_print_errors_fp(stderr);
            fail_msg("SSL_read: %d", SSL_get_error(to, r));
        }
        got += (size_t)r;
    }
    assert_memory_equal(in, out, len);
}

static void
records(SSL *c, SSL *s)
{
    record_n(c, s, 40);         /* a request */
    record_n(s, c, 1200);       /* the response; the client reads tickets */
    record_n(c, s, 1);
    record_n(s, c, 16384);      /* a full record */
}

static void
close_pair(SSL *c, SSL *s)
{
    SSL_shutdown(c);
    SSL_shutdown(s);
    SSL_free(c);
    SSL_free(s);
}

/* ---- the checks ------------------------------------------------------------ */

/* How many of the TLS 1.3 secrets the two sides logged are equal */
static int
secrets_equal(void)
{
    size_t i;
    int equal = 0;

    for (i = 0; i < NLABELS; i++) {
        const char *cs = keylog_get(&kl_client, tls13_labels[i]);
        const char *ss = keylog_get(&kl_server, tls13_labels[i]);

        assert_non_null(cs);
        assert_non_null(ss);
        assert_int_equal(strlen(cs), strlen(ss));   /* tokens keep lengths */
        equal += strcmp(cs, ss) == 0;
    }
    return equal;
}

/* The session master keys (TLS 1.3: the resumption PSK of the last
 * ticket): 1 if equal */
static int
master_keys_equal(SSL *c, SSL *s)
{
    unsigned char mc[64], ms[64];
    size_t nc, ns;

    nc = SSL_SESSION_get_master_key(SSL_get_session(c), mc, sizeof(mc));
    ns = SSL_SESSION_get_master_key(SSL_get_session(s), ms, sizeof(ms));
    assert_true(nc > 0);
    assert_int_equal(nc, ns);
    return memcmp(mc, ms, nc) == 0;
}

static void
exporters_agree(SSL *c, SSL *s)
{
    unsigned char a[32], b[32];
    static const char label[] = "EXPERIMENTAL-mpktls";

    assert_int_equal(SSL_export_keying_material(c, a, sizeof(a), label,
                         strlen(label), (const unsigned char *)"ctx", 3, 1), 1);
    assert_int_equal(SSL_export_keying_material(s, b, sizeof(b), label,
                         strlen(label), (const unsigned char *)"ctx", 3, 1), 1);
    assert_memory_equal(a, b, sizeof(a));
}

#define STEADY_RECORDS 64

/* Crossings of n records from |from| to |to|: every one of them is one
 * record operation (or none at all: the controls) */
static uint64_t
steady(SSL *from, SSL *to, int n)
{
    uint64_t before = crossings(), total, rec = op_calls[KS_OP_AEAD_RECORD];
    struct opsnap o;
    char buf[256];
    int i;

    ops_snap(&o);
    for (i = 0; i < n; i++)
        record_n(from, to, 1 + (size_t)(i * 257) % 16384);
    ops_since(&o, &total, buf);
    assert_int_equal(total, op_calls[KS_OP_AEAD_RECORD] - rec);
    assert_int_equal(total, crossings() - before);
    return total;
}

/* One TLS 1.3 case; control = 1: the server does not use the keystore. */
static void
tls13_case(const struct tls_case *tc, int control)
{
    SSL_CTX *cctx = client_ctx(tc, 0), *sctx = server_ctx(tc);
    SSL *c, *s;
    uint64_t t0, hs, s2c, c2s, total;
    struct opsnap o;
    const char *ops;
    char buf[256];
    int equal;

    connect_pair(cctx, sctx, &c, &s);
    ops_snap(&o);
    t0 = crossings();
    handshake(c, s);
    hs = crossings() - t0;
    ops = ops_since(&o, &total, buf);
    assert_int_equal(total, hs);                /* all of them the provider's */
    records(c, s);
    exporters_agree(c, s);

    /* 2: what the server's libssl holds */
    equal = secrets_equal();
    if (control) {
        assert_int_equal(equal, NLABELS);
        assert_true(master_keys_equal(c, s));
    } else {
        assert_int_equal(equal, 0);
        assert_false(master_keys_equal(c, s));
    }

    /* 3: steady state */
    s2c = steady(s, c, STEADY_RECORDS);
    c2s = steady(c, s, STEADY_RECORDS);
    print_message("# %s%s: handshake %llu crossings%s%s%s; %d records "
        "server->client %llu, client->server %llu crossings; server secrets "
        "%s\n", tc->name, control ? " (control: provider not preferred)" : "",
        (unsigned long long)hs, hs ? " (" : "", ops, hs ? ")" : "",
        STEADY_RECORDS, (unsigned long long)s2c, (unsigned long long)c2s,
        equal == (int)NLABELS ? "= client's" : "!= client's (tokens)");
    if (control) {
        assert_int_equal(hs, 0);
        assert_int_equal(s2c, 0);
        assert_int_equal(c2s, 0);
    } else {
        assert_true(hs > 0);
        assert_int_equal(s2c, STEADY_RECORDS);
        assert_int_equal(c2s, STEADY_RECORDS);
    }
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    assert_int_equal(ERR_peek_error(), 0);
}

static const struct tls_case cases[] = {
    { "AES-128-GCM X25519MLKEM768", "TLS_AES_128_GCM_SHA256", "X25519MLKEM768" },
    { "AES-256-GCM X25519MLKEM768", "TLS_AES_256_GCM_SHA384", "X25519MLKEM768" },
    { "ChaCha20 X25519MLKEM768", "TLS_CHACHA20_POLY1305_SHA256", "X25519MLKEM768" },
    { "AES-128-GCM X25519", "TLS_AES_128_GCM_SHA256", "X25519" },
    { "AES-256-GCM X25519", "TLS_AES_256_GCM_SHA384", "X25519" },
    { "ChaCha20 X25519", "TLS_CHACHA20_POLY1305_SHA256", "X25519" },
};

static void
tls13_keystore(void **state)
{
    tls13_case(*state, 0);
}

static void
tls13_control(void **state)
{
    tls13_case(*state, 1);
}

/*
 * The controls run without the provider preferred.  Not with a server
 * SSL_CTX that asks for "provider=default": the default provider's
 * X25519MLKEM768 makes its X25519 half with EVP_PKEY_Q_keygen(libctx,
 * NULL, "X25519"), which the default properties send to the keystore's
 * X25519 (a key in T), and then derives unmarked: refused.  So while the
 * keystore is preferred, X25519MLKEM768 is the keystore's or nothing.
 */
static int
not_preferred(void **state)
{
    (void)state;
    return EVP_set_default_properties(NULL, "") ? 0 : -1;
}

static int
preferred_again(void **state)
{
    (void)state;
    return EVP_set_default_properties(NULL, "?provider=" KS_PROVIDER_NAME)
        ? 0 : -1;
}

/* ---- the provider, unmarked calls ------------------------------------------ */

static const char *
prov_of(const OSSL_PROVIDER *p)
{
    return p == NULL ? "(none)" : OSSL_PROVIDER_get0_name(p);
}

/* Fetches with the default properties land on the keystore provider */
static void
fetches(void **state)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_CIPHER *c1 = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    EVP_CIPHER *c2 = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_CIPHER *c3 = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    EVP_KEYMGMT *k1 = EVP_KEYMGMT_fetch(NULL, "X25519", NULL);
    EVP_KEYMGMT *k2 = EVP_KEYMGMT_fetch(NULL, "X25519MLKEM768", NULL);
    EVP_KEYEXCH *x = EVP_KEYEXCH_fetch(NULL, "X25519", NULL);
    EVP_KEM *kem = EVP_KEM_fetch(NULL, "X25519MLKEM768", NULL);
    EVP_CIPHER *cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    struct ks_stats st;

    (void)state;
    assert_string_equal(prov_of(EVP_KDF_get0_provider(kdf)), "keystore");
    assert_string_equal(prov_of(EVP_MAC_get0_provider(mac)), "keystore");
    assert_string_equal(prov_of(EVP_CIPHER_get0_provider(c1)), "keystore");
    assert_string_equal(prov_of(EVP_CIPHER_get0_provider(c2)), "keystore");
    assert_string_equal(prov_of(EVP_CIPHER_get0_provider(c3)), "keystore");
    assert_string_equal(prov_of(EVP_KEYMGMT_get0_provider(k1)), "keystore");
    assert_string_equal(prov_of(EVP_KEYMGMT_get0_provider(k2)), "keystore");
    assert_string_equal(prov_of(EVP_KEYEXCH_get0_provider(x)), "keystore");
    assert_string_equal(prov_of(EVP_KEM_get0_provider(kem)), "keystore");
    /* what it does not implement stays the default's */
    assert_string_equal(prov_of(EVP_CIPHER_get0_provider(cbc)), "default");
    /* the cipher constants are the default's */
    assert_int_equal(EVP_CIPHER_get_key_length(c1), 16);
    assert_int_equal(EVP_CIPHER_get_iv_length(c1), 12);
    assert_int_equal(EVP_CIPHER_get_mode(c1), EVP_CIPH_GCM_MODE);
    assert_true(EVP_CIPHER_get_flags(c3) & EVP_CIPH_FLAG_AEAD_CIPHER);
    /* the provider created the keystore (ks_stats works) */
    assert_int_equal(ks_stats(&st), 0);
    assert_true(OSSL_PROVIDER_available(NULL, KS_PROVIDER_NAME));
    EVP_KDF_free(kdf);
    EVP_MAC_free(mac);
    EVP_CIPHER_free(c1);
    EVP_CIPHER_free(c2);
    EVP_CIPHER_free(c3);
    EVP_CIPHER_free(cbc);
    EVP_KEYMGMT_free(k1);
    EVP_KEYMGMT_free(k2);
    EVP_KEYEXCH_free(x);
    EVP_KEM_free(kem);
}

static void
aes_gcm(OSSL_LIB_CTX *lib, const char *name, const unsigned char *key,
    unsigned char *out, unsigned char *tag, const char **prov)
{
    static const unsigned char iv[12] = "twelve bytes";
    static const unsigned char msg[] = "raw-key AEAD, not a record";
    EVP_CIPHER *ciph = EVP_CIPHER_fetch(lib, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, f;

    assert_non_null(ciph);
    *prov = prov_of(EVP_CIPHER_get0_provider(ciph));
    assert_int_equal(EVP_EncryptInit_ex2(ctx, ciph, key, iv, NULL), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)"aad", 3), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out, &n, msg, sizeof(msg)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + n, &f), 1);
    assert_int_equal(n + f, (int)sizeof(msg));
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag), 1);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(ciph);
}

static void
tls13_expand(OSSL_LIB_CTX *lib, unsigned char *out, const char **prov)
{
    static const unsigned char secret[32] = "a raw secret, not a token......";
    EVP_KDF *kdf = EVP_KDF_fetch(lib, "TLS13-KDF", NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA2-256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, 32),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_LABEL, "quic key", 8),
        OSSL_PARAM_END
    };

    assert_non_null(ctx);
    *prov = prov_of(EVP_KDF_get0_provider(kdf));
    assert_int_equal(EVP_KDF_derive(ctx, out, 16, p), 1);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
}

/* Unmarked calls: the default provider's results, no crossing */
static void
unmarked_forwarded(void **state)
{
    static const unsigned char key[32] = "a raw ticket or cookie key.....";
    static const unsigned char data[] = "session ticket";
    unsigned char m1[32], m2[32], c1[64], c2[64], t1[16], t2[16];
    unsigned char k1[16], k2[16];
    size_t l1 = 0, l2 = 0;
    const char *p1, *p2;
    const char *const names[] = { "AES-128-GCM", "AES-256-GCM",
                                  "ChaCha20-Poly1305" };
    uint64_t before;
    size_t i;
    EVP_MAC *mac;

    (void)state;
    before = crossings();
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA2-256", NULL, key, 32,
                        data, sizeof(data), m1, sizeof(m1), &l1));
    assert_non_null(EVP_Q_mac(client_lib, "HMAC", NULL, "SHA2-256", NULL, key,
                        32, data, sizeof(data), m2, sizeof(m2), &l2));
    assert_int_equal(l1, 32);
    assert_int_equal(l2, 32);
    assert_memory_equal(m1, m2, 32);
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    assert_string_equal(prov_of(EVP_MAC_get0_provider(mac)), "keystore");
    EVP_MAC_free(mac);

    tls13_expand(NULL, k1, &p1);
    tls13_expand(client_lib, k2, &p2);
    assert_string_equal(p1, "keystore");
    assert_string_equal(p2, "default");
    assert_memory_equal(k1, k2, sizeof(k1));

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        aes_gcm(NULL, names[i], key, c1, t1, &p1);
        aes_gcm(client_lib, names[i], key, c2, t2, &p2);
        assert_string_equal(p1, "keystore");
        assert_string_equal(p2, "default");
        assert_memory_equal(c1, c2, 27);
        assert_memory_equal(t1, t2, 16);
    }
    assert_int_equal(crossings() - before, 0);
}

/* ---- key management: private keys stay in T ------------------------------- */

/*
 * A key made by the provider's key management has its private half in T:
 * no raw private key, no private export or encoding, no unmarked derive or
 * decapsulation; the public key is exportable.  Control: the same calls in
 * the client's library context (default provider) give the private key.
 */
static void
one_key(OSSL_LIB_CTX *lib, const char *alg, size_t publen, int in_t)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(lib, NULL, alg), *peer = NULL;
    EVP_PKEY_CTX *pctx;
    unsigned char priv[2560], *pub = NULL, *der = NULL, ss[64], ct[1120];
    size_t privlen = sizeof(priv), sslen = sizeof(ss), ctlen = sizeof(ct);
    OSSL_PARAM *data = NULL;
    int derlen;

    assert_non_null(k);
    assert_string_equal(prov_of(EVP_PKEY_get0_provider(k)),
        in_t ? "keystore" : "default");
    assert_int_equal(EVP_PKEY_get1_encoded_public_key(k, &pub), publen);
    assert_int_equal(EVP_PKEY_todata(k, EVP_PKEY_PUBLIC_KEY, &data), 1);
    assert_non_null(OSSL_PARAM_locate(data, OSSL_PKEY_PARAM_PUB_KEY));
    OSSL_PARAM_free(data);
    data = NULL;
    /* the private key */
    assert_int_equal(EVP_PKEY_get_raw_private_key(k, priv, &privlen), !in_t);
    if (EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &data) == 1) {
        assert_true((OSSL_PARAM_locate(data, OSSL_PKEY_PARAM_PRIV_KEY) == NULL)
            == in_t);
        OSSL_PARAM_free(data);
    } else {
        assert_true(in_t);
    }
    /* (the hybrid has no private key encoding, even in the default) */
    if (strcmp(alg, "X25519") == 0) {
        ERR_set_mark();
        derlen = i2d_PrivateKey(k, &der);
        ERR_pop_to_mark();
        assert_true((derlen > 0) == !in_t);
    }
    OPENSSL_free(der);
    /* an unmarked operation that would give a raw secret */
    pctx = EVP_PKEY_CTX_new_from_pkey(lib, k, NULL);
    assert_non_null(pctx);
    ERR_set_mark();
    if (strcmp(alg, "X25519") == 0) {
        peer = EVP_PKEY_Q_keygen(lib, NULL, alg);
        assert_non_null(peer);
        assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
        assert_int_equal(EVP_PKEY_derive_set_peer(pctx, peer), 1);
        assert_int_equal(EVP_PKEY_derive(pctx, ss, &sslen) > 0, !in_t);
    } else {
        EVP_PKEY_CTX *ectx = EVP_PKEY_CTX_new_from_pkey(client_lib, k, NULL);

        /* a ciphertext for k, made by the independent default provider */
        assert_int_equal(EVP_PKEY_encapsulate_init(ectx, NULL), 1);
        assert_int_equal(EVP_PKEY_encapsulate(ectx, ct, &ctlen, ss, &sslen), 1);
        EVP_PKEY_CTX_free(ectx);
        sslen = sizeof(ss);
        assert_int_equal(EVP_PKEY_decapsulate_init(pctx, NULL), 1);
        assert_int_equal(EVP_PKEY_decapsulate(pctx, ss, &sslen, ct, ctlen) > 0,
            !in_t);
    }
    ERR_pop_to_mark();
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    OPENSSL_free(pub);
    EVP_PKEY_free(k);
}

static void
private_keys_stay_in_t(void **state)
{
    (void)state;
    one_key(NULL, "X25519", 32, 1);
    one_key(client_lib, "X25519", 32, 0);
    one_key(NULL, "X25519MLKEM768", 1216, 1);
    one_key(client_lib, "X25519MLKEM768", 1216, 0);
}

/* A private key cannot be imported into the provider's key management */
static void
no_private_import(void **state)
{
    unsigned char priv[32] = { 1 }, pub[32];
    OSSL_PARAM params[] = {
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, priv, 32),
        OSSL_PARAM_END
    };
    OSSL_PARAM pubparams[] = {
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, 32),
        OSSL_PARAM_END
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL);
    EVP_PKEY *k = NULL;

    (void)state;
    memset(pub, 9, sizeof(pub));
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    ERR_set_mark();
    assert_true(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params) <= 0);
    ERR_pop_to_mark();
    assert_null(k);
    /* a public key can */
    assert_int_equal(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY,
                         pubparams), 1);
    assert_non_null(k);
    assert_string_equal(prov_of(EVP_PKEY_get0_provider(k)), "keystore");
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(ctx);
}

/* ---- resumption, key update, both sides, bad records --------------------- */

/* Resumption: the resumption PSK is a token, the binder's key too */
static void
tls13_resumption(void **state)
{
    const struct tls_case *tc = &cases[0];
    SSL_CTX *cctx = client_ctx(tc, 0), *sctx = server_ctx(tc);
    SSL *c, *s;
    SSL_SESSION *sess;
    uint64_t t0, hs, total;
    struct opsnap o;
    const char *ops;
    char buf[256];

    (void)state;
    connect_pair(cctx, sctx, &c, &s);
    handshake(c, s);
    records(c, s);
    sess = SSL_get1_session(c);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    close_pair(c, s);

    connect_pair(cctx, sctx, &c, &s);
    assert_int_equal(SSL_set_session(c, sess), 1);
    ops_snap(&o);
    t0 = crossings();
    handshake(c, s);
    hs = crossings() - t0;
    ops = ops_since(&o, &total, buf);
    assert_int_equal(total, hs);
    assert_true(op_calls[KS_OP_MAC] > o.calls[KS_OP_MAC]);  /* binder */
    assert_int_equal(SSL_session_reused(c), 1);
    assert_int_equal(SSL_session_reused(s), 1);
    records(c, s);
    exporters_agree(c, s);
    assert_int_equal(secrets_equal(), 0);
    print_message("# resumption (psk_dhe_ke, %s): handshake %llu crossings "
        "(%s)\n", tc->group, (unsigned long long)hs, ops);
    close_pair(c, s);
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Key updates both ways: new traffic secrets and record keys in T */
static void
tls13_key_update(void **state)
{
    const struct tls_case *tc = &cases[1];
    SSL_CTX *cctx = client_ctx(tc, 0), *sctx = server_ctx(tc);
    SSL *c, *s;

    (void)state;
    connect_pair(cctx, sctx, &c, &s);
    handshake(c, s);
    records(c, s);
    assert_int_equal(SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED), 1);
    records(c, s);
    assert_int_equal(SSL_key_update(s, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    records(c, s);
    exporters_agree(c, s);
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Both sides on the provider: the client's key shares are made in T and
 * its secret comes from KS_OP_KEM_DECAP / KS_OP_KEX_DERIVE */
static void
both_sides_keystore(void **state)
{
    const struct tls_case *tc = *state;
    SSL_CTX *cctx = client_ctx(tc, 1), *sctx = server_ctx(tc);
    SSL *c, *s;
    uint64_t t0, hs, total;
    struct opsnap o;
    const char *ops;
    char buf[256];

    connect_pair(cctx, sctx, &c, &s);
    ops_snap(&o);
    t0 = crossings();
    handshake(c, s);
    hs = crossings() - t0;
    ops = ops_since(&o, &total, buf);
    assert_int_equal(total, hs);
    /* the client's key share was made in T, its secret came from T */
    assert_true(op_calls[KS_OP_KEX_KEYGEN] > o.calls[KS_OP_KEX_KEYGEN]);
    assert_true(op_calls[KS_OP_KEM_DECAP] > o.calls[KS_OP_KEM_DECAP]
        || op_calls[KS_OP_KEX_DERIVE] >= o.calls[KS_OP_KEX_DERIVE] + 2);
    records(c, s);
    exporters_agree(c, s);
    print_message("# both sides on the keystore, %s: handshake %llu "
        "crossings, client and server (%s)\n", tc->name,
        (unsigned long long)hs, ops);
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    assert_int_equal(ERR_peek_error(), 0);
}

/* Empties the error queue: the error of library lib with reason reason in
 * it (libssl adds "record layer failure" after the record layer's own) */
static unsigned long
error_with_reason(int lib, int reason)
{
    unsigned long e, found = 0;

    while ((e = ERR_get_error()) != 0)
        if (ERR_GET_LIB(e) == lib && ERR_GET_REASON(e) == reason)
            found = e;
    return found;
}

/* A flipped byte in a record to the server: a clean failure, an alert */
static void
bad_record(void **state)
{
    const struct tls_case *tc = *state;
    SSL_CTX *cctx = client_ctx(tc, 0), *sctx = server_ctx(tc);
    SSL *c, *s;
    unsigned char buf[64];
    unsigned long err;
    int r;

    connect_pair(cctx, sctx, &c, &s);
    handshake(c, s);
    records(c, s);
    ERR_clear_error();
    tampered = 0;
    assert_int_equal(SSL_write(c, "a request that will not arrive", 30), 30);
    tamper_at = 5 + 10;                 /* in the ciphertext, past the header */
    r = SSL_read(s, buf, sizeof(buf));
    assert_int_equal(tampered, 1);
    assert_true(r <= 0);
    assert_int_equal(SSL_get_error(s, r), SSL_ERROR_SSL);
    err = error_with_reason(ERR_LIB_SSL,
        SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC);
    print_message("# %s: tampered record -> server: %s\n", tc->name,
        err ? ERR_reason_error_string(err) : "(no such error)");
    assert_true(err != 0);
    /* the client gets the alert */
    r = SSL_read(c, buf, sizeof(buf));
    assert_true(r <= 0);
    assert_int_equal(SSL_get_error(c, r), SSL_ERROR_SSL);
    err = error_with_reason(ERR_LIB_SSL,
        SSL_AD_REASON_OFFSET + SSL_AD_BAD_RECORD_MAC);
    print_message("# %s: client: %s\n", tc->name,
        err ? ERR_reason_error_string(err) : "(no such error)");
    assert_true(err != 0);
    SSL_free(c);
    SSL_free(s);

    /* the keystore and the provider keep working */
    connect_pair(cctx, sctx, &c, &s);
    handshake(c, s);
    records(c, s);
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* ---- main --------------------------------------------------------------------- */

static int
setup(void)
{
    /* the default provider first: the keystore provider forwards to it */
    default_prov = OSSL_PROVIDER_load(NULL, "default");
    if (default_prov == NULL
        || !OSSL_PROVIDER_add_builtin(NULL, KS_PROVIDER_NAME, ks_provider_init)
        || (ks_prov = OSSL_PROVIDER_load(NULL, KS_PROVIDER_NAME)) == NULL
        || !EVP_set_default_properties(NULL, "?provider=" KS_PROVIDER_NAME))
        return 0;
    client_lib = OSSL_LIB_CTX_new();
    if (client_lib == NULL
        || (client_default = OSSL_PROVIDER_load(client_lib, "default")) == NULL)
        return 0;
    return make_cert() && RAND_bytes(ticket_keys, sizeof(ticket_keys)) == 1;
}

#define CASE(fn, i) \
    cmocka_unit_test_prestate(fn, (void *)&cases[i])
#define CONTROL(i) \
    cmocka_unit_test_prestate_setup_teardown(tls13_control, not_preferred, \
        preferred_again, (void *)&cases[i])

int
main(void)
{
    int failed;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fetches),
        cmocka_unit_test(unmarked_forwarded),
        cmocka_unit_test(private_keys_stay_in_t),
        cmocka_unit_test(no_private_import),
        CASE(tls13_keystore, 0), CASE(tls13_keystore, 1),
        CASE(tls13_keystore, 2), CASE(tls13_keystore, 3),
        CASE(tls13_keystore, 4), CASE(tls13_keystore, 5),
        CONTROL(0), CONTROL(1), CONTROL(2), CONTROL(3), CONTROL(4),
        CONTROL(5),
        cmocka_unit_test(tls13_resumption),
        cmocka_unit_test(tls13_key_update),
        CASE(both_sides_keystore, 0), CASE(both_sides_keystore, 5),
        CASE(bad_record, 0), CASE(bad_record, 5),
    };

    if (!setup()) {
        ERR_print_errors_fp(stderr);
        fprintf(stderr, "cannot set up the keystore provider\n");
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    X509_free(cert);
    EVP_PKEY_free(cert_key);
    OSSL_PROVIDER_unload(client_default);
    OSSL_LIB_CTX_free(client_lib);
    OSSL_PROVIDER_unload(ks_prov);
    OSSL_PROVIDER_unload(default_prov);
    return failed;
}
