/*
 * The keystore provider (openssl-patch/provider/), built in, in TLS 1.3
 * and TLS 1.2 handshakes: an MPK test (the provider creates the keystore).
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
 * For TLS 1.3 (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
 * TLS_CHACHA20_POLY1305_SHA256, each with X25519MLKEM768 and X25519; and
 * with the groups P-256, P-384, P-521 and X448) and TLS 1.2 ECDHE
 * (ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM, AES-256-GCM and
 * ChaCha20-Poly1305 over P-256, P-384, P-521, X25519 and X448), the
 * table cases[]:
 *   1. the handshake and application data both ways succeed (and the
 *      exporter, whose output is public, agrees on both sides);
 *   2. the secrets the server's libssl holds in U (its keylog lines and
 *      its session's master key: TLS 1.2's master secret, TLS 1.3's
 *      resumption PSK) differ from the client's, which are the real ones:
 *      the server only ever had tokens.
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
 * TLS13-KDF, TLS1-PRF, AES-GCM) give the default provider's results
 * without a crossing; the TLS 1.2 key block and record modes byte for
 * byte against the default provider's TLS modes; key management of every
 * group (private keys stay in T, the default's sizes; default-provider
 * keys still work); OpenSSL's method-cache order (ks_provider_prime);
 * resumption (TLS 1.3: resumption PSK token,
 * binder with a MAC-key token; TLS 1.2: the master-secret token in the
 * ticket); a key update; both sides on the provider (the client's key
 * generation and decapsulation/derive in T); the default provider's
 * other hybrids (SecP256r1MLKEM768, SecP384r1MLKEM1024, X448MLKEM1024),
 * whose EC/X448 halves land on the keystore's key management, and its
 * groups with raw secrets (ffdhe2048, MLKEM768) fail cleanly (and work in
 * the control).
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
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/opensslv.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "test_provider.h"

#if OPENSSL_VERSION_MAJOR != 3 || OPENSSL_VERSION_MINOR != 5
#error "test_provider needs the pinned OpenSSL 3.5 (patched libssl)"
#endif

static OSSL_PROVIDER *default_prov, *ks_prov, *client_default;
static OSSL_LIB_CTX *client_lib;        /* the peer: default provider only */
static EVP_PKEY *cert_key, *rsa_key;    /* the default provider's keys */
static X509 *cert, *rsa_cert;
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
/* TLS 1.2: "CLIENT_RANDOM <client random> <master secret>" */
static const char *const tls12_labels[] = { "CLIENT_RANDOM" };

/* ---- TLS between two SSL objects ----------------------------------------- */

/*
 * A self-signed certificate for key.  The keys are the default
 * provider's (as a key decoded from a file is, whatever the properties):
 * the keystore's EC key management would make an ephemeral key in T,
 * which cannot sign (long-term keys in T are not done yet).
 */
static int
make_cert(EVP_PKEY *key, X509 **out)
{
    X509_NAME *name;
    X509 *cert = X509_new();

    *out = cert;
    if (key == NULL || cert == NULL)
        return 0;
    name = X509_get_subject_name(cert);
    return X509_set_version(cert, X509_VERSION_3)
        && ASN1_INTEGER_set(X509_get_serialNumber(cert), 1)
        && X509_gmtime_adj(X509_getm_notBefore(cert), 0)
        && X509_gmtime_adj(X509_getm_notAfter(cert), 86400)
        && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
               (const unsigned char *)"localhost", -1, -1, 0)
        && X509_set_issuer_name(cert, name)
        && X509_set_pubkey(cert, key)
        /* Ed25519 (and other no-digest algorithms) take a NULL digest */
        && X509_sign(cert, key,
               EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")
               ? NULL : EVP_sha256()) > 0;
}

struct tls_case {
    const char *name;
    const char *suite;      /* TLS 1.3 ciphersuite, or TLS 1.2 cipher list */
    const char *group;
    int tls12;              /* TLS 1.2 only (ECDHE); else TLS 1.3 only */
    int rsa;                /* an RSA certificate (ECDHE-RSA) */
    int flags;
};
#define F_RSA_KX    1       /* TLS 1.2 RSA key exchange: a raw premaster */
#define F_NO_EMS    2       /* TLS 1.2 without the extended master secret */

static int
case_version(const struct tls_case *tc)
{
    return tc->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

static void
set_suite(SSL_CTX *ctx, const struct tls_case *tc)
{
    char groups[64];

    /* TLS 1.2 ECDHE-ECDSA: the certificate's curve must be a supported
     * group too; the client's first choice is the key exchange's */
    snprintf(groups, sizeof(groups), "%s%s", tc->group,
        tc->tls12 && !tc->rsa && strcmp(tc->group, "P-256") != 0
        ? ":P-256" : "");
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, case_version(tc)), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, case_version(tc)), 1);
    assert_int_equal(SSL_CTX_set1_groups_list(ctx, groups), 1);
    if (tc->tls12)
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, tc->suite), 1);
    else
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, tc->suite), 1);
    if (tc->flags & F_NO_EMS)
        SSL_CTX_set_options(ctx, SSL_OP_NO_EXTENDED_MASTER_SECRET);
}

/* The server: in the default library context, where the keystore provider
 * is preferred (but not in the controls, see not_preferred()). */
static SSL_CTX *
server_ctx(const struct tls_case *tc)
{
    SSL_CTX *ctx = SSL_CTX_new_ex(NULL, NULL, TLS_server_method());

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, tc->rsa ? rsa_cert : cert),
        1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, tc->rsa ? rsa_key : cert_key),
        1);
    assert_int_equal(SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys,
                         sizeof(ticket_keys)), 1);
    set_suite(ctx, tc);
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
    set_suite(ctx, tc);
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

static int
group_nid(const char *group)
{
    static const struct { const char *name; int nid; } g[] = {
        { "P-256", NID_X9_62_prime256v1 }, { "P-384", NID_secp384r1 },
        { "P-521", NID_secp521r1 }, { "X25519", NID_X25519 },
        { "X448", NID_X448 },
    };
    size_t i;

    for (i = 0; i < sizeof(g) / sizeof(g[0]); i++)
        if (strcmp(group, g[i].name) == 0)
            return g[i].nid;
    /* groups without a NID (the hybrids): their TLS group id */
    return (int)(TLSEXT_nid_unknown
        | (strcmp(group, "X25519MLKEM768") == 0 ? 0x11EC : 0));
}

/* The handshake; 1 if it completed, 0 if a side failed (errors queued) */
static int
try_handshake(SSL *c, SSL *s)
{
    int cdone = 0, sdone = 0, i;

    for (i = 0; i < 64 && !(cdone && sdone); i++)
        if (!step(c, &cdone) || !step(s, &sdone))
            return 0;
    return cdone && sdone;
}

static void
handshake(SSL *c, SSL *s, const struct tls_case *tc)
{
    if (!try_handshake(c, s)) {
        ERR_print_errors_fp(stderr);
        fail_msg("handshake failed");
    }
    assert_int_equal(SSL_version(s), case_version(tc));
    assert_int_equal(SSL_version(c), case_version(tc));
    /* the key exchange was the case's group (none when resuming TLS 1.2
     * or with RSA key exchange) */
    if (!(tc->tls12 && SSL_session_reused(s)) && !(tc->flags & F_RSA_KX))
        assert_int_equal(SSL_get_negotiated_group(s), group_nid(tc->group));
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

/* The secrets both sides log: TLS 1.3 traffic and exporter secrets, or
 * TLS 1.2's master secret */
static int
nlabels(const struct tls_case *tc)
{
    return tc->tls12 ? 1 : (int)NLABELS;
}

/* How many of the secrets the two sides logged are equal */
static int
secrets_equal(const struct tls_case *tc)
{
    const char *const *labels = tc->tls12 ? tls12_labels : tls13_labels;
    int i, equal = 0;

    for (i = 0; i < nlabels(tc); i++) {
        const char *cs = keylog_get(&kl_client, labels[i]);
        const char *ss = keylog_get(&kl_server, labels[i]);

        assert_non_null(cs);
        assert_non_null(ss);
        assert_int_equal(strlen(cs), strlen(ss));   /* tokens keep lengths */
        equal += strcmp(cs, ss) == 0;
    }
    return equal;
}

/* The session master keys (TLS 1.2: the master secret; TLS 1.3: the
 * resumption PSK of the last ticket): 1 if equal */
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

/* One TLS case; control = 1: the server does not use the keystore. */
static void
tls_case_run(const struct tls_case *tc, int control)
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
    handshake(c, s, tc);
    hs = crossings() - t0;
    ops = ops_since(&o, &total, buf);
    assert_int_equal(total, hs);                /* all of them the provider's */
    records(c, s);
    exporters_agree(c, s);

    /* 2: what the server's libssl holds */
    equal = secrets_equal(tc);
    if (control) {
        assert_int_equal(equal, nlabels(tc));
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
        equal == nlabels(tc) ? "= client's" : "!= client's (tokens)");
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
    /* TLS 1.3 */
    { "AES-128-GCM X25519MLKEM768", "TLS_AES_128_GCM_SHA256",
      "X25519MLKEM768", 0, 0, 0 },
    { "AES-256-GCM X25519MLKEM768", "TLS_AES_256_GCM_SHA384",
      "X25519MLKEM768", 0, 0, 0 },
    { "ChaCha20 X25519MLKEM768", "TLS_CHACHA20_POLY1305_SHA256",
      "X25519MLKEM768", 0, 0, 0 },
    { "AES-128-GCM X25519", "TLS_AES_128_GCM_SHA256", "X25519", 0, 0, 0 },
    { "AES-256-GCM X25519", "TLS_AES_256_GCM_SHA384", "X25519", 0, 0, 0 },
    { "ChaCha20 X25519", "TLS_CHACHA20_POLY1305_SHA256", "X25519", 0, 0,
      0 },
    { "AES-128-GCM P-256", "TLS_AES_128_GCM_SHA256", "P-256", 0, 0, 0 },
    { "AES-256-GCM P-384", "TLS_AES_256_GCM_SHA384", "P-384", 0, 0, 0 },
    { "ChaCha20 P-521", "TLS_CHACHA20_POLY1305_SHA256", "P-521", 0, 0, 0 },
    { "AES-256-GCM X448", "TLS_AES_256_GCM_SHA384", "X448", 0, 0, 0 },
    /* TLS 1.2 ECDHE */
#define FIRST_TLS12 10
    { "TLS1.2 ECDHE-ECDSA-AES128-GCM P-256",
      "ECDHE-ECDSA-AES128-GCM-SHA256", "P-256", 1, 0, 0 },
    { "TLS1.2 ECDHE-ECDSA-AES256-GCM P-384",
      "ECDHE-ECDSA-AES256-GCM-SHA384", "P-384", 1, 0, 0 },
    { "TLS1.2 ECDHE-ECDSA-CHACHA20 X25519",
      "ECDHE-ECDSA-CHACHA20-POLY1305", "X25519", 1, 0, 0 },
    { "TLS1.2 ECDHE-ECDSA-AES128-GCM X448",
      "ECDHE-ECDSA-AES128-GCM-SHA256", "X448", 1, 0, 0 },
    { "TLS1.2 ECDHE-ECDSA-CHACHA20 P-521",
      "ECDHE-ECDSA-CHACHA20-POLY1305", "P-521", 1, 0, 0 },
    { "TLS1.2 ECDHE-RSA-AES256-GCM P-256",
      "ECDHE-RSA-AES256-GCM-SHA384", "P-256", 1, 1, 0 },
    { "TLS1.2 ECDHE-RSA-CHACHA20 X25519",
      "ECDHE-RSA-CHACHA20-POLY1305", "X25519", 1, 1, 0 },
    { "TLS1.2 ECDHE-ECDSA-AES256-GCM P-256 without EMS",
      "ECDHE-ECDSA-AES256-GCM-SHA384", "P-256", 1, 0, F_NO_EMS },
    { "TLS1.2 RSA-AES128-GCM (RSA key exchange)",
      "AES128-GCM-SHA256", "P-256", 1, 1, F_RSA_KX },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void
tls_keystore(void **state)
{
    tls_case_run(*state, 0);
}

static void
tls_control(void **state)
{
    tls_case_run(*state, 1);
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
    static const char *const kdfs[] = { "TLS1-PRF", "HKDF" };
    static const char *const keymgmts[] = { "X448", "EC" };
    static const char *const exchs[] = { "X448", "ECDH" };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++) {
        EVP_KDF *f = EVP_KDF_fetch(NULL, kdfs[i], NULL);

        assert_string_equal(prov_of(EVP_KDF_get0_provider(f)), "keystore");
        EVP_KDF_free(f);
    }
    for (i = 0; i < sizeof(keymgmts) / sizeof(keymgmts[0]); i++) {
        EVP_KEYMGMT *f = EVP_KEYMGMT_fetch(NULL, keymgmts[i], NULL);

        assert_string_equal(prov_of(EVP_KEYMGMT_get0_provider(f)), "keystore");
        EVP_KEYMGMT_free(f);
    }
    for (i = 0; i < sizeof(exchs) / sizeof(exchs[0]); i++) {
        EVP_KEYEXCH *f = EVP_KEYEXCH_fetch(NULL, exchs[i], NULL);

        assert_string_equal(prov_of(EVP_KEYEXCH_get0_provider(f)), "keystore");
        EVP_KEYEXCH_free(f);
    }
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
    {
        EVP_KEYMGMT *f = EVP_KEYMGMT_fetch(NULL, "SecP256r1MLKEM768", NULL);

        assert_string_equal(prov_of(EVP_KEYMGMT_get0_provider(f)), "default");
        EVP_KEYMGMT_free(f);
    }
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

static void
tls1_prf(OSSL_LIB_CTX *lib, unsigned char *out, size_t outlen,
    const char **prov)
{
    static const unsigned char secret[48] = "a raw TLS 1.2 secret, not a token...............";
    EVP_KDF *kdf = EVP_KDF_fetch(lib, "TLS1-PRF", NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA2-256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SECRET, (void *)secret, 48),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, "key expansion", 13),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, "server random", 13),
        OSSL_PARAM_END
    };
    OSSL_PARAM more[] = {
        /* seeds concatenate across calls too */
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, "client random", 13),
        OSSL_PARAM_END
    };

    assert_non_null(ctx);
    *prov = prov_of(EVP_KDF_get0_provider(kdf));
    assert_int_equal(EVP_KDF_CTX_set_params(ctx, p), 1);
    assert_int_equal(EVP_KDF_derive(ctx, out, outlen, more), 1);
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

    tls1_prf(NULL, c1, 40, &p1);
    tls1_prf(client_lib, c2, 40, &p2);
    assert_string_equal(p1, "keystore");
    assert_string_equal(p2, "default");
    assert_memory_equal(c1, c2, 40);

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

/* ---- TLS 1.2: the key block and the record modes, against the default ---- */

static const unsigned char prf_secret[48] =
    "a raw master secret: the caller knows its token";
static const unsigned char prf_seed[] =
    "key expansion" "server random..................." "client random...................";

/*
 * A TLS 1.2 key block from a raw master secret.  marked: as libssl asks
 * for it (mpktls-out=keyblock and the layout; the keys come back as
 * record-key tokens, the fixed IVs clear); else unmarked, the default's.
 */
static int
key_block(OSSL_LIB_CTX *lib, int marked, const char *out, size_t kb_key,
    size_t kb_iv, size_t kb_mac, unsigned char *kb, size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(lib, "TLS1-PRF", NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    int token = 0, ok;
    OSSL_PARAM p[10], *q = p;

    assert_non_null(ctx);
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
        "SHA2-256", 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
        (void *)prf_secret, sizeof(prf_secret));
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
        (void *)prf_seed, sizeof(prf_seed) - 1);
    if (marked) {
        *q++ = OSSL_PARAM_construct_utf8_string("mpktls-out", (char *)out, 0);
        *q++ = OSSL_PARAM_construct_int("mpktls-key-token", &token);
        if (kb_key != 0) {
            *q++ = OSSL_PARAM_construct_size_t("mpktls-kb-mac", &kb_mac);
            *q++ = OSSL_PARAM_construct_size_t("mpktls-kb-key", &kb_key);
            *q++ = OSSL_PARAM_construct_size_t("mpktls-kb-iv", &kb_iv);
        }
    }
    *q = OSSL_PARAM_construct_end();
    ERR_set_mark();
    ok = EVP_KDF_derive(ctx, kb, len, p) == 1;
    ERR_pop_to_mark();
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok;
}

/*
 * A TLS 1.2 record cipher as libssl's tls1_meth.c sets one up: GCM with
 * the key, then the 4-byte fixed IV; ChaCha20-Poly1305 with key and IV.
 * token: the key is a record-key token (the marker libssl adds).
 */
static EVP_CIPHER_CTX *
record_ctx(OSSL_LIB_CTX *lib, const char *name, int enc, int token,
    const unsigned char *key, const unsigned char *iv, size_t ivlen)
{
    EVP_CIPHER *ciph = EVP_CIPHER_fetch(lib, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int one = 1;
    OSSL_PARAM p[2] = { OSSL_PARAM_END, OSSL_PARAM_END };
    int gcm = ivlen == 4;

    assert_non_null(ciph);
    assert_string_equal(prov_of(EVP_CIPHER_get0_provider(ciph)),
        lib == NULL ? "keystore" : "default");
    if (token)
        p[0] = OSSL_PARAM_construct_int("mpktls-key-token", &one);
    assert_int_equal(EVP_CipherInit_ex2(ctx, ciph, key, gcm ? NULL : iv, enc,
                         p), 1);
    if (gcm)
        assert_true(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IV_FIXED,
                        (int)ivlen, (void *)iv) > 0);
    EVP_CIPHER_free(ciph);
    return ctx;
}

/*
 * One record as tls1_cipher() does it: the 13-byte AAD (sequence number,
 * type, version, record length), then the whole record in one update.
 * buf: [explicit nonce (GCM)] payload [tag]; *len: the record's length in,
 * what the cipher answers out (whole record / payload).  1 or 0.
 */
static int
record_op(EVP_CIPHER_CTX *ctx, int gcm, uint64_t seq, unsigned char *buf,
    size_t *len)
{
    unsigned char aad[13];
    int i, pad, outl = 0, ok;
    size_t reclen = *len;

    for (i = 0; i < 8; i++)
        aad[i] = (unsigned char)(seq >> (56 - 8 * i));
    aad[8] = 23;
    aad[9] = 3;
    aad[10] = 3;
    /* sending: the length before the tag; receiving: the whole record */
    if (EVP_CIPHER_CTX_is_encrypting(ctx))
        reclen -= 16;
    aad[11] = (unsigned char)(reclen >> 8);
    aad[12] = (unsigned char)reclen;
    ERR_set_mark();
    pad = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_TLS1_AAD, 13, aad);
    ok = pad == 16
        && EVP_CipherUpdate(ctx, buf, &outl, buf, (int)*len) == 1;
    ERR_pop_to_mark();
    (void)gcm;
    *len = (size_t)outl;
    return ok;
}

/*
 * TLS1-PRF's key block and the TLS 1.2 record modes, byte for byte
 * against the default provider: the key block from a raw master secret
 * (the fixed IVs clear and equal to the default's, the keys tokens);
 * records our encryption makes decrypt with the default's TLS mode and
 * the raw keys, and the default's decrypt with ours; each record is one
 * crossing; a sequence number is never used twice for encryption; a
 * flipped bit fails the record.
 */
static void
tls12_records_match_default(void **state)
{
    static const struct {
        const char *name;
        size_t key, iv;
    } algs[] = {
        { "AES-128-GCM", 16, 4 }, { "AES-256-GCM", 32, 4 },
        { "ChaCha20-Poly1305", 32, 12 },
    };
    static const unsigned char msg[] = "a TLS 1.2 application record";
    size_t a, plen = sizeof(msg), n;
    uint64_t before, recs;

    (void)state;
    for (a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        size_t k = algs[a].key, iv = algs[a].iv, kblen = 2 * (k + iv);
        size_t eiv = iv == 4 ? 8 : 0, total = eiv + plen + 16;
        int gcm = iv == 4;
        unsigned char ours[128], theirs[128], buf[256], buf2[256];
        EVP_CIPHER_CTX *oe, *od, *te, *td;

        before = crossings();
        assert_true(key_block(NULL, 1, "keyblock", k, iv, 0, ours, kblen));
        assert_true(key_block(client_lib, 0, NULL, 0, 0, 0, theirs, kblen));
        assert_int_equal(crossings() - before, 1);
        /* client key, server key: tokens; client IV, server IV: clear */
        assert_memory_not_equal(ours, theirs, k);
        assert_memory_not_equal(ours + k, theirs + k, k);
        assert_memory_equal(ours + 2 * k, theirs + 2 * k, 2 * iv);

        /* ours (client write, token) -> the default (server read, raw) */
        oe = record_ctx(NULL, algs[a].name, 1, 1, ours, ours + 2 * k, iv);
        td = record_ctx(client_lib, algs[a].name, 0, 0, theirs,
            theirs + 2 * k, iv);
        recs = op_calls[KS_OP_AEAD_RECORD];
        before = crossings();
        memset(buf, 0, sizeof(buf));
        memcpy(buf + eiv, msg, plen);
        n = total;
        assert_true(record_op(oe, gcm, 7, buf, &n));
        assert_int_equal(n, total);
        assert_int_equal(crossings() - before, 1);
        assert_int_equal(op_calls[KS_OP_AEAD_RECORD] - recs, 1);
        if (gcm) {      /* our explicit nonce: the sequence number */
            static const unsigned char seq7[8] = { 0, 0, 0, 0, 0, 0, 0, 7 };

            assert_memory_equal(buf, seq7, 8);
        }
        memcpy(buf2, buf, total);
        n = total;
        assert_true(record_op(td, gcm, 7, buf, &n));
        assert_int_equal(n, plen);
        assert_memory_equal(buf + eiv, msg, plen);
        /* no sequence number twice, nor going back */
        memcpy(buf, buf2, total);
        n = total;
        assert_false(record_op(oe, gcm, 7, buf, &n));
        n = total;
        assert_false(record_op(oe, gcm, 6, buf, &n));
        memcpy(buf + eiv, msg, plen);
        n = total;
        assert_true(record_op(oe, gcm, 8, buf, &n));
        n = total;
        assert_true(record_op(td, gcm, 8, buf, &n));
        assert_memory_equal(buf + eiv, msg, plen);

        /* the default (client write, raw) -> ours (server read, token) */
        te = record_ctx(client_lib, algs[a].name, 1, 0, theirs,
            theirs + 2 * k, iv);
        od = record_ctx(NULL, algs[a].name, 0, 1, ours, ours + 2 * k, iv);
        memset(buf, 0, sizeof(buf));
        memcpy(buf + eiv, msg, plen);
        n = total;
        assert_true(record_op(te, gcm, 0, buf, &n));
        assert_int_equal(n, total);
        memcpy(buf2, buf, total);
        recs = op_calls[KS_OP_AEAD_RECORD];
        n = total;
        assert_true(record_op(od, gcm, 0, buf, &n));
        assert_int_equal(op_calls[KS_OP_AEAD_RECORD] - recs, 1);
        assert_int_equal(n, plen);
        assert_memory_equal(buf + eiv, msg, plen);
        /* a flipped bit in the ciphertext: refused, the output zeroed */
        memcpy(buf, buf2, total);
        buf[eiv + 3] ^= 0x20;
        n = total;
        assert_false(record_op(od, gcm, 0, buf, &n));
        for (n = 0; n < plen; n++)
            assert_int_equal(buf[eiv + n], 0);
        /* a record without its AAD: refused, no crossing */
        recs = op_calls[KS_OP_AEAD_RECORD];
        ERR_set_mark();
        assert_int_equal(EVP_CipherUpdate(od, buf, (int *)&n, buf2,
                             (int)total), 0);
        ERR_pop_to_mark();
        assert_int_equal(op_calls[KS_OP_AEAD_RECORD], recs);
        print_message("# TLS 1.2 %s: key block %zu bytes (IVs clear, keys "
            "tokens), records both ways match the default's, 1 crossing "
            "each\n", algs[a].name, kblen);
        EVP_CIPHER_CTX_free(oe);
        EVP_CIPHER_CTX_free(od);
        EVP_CIPHER_CTX_free(te);
        EVP_CIPHER_CTX_free(td);
    }
}

/* What a marked TLS1-PRF must carry, refused by the provider or T */
static void
prf_marks_refused(void **state)
{
    unsigned char kb[88];
    uint64_t before = crossings();

    (void)state;
    /* a key block without its layout, a record key, an unknown class */
    assert_false(key_block(NULL, 1, "keyblock", 0, 0, 0, kb, 40));
    assert_false(key_block(NULL, 1, "record-key", 0, 0, 0, kb, 16));
    assert_false(key_block(NULL, 1, "something", 0, 0, 0, kb, 16));
    assert_int_equal(crossings() - before, 0);
    /* layouts T does not serve (a MAC key: CBC suites), or that do not add
     * up: T refuses */
    assert_false(key_block(NULL, 1, "keyblock", 16, 4, 20, kb, 80));
    assert_false(key_block(NULL, 1, "keyblock", 16, 4, 0, kb, 48));
    assert_false(key_block(NULL, 1, "keyblock", 16, 16, 0, kb, 64));
    /* (which class a token input gives is T's decision: test_kdf) */
    /* the same, right: fine */
    assert_true(key_block(NULL, 1, "keyblock", 32, 12, 0, kb, 88));
}

/* ---- key management: private keys stay in T ------------------------------- */

struct key_case {
    const char  *alg;           /* key type */
    const char  *group;         /* EC: the curve */
    size_t       publen;        /* encoded public key */
    int          kem;           /* 1: a KEM (decapsulation), else derive */
};

static const struct key_case key_cases[] = {
    { "X25519", NULL, 32, 0 },
    { "X448", NULL, 56, 0 },
    { "EC", "P-256", 65, 0 },
    { "EC", "P-384", 97, 0 },
    { "EC", "P-521", 133, 0 },
    { "X25519MLKEM768", NULL, 1216, 1 },
};

/*
 * A key made by the provider's key management has its private half in T:
 * no raw private key, no private export or encoding, no unmarked derive or
 * decapsulation; the public key is exportable.  Control: the same calls in
 * the client's library context (default provider) give the private key.
 */
static EVP_PKEY *
one_key(OSSL_LIB_CTX *lib, const struct key_case *kc, int in_t)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(lib, NULL, kc->alg, kc->group), *peer = NULL;
    EVP_PKEY_CTX *pctx;
    unsigned char priv[2560], *pub = NULL, *der = NULL, ss[72], ct[1120];
    size_t privlen = sizeof(priv), sslen = sizeof(ss), ctlen = sizeof(ct);
    OSSL_PARAM *data = NULL;
    BIGNUM *bn = NULL;
    int derlen;

    assert_non_null(k);
    assert_string_equal(prov_of(EVP_PKEY_get0_provider(k)),
        in_t ? "keystore" : "default");
    assert_int_equal(EVP_PKEY_get1_encoded_public_key(k, &pub), kc->publen);
    assert_int_equal(EVP_PKEY_todata(k, EVP_PKEY_PUBLIC_KEY, &data), 1);
    assert_non_null(OSSL_PARAM_locate(data, OSSL_PKEY_PARAM_PUB_KEY));
    OSSL_PARAM_free(data);
    data = NULL;
    /* the private key */
    ERR_set_mark();
    if (kc->group != NULL) {
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY,
                             &bn), !in_t);
        BN_clear_free(bn);
    } else {
        assert_int_equal(EVP_PKEY_get_raw_private_key(k, priv, &privlen),
            !in_t);
    }
    ERR_pop_to_mark();
    if (EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &data) == 1) {
        assert_true((OSSL_PARAM_locate(data, OSSL_PKEY_PARAM_PRIV_KEY) == NULL)
            == in_t);
        OSSL_PARAM_free(data);
    } else {
        assert_true(in_t);
    }
    /* (the hybrid has no private key encoding, even in the default) */
    if (!kc->kem) {
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
    if (!kc->kem) {
        peer = EVP_PKEY_Q_keygen(lib, NULL, kc->alg, kc->group);
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
    return k;
}

static void
private_keys_stay_in_t(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
        const struct key_case *kc = &key_cases[i];
        EVP_PKEY *ours = one_key(NULL, kc, 1);
        EVP_PKEY *theirs = one_key(client_lib, kc, 0);
        char g1[32] = "", g2[32] = "";

        /* the sizes libssl and the security level see are the default's */
        assert_int_equal(EVP_PKEY_get_bits(ours), EVP_PKEY_get_bits(theirs));
        assert_int_equal(EVP_PKEY_get_security_bits(ours),
            EVP_PKEY_get_security_bits(theirs));
        assert_int_equal(EVP_PKEY_get_size(ours), EVP_PKEY_get_size(theirs));
        if (kc->group != NULL) {
            assert_int_equal(EVP_PKEY_get_group_name(ours, g1, sizeof(g1),
                                 NULL), 1);
            assert_int_equal(EVP_PKEY_get_group_name(theirs, g2, sizeof(g2),
                                 NULL), 1);
            assert_string_equal(g1, g2);
        }
        print_message("# %s%s%s: bits %d, security bits %d, size %d, "
            "private key in T\n", kc->alg, kc->group ? " " : "",
            kc->group ? kc->group : "", EVP_PKEY_get_bits(ours),
            EVP_PKEY_get_security_bits(ours), EVP_PKEY_get_size(ours));
        EVP_PKEY_free(ours);
        EVP_PKEY_free(theirs);
    }
}

/*
 * Keys of the default provider (made with "provider=default", or decoded
 * from a file) still work where the keystore is preferred: EVP offers them
 * to the keystore's exchange first, which cannot take their private key,
 * and then uses their own provider's.  Raw secrets, no crossing.
 */
static void
default_keys_still_work(void **state)
{
    static const struct { const char *alg, *group; } k[] = {
        { "EC", "P-256" }, { "EC", "P-521" }, { "X25519", NULL },
        { "X448", NULL },
    };
    unsigned char s1[66], s2[66];
    size_t i, l1, l2;
    uint64_t before = crossings();

    (void)state;
    for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        EVP_PKEY *a = EVP_PKEY_Q_keygen(NULL, "provider=default", k[i].alg,
            k[i].group);
        EVP_PKEY *b = EVP_PKEY_Q_keygen(NULL, "provider=default", k[i].alg,
            k[i].group);
        EVP_PKEY_CTX *ca = EVP_PKEY_CTX_new_from_pkey(NULL, a, NULL);
        EVP_PKEY_CTX *cb = EVP_PKEY_CTX_new_from_pkey(NULL, b, NULL);

        l1 = sizeof(s1);
        l2 = sizeof(s2);
        assert_int_equal(EVP_PKEY_derive_init(ca), 1);
        assert_int_equal(EVP_PKEY_derive_set_peer(ca, b), 1);
        assert_int_equal(EVP_PKEY_derive(ca, s1, &l1), 1);
        assert_int_equal(EVP_PKEY_derive_init(cb), 1);
        assert_int_equal(EVP_PKEY_derive_set_peer(cb, a), 1);
        assert_int_equal(EVP_PKEY_derive(cb, s2, &l2), 1);
        assert_int_equal(l1, l2);
        assert_memory_equal(s1, s2, l1);
        EVP_PKEY_CTX_free(ca);
        EVP_PKEY_CTX_free(cb);
        EVP_PKEY_free(a);
        EVP_PKEY_free(b);
    }
    assert_int_equal(crossings() - before, 0);
    ERR_clear_error();
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

/* Nor an EC private key; an EC public key (group and point) can */
static void
no_private_import_ec(void **state)
{
    EVP_PKEY *dk = EVP_PKEY_Q_keygen(client_lib, NULL, "EC", "P-256");
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *k = NULL;
    unsigned char pub[65];
    char group[32] = "";
    size_t publen = 0;
    BIGNUM *priv = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params, *pubparams;

    (void)state;
    assert_non_null(dk);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_get_octet_string_param(dk,
                         OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
                         &publen), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(dk, OSSL_PKEY_PARAM_PRIV_KEY,
                         &priv), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld,
                         OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld,
                         OSSL_PKEY_PARAM_PUB_KEY, pub, publen), 1);
    pubparams = OSSL_PARAM_BLD_to_param(bld);
    assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld,
                         OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld,
                         OSSL_PKEY_PARAM_PUB_KEY, pub, publen), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY,
                         priv), 1);
    params = OSSL_PARAM_BLD_to_param(bld);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    ERR_set_mark();
    assert_true(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params) <= 0);
    ERR_pop_to_mark();
    assert_null(k);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY,
                         pubparams), 1);
    assert_string_equal(prov_of(EVP_PKEY_get0_provider(k)), "keystore");
    assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group), NULL),
        1);
    assert_string_equal(group, "prime256v1");
    EVP_PKEY_free(k);
    OSSL_PARAM_free(params);
    OSSL_PARAM_free(pubparams);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(dk);
}

/* ---- resumption, key update, both sides, bad records --------------------- */

/*
 * Resumption.  TLS 1.3: the resumption PSK is a token, the binder's key
 * too (a MAC crossing).  TLS 1.2: the ticket holds the master-secret
 * token, from which the new key block is derived; no key exchange.
 */
static void
resumption(void **state)
{
    const struct tls_case *tc = *state;
    SSL_CTX *cctx = client_ctx(tc, 0), *sctx = server_ctx(tc);
    SSL *c, *s;
    SSL_SESSION *sess;
    uint64_t t0, hs, total;
    struct opsnap o;
    const char *ops;
    char buf[256];

    connect_pair(cctx, sctx, &c, &s);
    handshake(c, s, tc);
    records(c, s);
    sess = SSL_get1_session(c);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    close_pair(c, s);

    connect_pair(cctx, sctx, &c, &s);
    assert_int_equal(SSL_set_session(c, sess), 1);
    ops_snap(&o);
    t0 = crossings();
    handshake(c, s, tc);
    hs = crossings() - t0;
    ops = ops_since(&o, &total, buf);
    assert_int_equal(total, hs);
    if (tc->tls12) {
        assert_int_equal(op_calls[KS_OP_KEX_KEYGEN], o.calls[KS_OP_KEX_KEYGEN]);
        assert_true(op_calls[KS_OP_KDF] > o.calls[KS_OP_KDF]);  /* key block */
    } else {
        assert_true(op_calls[KS_OP_MAC] > o.calls[KS_OP_MAC]);  /* binder */
    }
    assert_int_equal(SSL_session_reused(c), 1);
    assert_int_equal(SSL_session_reused(s), 1);
    records(c, s);
    exporters_agree(c, s);
    assert_int_equal(secrets_equal(tc), 0);
    assert_false(master_keys_equal(c, s));
    print_message("# resumption (%s): handshake %llu crossings (%s)\n",
        tc->tls12 ? tc->name : "psk_dhe_ke, X25519MLKEM768",
        (unsigned long long)hs, ops);
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
    handshake(c, s, tc);
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
    handshake(c, s, tc);
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
    handshake(c, s, tc);
    records(c, s);
    ERR_clear_error();
    tampered = 0;
    assert_int_equal(SSL_write(c, "a request that will not arrive", 30), 30);
    /* in the ciphertext, past the header (TLS 1.2 GCM: past the explicit
     * nonce too) */
    tamper_at = 5 + 10 + (tc->tls12 ? 8 : 0);
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
    handshake(c, s, tc);
    records(c, s);
    close_pair(c, s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* ---- OpenSSL's method cache and the default's EC keys ----------------------- */

static void
sign_with(EVP_PKEY *key)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[160];
    size_t siglen = sizeof(sig);

    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL,
                         key, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen,
                         (const unsigned char *)"tbs", 3), 1);
    EVP_MD_CTX_free(md);
}

static const char *
ec_keymgmt_provider(void)
{
    EVP_KEYMGMT *m = EVP_KEYMGMT_fetch(NULL, "EC", NULL);
    const char *p = prov_of(EVP_KEYMGMT_get0_provider(m));

    EVP_KEYMGMT_free(m);
    return p;
}

/*
 * ks_provider_prime() (ks_provider.h) and OpenSSL 3.5's method cache: an
 * unrestricted fetch of "EC" returns the first cached "EC" key management
 * of any provider.  Before the keystore had signatures, signing first with
 * the default provider's EC key cached the default's EC key management
 * first, and libssl's ECDHE key shares were then made in U (the handshake
 * failed closed).  Now the preferred ECDSA is the keystore's, and signing
 * with a default-provider EC key caches the keystore's EC key management:
 * after a flush, signing first leaves "EC" on the keystore and the P-256
 * handshake makes its key shares in T.  What matters, checked both
 * without and with the prime: ECDHE after signing stays on the keystore.
 */
static void
method_cache_order(void **state)
{
    const struct tls_case *tc = &cases[6];          /* TLS 1.3, P-256 */
    SSL_CTX *cctx, *sctx;
    SSL *c, *s;
    uint64_t keygens;
    int ok;

    (void)state;
    /* flush (setting the default properties does), then sign first */
    assert_int_equal(EVP_set_default_properties(NULL,
                         "?provider=" KS_PROVIDER_NAME), 1);
    sign_with(cert_key);
    print_message("# signed first: unrestricted \"EC\" -> %s\n",
        ec_keymgmt_provider());
    assert_string_equal(ec_keymgmt_provider(), KS_PROVIDER_NAME);
    cctx = client_ctx(tc, 0);
    sctx = server_ctx(tc);
    connect_pair(cctx, sctx, &c, &s);
    keygens = op_calls[KS_OP_KEX_KEYGEN];
    ok = try_handshake(c, s);
    print_message("# then a P-256 handshake: %s, %llu key generations in T\n",
        ok ? "completes" : "fails closed",
        (unsigned long long)(op_calls[KS_OP_KEX_KEYGEN] - keygens));
    if (!ok)
        ERR_print_errors_fp(stderr);
    assert_true(ok);
    assert_true(op_calls[KS_OP_KEX_KEYGEN] > keygens);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ERR_clear_error();

    /* primed after the flush: the keystore's, whatever signs later */
    assert_int_equal(EVP_set_default_properties(NULL,
                         "?provider=" KS_PROVIDER_NAME), 1);
    assert_int_equal(ks_provider_prime(NULL, NULL), 1);
    sign_with(cert_key);
    assert_string_equal(ec_keymgmt_provider(), KS_PROVIDER_NAME);
    tls_case_run(tc, 0);
}

/* ---- the default provider's other hybrids ---------------------------------- */

/*
 * SecP256r1MLKEM768, SecP384r1MLKEM1024 (TLS groups, not in the default
 * list) and X448MLKEM1024 (a KEM only) are the default provider's: it
 * makes their EC/X448 halves with property-less fetches, which land on
 * the keystore's key management (a key in T), and then derives unmarked,
 * which the keystore refuses.  So they fail, cleanly, with the keystore's
 * reason; no raw half-secret is ever used.  Control: without the
 * preference they work.
 */
static const struct {
    const char *group;
    int refused;            /* 1: by the keystore, with its reason */
} other_groups[] = {
    { "SecP256r1MLKEM768", 1 }, { "SecP384r1MLKEM1024", 1 },
    /* the default's groups whose secrets are raw: libssl marks them as
     * tokens, T takes them for tokens, the handshake fails */
    { "ffdhe2048", 0 }, { "MLKEM768", 0 },
};

/* The keystore's reason string is in the error queue (which is emptied) */
static int
keystore_refused(void)
{
    unsigned long e;
    const char *why;
    int found = 0;

    while ((e = ERR_get_error()) != 0) {
        why = ERR_reason_error_string(e);
        if (why != NULL && strcmp(why, "private keys stay in the keystore") == 0)
            found = 1;
    }
    return found;
}

static void
other_group_tls(const char *group, int refused, int control)
{
    const struct tls_case tc = {
        group, "TLS_AES_128_GCM_SHA256", group, 0, 0, 0
    };
    SSL_CTX *cctx = client_ctx(&tc, 0), *sctx = server_ctx(&tc);
    SSL *c, *s;
    uint64_t t0 = crossings();
    int ok;

    connect_pair(cctx, sctx, &c, &s);
    ERR_clear_error();
    ok = try_handshake(c, s);
    if (control) {
        assert_true(ok);
        assert_int_equal(secrets_equal(&tc), (int)NLABELS);
        assert_int_equal(crossings() - t0, 0);
        records(c, s);
    } else {
        assert_false(ok);
        if (refused) {
            assert_true(keystore_refused());
            /* no server handshake secret was made */
            assert_null(keylog_get(&kl_server,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET"));
        } else {
            /* whatever the server had, it is not the client's secret */
            const char *cs = keylog_get(&kl_client,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET");
            const char *ss = keylog_get(&kl_server,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET");

            assert_true(cs == NULL || ss == NULL || strcmp(cs, ss) != 0);
        }
    }
    print_message("# %s%s: %s\n", group, control ? " (control)" : "",
        ok ? "handshake ok" : refused ? "handshake fails: the keystore "
        "refused the unmarked derive of its EC half" : "handshake fails: "
        "its raw secret is no token");
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    ERR_clear_error();
}

static void
other_hybrid_kem(const char *alg, int control)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, alg);
    EVP_PKEY_CTX *ectx = NULL, *dctx = NULL;
    unsigned char ct[1700], ss[128], ss2[128];
    size_t ctlen = sizeof(ct), sslen = sizeof(ss), sslen2 = sizeof(ss2);
    int enc = 0, dec = 0;

    ERR_clear_error();
    assert_non_null(k);
    assert_string_equal(prov_of(EVP_PKEY_get0_provider(k)), "default");
    ectx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    enc = EVP_PKEY_encapsulate_init(ectx, NULL) > 0
        && EVP_PKEY_encapsulate(ectx, ct, &ctlen, ss, &sslen) > 0;
    if (enc) {
        dctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
        dec = EVP_PKEY_decapsulate_init(dctx, NULL) > 0
            && EVP_PKEY_decapsulate(dctx, ss2, &sslen2, ct, ctlen) > 0;
    }
    if (control) {
        assert_true(enc && dec);
        assert_int_equal(sslen, sslen2);
        assert_memory_equal(ss, ss2, sslen);
    } else {
        assert_false(enc);
        assert_true(keystore_refused());
    }
    print_message("# %s%s: encapsulate %s\n", alg, control ? " (control)" : "",
        enc ? "ok" : "fails: the keystore refused the unmarked derive of its "
        "X448 half");
    EVP_PKEY_CTX_free(ectx);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(k);
    ERR_clear_error();
}

static void
other_hybrids_fail_closed(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(other_groups) / sizeof(other_groups[0]); i++)
        other_group_tls(other_groups[i].group, other_groups[i].refused, 0);
    other_hybrid_kem("X448MLKEM1024", 0);
    /* the keystore keeps working */
    tls_case_run(&cases[0], 0);
}

static void
other_hybrids_control(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(other_groups) / sizeof(other_groups[0]); i++)
        other_group_tls(other_groups[i].group, other_groups[i].refused, 1);
    other_hybrid_kem("X448MLKEM1024", 1);
}


/* ---- long-term keys in T: the keystore: store ---------------------------- */

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/pem.h>
#include <openssl/store.h>

struct store_case {
    const char *name;
    const char *alg;        /* EVP_PKEY_Q_keygen's type */
    int tls12;              /* also TLS 1.2 */
};

/*
 * The key and its certificate are made by a child process, which writes
 * the PEM key, the certificate and the private key's raw bytes stored
 * complemented (so the scan's pattern never exists in plain in U).
 */
static void
store_files(const struct store_case *sc, char *keyf, char *certf, char *rawf)
{
    pid_t pid;
    int st;

    snprintf(keyf, 64, "/tmp/tp-%d-%s.key.pem", (int)getpid(), sc->name);
    snprintf(certf, 64, "/tmp/tp-%d-%s.crt.pem", (int)getpid(), sc->name);
    snprintf(rawf, 64, "/tmp/tp-%d-%s.raw", (int)getpid(), sc->name);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        EVP_PKEY *k = strcmp(sc->alg, "EC") == 0
            ? EVP_PKEY_Q_keygen(client_lib, NULL, "EC", "P-256")
            : strcmp(sc->alg, "RSA") == 0
            ? EVP_PKEY_Q_keygen(client_lib, NULL, "RSA", (size_t)2048)
            : EVP_PKEY_Q_keygen(client_lib, NULL, sc->alg);
        X509 *x = NULL;
        FILE *f;
        unsigned char raw[512];
        size_t rawlen = 0, i;
        BIGNUM *bn = NULL;
        int ok = k != NULL && make_cert(k, &x);

        if (ok && strcmp(sc->alg, "ED25519") == 0) {
            rawlen = 32;
            ok = EVP_PKEY_get_raw_private_key(k, raw, &rawlen);
        } else if (ok) {
            ok = EVP_PKEY_get_bn_param(k, strcmp(sc->alg, "EC") == 0
                ? OSSL_PKEY_PARAM_PRIV_KEY : OSSL_PKEY_PARAM_RSA_D, &bn);
            rawlen = ok ? (size_t)BN_bn2bin(bn, raw) : 0;
        }
        for (i = 0; i < rawlen; i++)
            raw[i] = (unsigned char)~raw[i];
        ok = ok && (f = fopen(keyf, "w")) != NULL
            && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
            && fclose(f) == 0
            && (f = fopen(certf, "w")) != NULL && PEM_write_X509(f, x)
            && fclose(f) == 0
            && (f = fopen(rawf, "w")) != NULL
            && fwrite(raw, 1, rawlen, f) == rawlen && fclose(f) == 0;
        if (!ok)
            ERR_print_errors_fp(stderr);
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static EVP_PKEY *
store_load_key(const char *keyf)
{
    char uri[96];
    OSSL_STORE_CTX *sctx;
    OSSL_STORE_INFO *info;
    EVP_PKEY *k = NULL;

    snprintf(uri, sizeof(uri), "keystore:%s", keyf);
    sctx = OSSL_STORE_open_ex(uri, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    if (sctx == NULL)
        return NULL;
    while (k == NULL && !OSSL_STORE_eof(sctx)
           && (info = OSSL_STORE_load(sctx)) != NULL) {
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            k = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(sctx);
    return k;
}

/* 1 if the complemented pattern's plain bytes are in a readable mapping
 * of this process outside T (T's ranges from KS_OP_RANGES) */
static int
in_u_memory(const unsigned char *cpat, size_t n)
{
    struct ks_range_out r[8];
    uint32_t nr = 0, j;
    struct ks_args_ranges ra = { r, &nr };
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512], perms[8];
    unsigned long lo, hi;
    int found = 0;

    assert_non_null(maps);
    assert_int_equal(ks_gate_call(KS_OP_RANGES, &ra), 0);
    while (!found && fgets(line, sizeof(line), maps) != NULL) {
        const unsigned char *p, *end;
        int in_t = 0;

        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3
            || perms[0] != 'r' || strstr(line, "[vvar") != NULL
            || strstr(line, "[vsyscall]") != NULL)
            continue;
        for (j = 0; j < nr; j++)
            if (lo < r[j].start + r[j].len && r[j].start < hi)
                in_t = 1;
        if (in_t)
            continue;
        for (p = (const unsigned char *)lo, end = (const unsigned char *)hi;
             !found && p + n <= end; p++) {
            size_t i;

            if ((*p ^ cpat[0]) != 0xff)
                continue;
            for (i = 1; i < n && (p[i] ^ cpat[i]) == 0xff; i++)
                ;
            found = i == n;
        }
    }
    fclose(maps);
    return found;
}

static void
store_handshake(EVP_PKEY *k, X509 *x, int version, const char *group)
{
    SSL_CTX *sctx = SSL_CTX_new_ex(NULL, NULL, TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new_ex(client_lib, NULL, TLS_client_method());
    SSL *c, *s;

    assert_non_null(sctx);
    assert_non_null(cctx);
    assert_int_equal(SSL_CTX_use_certificate(sctx, x), 1);
    if (SSL_CTX_use_PrivateKey(sctx, k) != 1) {
        ERR_print_errors_fp(stderr);
        fail_msg("SSL_CTX_use_PrivateKey");
    }
    assert_int_equal(SSL_CTX_check_private_key(sctx), 1);
    assert_true(SSL_CTX_set_min_proto_version(sctx, version)
        && SSL_CTX_set_max_proto_version(sctx, version)
        && SSL_CTX_set_min_proto_version(cctx, version)
        && SSL_CTX_set_max_proto_version(cctx, version)
        && SSL_CTX_set1_groups_list(sctx, group)
        && SSL_CTX_set1_groups_list(cctx, group));
    /* the client checks the chain too: the certificate is its anchor */
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), x), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    connect_pair(cctx, sctx, &c, &s);
    if (!try_handshake(c, s)) {
        ERR_print_errors_fp(stderr);
        fail_msg("handshake failed");
    }
    assert_int_equal(SSL_get_verify_result(c), X509_V_OK);
    assert_int_equal(SSL_version(s), version);
    records(c, s);
    close_pair(c, s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

static void
store_keys(void **state)
{
    const struct store_case *sc = *state;
    char keyf[64], certf[64], rawf[64];
    unsigned char cpat[512];
    size_t n;
    FILE *f;
    X509 *x;
    EVP_PKEY *k, *uk;
    uint64_t before = op_calls[KS_OP_SIGN];
    unsigned char der[16];
    unsigned char *pd = der;

    store_files(sc, keyf, certf, rawf);
    assert_non_null(f = fopen(rawf, "r"));
    n = fread(cpat, 1, sizeof(cpat), f);
    fclose(f);
    assert_true(n >= 32);
    assert_non_null(f = fopen(certf, "r"));
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);

    k = store_load_key(keyf);
    if (k == NULL) {
        ERR_print_errors_fp(stderr);
        fail_msg("OSSL_STORE keystore:%s", keyf);
    }
    assert_true(EVP_PKEY_is_a(k, sc->alg));
    assert_string_equal(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(k)),
        KS_PROVIDER_NAME);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
    assert_int_equal(EVP_PKEY_get_bits(k),
        EVP_PKEY_get_bits(X509_get0_pubkey(x)));
    assert_int_equal(EVP_PKEY_get_security_bits(k),
        EVP_PKEY_get_security_bits(X509_get0_pubkey(x)));
    assert_int_equal(EVP_PKEY_get_size(k),
        EVP_PKEY_get_size(X509_get0_pubkey(x)));
    /* never the private part, in any form */
    assert_true(i2d_PrivateKey(k, NULL) <= 0 || i2d_PrivateKey(k, &pd) <= 0
        || pd == der);
    ERR_clear_error();

    store_handshake(k, x, TLS1_3_VERSION, "X25519");
    if (sc->tls12)
        store_handshake(k, x, TLS1_2_VERSION, "P-256");
    assert_true(op_calls[KS_OP_SIGN] >= before + 1 + (sc->tls12 ? 1 : 0));

    /* the private key is nowhere in U ... */
    assert_false(in_u_memory(cpat, n));
    /* ... and the scan finds it once U decodes the file (control) */
    assert_non_null(f = fopen(keyf, "r"));
    uk = PEM_read_PrivateKey_ex(f, NULL, NULL, NULL, client_lib, NULL);
    fclose(f);
    assert_non_null(uk);
    assert_true(in_u_memory(cpat, n));
    EVP_PKEY_free(uk);
    print_message("# %s: key from keystore:%s, %s handshake(s), "
        "private key not in U (found after PEM_read in U: control)\n",
        sc->name, keyf, sc->tls12 ? "TLS 1.3 + 1.2" : "TLS 1.3");
    EVP_PKEY_free(k);
    X509_free(x);
    unlink(keyf);
    unlink(certf);
    unlink(rawf);
}

static const struct store_case store_cases[] = {
    { "EC P-256", "EC", 1 },
    { "RSA-2048", "RSA", 1 },
    { "Ed25519", "ED25519", 0 },
};

static void
store_refuses(void **state)
{
    EVP_PKEY *k;
    FILE *f;

    (void)state;
    ERR_clear_error();
    assert_null(store_load_key("/nonexistent/key.pem"));
    assert_non_null(f = fopen("/tmp/tp-bad.pem", "w"));
    fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_null(k = store_load_key("/tmp/tp-bad.pem"));
    unlink("/tmp/tp-bad.pem");
    ERR_clear_error();
}

/* ---- the sealing key file: ks_seal_key_load_file ------------------------- */

/* A token made in T from a raw secret: a marked TLS13-KDF extract (its
 * output is sealed with the keystore's sealing key) */
static int
seal_token(const unsigned char *secret, unsigned char *tok)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
    EVP_KDF_CTX *kc = kdf == NULL ? NULL : EVP_KDF_CTX_new(kdf);
    int mode = EVP_KDF_HKDF_MODE_EXTRACT_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, 32),
        /* as libssl's tls13_generate_secret: prefix "tls13 ", label
         * "derived" (T refuses any other extract label); no salt */
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_LABEL, (void *)"derived", 7),
        OSSL_PARAM_utf8_string("mpktls-out", "secret", 0),
        OSSL_PARAM_END
    };
    int ok = kc != NULL && EVP_KDF_derive(kc, tok, 32, p) > 0;

    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    return ok;
}

/* A child process's keystore (fork: its own T, same sealing key unless
 * it loads a file or makes a new key): the token of secret, via a pipe */
static void
child_token(const char *keyfile, const unsigned char *secret,
    unsigned char *tok)
{
    int fds[2], st;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        unsigned char t[32];
        int ok = (keyfile == NULL
                  || ks_seal_key_load_file(keyfile, err, sizeof(err)) == 0)
                 && seal_token(secret, t)
                 && write(fds[1], t, 32) == 32;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], tok, 32), 32);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
seal_key_file(void **state)
{
    static const char *kf = "/tmp/tp-seal.key", *bad = "/tmp/tp-seal-bad.key";
    unsigned char key[32], secret[32], t0[32], t1[32], t2[32];
    char err[256];
    FILE *f;

    (void)state;
    assert_int_equal(RAND_bytes(key, 32), 1);
    assert_int_equal(RAND_bytes(secret, 32), 1);
    umask(077);
    assert_non_null(f = fopen(kf, "w"));
    assert_int_equal(fwrite(key, 1, 32, f), 32);
    fclose(f);
    /* before: this keystore's random key */
    assert_true(seal_token(secret, t0));
    /* two processes loading the file make the same token */
    child_token(kf, secret, t1);
    child_token(kf, secret, t2);
    assert_memory_equal(t1, t2, 32);
    assert_memory_not_equal(t0, t1, 32);
    /* and a keystore with its own random key does not */
    assert_int_equal(ks_seal_key_load_file(kf, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_true(seal_token(secret, t0));
    assert_memory_equal(t0, t1, 32);
    /* bad files: refused with the message naming them; the key is kept */
    assert_int_equal(ks_seal_key_load_file("/nonexistent/seal", err,
                         sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/seal"));
    print_message("# missing file: %s\n", err);
    assert_non_null(f = fopen(bad, "w"));
    fputs("short", f);
    fclose(f);
    assert_int_equal(ks_seal_key_load_file(bad, err, sizeof(err)), -1);
    assert_non_null(strstr(err, bad));
    print_message("# short file: %s\n", err);
    chmod(kf, 0644);
    assert_int_equal(ks_seal_key_load_file(kf, err, sizeof(err)), -1);
    print_message("# mode 0644: %s\n", err);
    assert_int_equal(ks_seal_key_load_file("", err, sizeof(err)), -1);
    assert_int_equal(ks_seal_key_load_file(kf, err, 0), -1);
    assert_true(seal_token(secret, t2));
    assert_memory_equal(t0, t2, 32);        /* the loaded key is kept */
    unlink(kf);
    unlink(bad);
    OPENSSL_cleanse(key, sizeof(key));
}

/* ---- main --------------------------------------------------------------------- */

static int
setup(void)
{
    /* primed before anything signs with the default's EC key:
     * ks_provider.h */
    if (!provider_setup(&default_prov, &ks_prov))
        return 0;
    client_lib = OSSL_LIB_CTX_new();
    if (client_lib == NULL
        || (client_default = OSSL_PROVIDER_load(client_lib, "default")) == NULL)
        return 0;
    /* the certificates' keys: the default provider's (see make_cert) */
    cert_key = EVP_PKEY_Q_keygen(NULL, "provider=default", "EC", "P-256");
    rsa_key = EVP_PKEY_Q_keygen(NULL, "provider=default", "RSA", (size_t)2048);
    return make_cert(cert_key, &cert) && make_cert(rsa_key, &rsa_cert)
        && RAND_bytes(ticket_keys, sizeof(ticket_keys)) == 1;
}

/* Test names: the case's, with a prefix (kept for the whole run) */
static const char *
test_name(const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *s = malloc(n);

    if (s == NULL)
        abort();
    snprintf(s, n, "%s%s", prefix, name);
    return s;
}

#define T(fn) tests[n++] = (struct CMUnitTest)cmocka_unit_test(fn)
#define TS(prefix, fn, st) tests[n++] = (struct CMUnitTest) \
    { test_name(prefix, (st)->name), fn, NULL, NULL, (void *)(st) }
#define TC(prefix, fn, st) tests[n++] = (struct CMUnitTest) \
    { test_name(prefix, (st)->name), fn, not_preferred, preferred_again, \
      (void *)(st) }

int
main(void)
{
    int failed;
    size_t i, n = 0;
    struct CMUnitTest tests[2 * NCASES + 40];

    T(fetches);
    T(unmarked_forwarded);
    T(private_keys_stay_in_t);
    T(no_private_import);
    T(no_private_import_ec);
    T(default_keys_still_work);
    T(tls12_records_match_default);
    T(prf_marks_refused);
    for (i = 0; i < NCASES; i++)
        TS("keystore: ", tls_keystore, &cases[i]);
    for (i = 0; i < NCASES; i++)
        TC("control: ", tls_control, &cases[i]);
    TS("resumption: ", resumption, &cases[0]);
    TS("resumption: ", resumption, &cases[FIRST_TLS12]);
    TS("resumption: ", resumption, &cases[FIRST_TLS12 + 2]);
    T(tls13_key_update);
    TS("both sides: ", both_sides_keystore, &cases[0]);
    TS("both sides: ", both_sides_keystore, &cases[5]);
    TS("both sides: ", both_sides_keystore, &cases[7]);
    TS("both sides: ", both_sides_keystore, &cases[9]);
    TS("both sides: ", both_sides_keystore, &cases[FIRST_TLS12]);
    TS("both sides: ", both_sides_keystore, &cases[FIRST_TLS12 + 3]);
    TS("bad record: ", bad_record, &cases[0]);
    TS("bad record: ", bad_record, &cases[5]);
    TS("bad record: ", bad_record, &cases[FIRST_TLS12]);
    TS("bad record: ", bad_record, &cases[FIRST_TLS12 + 2]);
    T(method_cache_order);
    for (i = 0; i < sizeof(store_cases) / sizeof(store_cases[0]); i++)
        TS("store: ", store_keys, &store_cases[i]);
    T(store_refuses);
    T(seal_key_file);
    T(other_hybrids_fail_closed);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
        other_hybrids_control, not_preferred, preferred_again);

    if (!setup()) {
        ERR_print_errors_fp(stderr);
        fprintf(stderr, "cannot set up the keystore provider\n");
        return 1;
    }
    failed = _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
    X509_free(cert);
    X509_free(rsa_cert);
    EVP_PKEY_free(cert_key);
    EVP_PKEY_free(rsa_key);
    OSSL_PROVIDER_unload(client_default);
    OSSL_LIB_CTX_free(client_lib);
    OSSL_PROVIDER_unload(ks_prov);
    OSSL_PROVIDER_unload(default_prov);
    return failed;
}
