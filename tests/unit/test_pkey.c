/*
 * Tests of key exchange, KEM and signatures in T (ks_op_kex.c,
 * ks_op_sign.c; needs MPK: runs natively on a CPU with pku, else in the
 * QEMU guest).
 *
 * Linked against libkeystore-test.so (for KS_OP_TEST_SEAL, which unseals
 * T's tokens so they can be compared) and, statically, against the pinned
 * OpenSSL 3.5.7 libcrypto, which plays the peer in U: the system's 3.0 has
 * no ML-KEM.  The keystore's own copy of 3.5.7 is hidden inside the
 * library (private_libcrypto_is_separate shows the two do not meet).
 *
 * The long-term keys are made at run time by a child process that exits
 * afterwards, so this process never holds them: what it finds of them in
 * its own memory after loading them into T can only have leaked from T.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_MAJOR != 3 || OPENSSL_VERSION_MINOR != 5
#error "test_pkey needs the pinned OpenSSL 3.5 headers (ML-KEM), not 3.0"
#endif

#include "ks_test.h"

#define SENTINEL  0xa5

/* ---- the groups, as the keystore and libssl name them ------------------- */

struct group {
    uint32_t     id;
    const char  *name;
    const char  *alg, *realname;
    size_t       publen, secretlen, ctlen;
};

static const struct group groups[] = {
    { KS_GROUP_X25519, "X25519", "X25519", "X25519", 32, 32, 0 },
    { KS_GROUP_X448, "X448", "X448", "X448", 56, 56, 0 },
    { KS_GROUP_P256, "P-256", "EC", "prime256v1", 65, 32, 0 },
    { KS_GROUP_P384, "P-384", "EC", "secp384r1", 97, 48, 0 },
    { KS_GROUP_P521, "P-521", "EC", "secp521r1", 133, 66, 0 },
    { KS_GROUP_X25519MLKEM768, "X25519MLKEM768", "X25519MLKEM768", "",
      1216, 64, 1120 },
};
#define NGROUPS  (sizeof(groups) / sizeof(groups[0]))
#define G_MLKEM  (&groups[NGROUPS - 1])

/* ---- the long-term keys (made by a child at setup) ---------------------- */

#define KEY_DIR  "/tmp/test_pkey"

struct key {
    const char  *name;          /* file KEY_DIR/name.pem, .spki */
    int          kind;          /* 'r' RSA, 'e' ECDSA, 'd' Ed25519 */
    int          bits;          /* expected maximum signature length */
};

static const struct key keys[] = {
    { "rsa2048", 'r', 256 },
    { "p256", 'e', 72 },
    { "ed25519", 'd', 64 },
};
#define NKEYS  (sizeof(keys) / sizeof(keys[0]))

/*
 * Byte strings of the private keys (and a base64 line of each PEM), as the
 * child wrote them: XORed with MASK, so that this process never holds them
 * in clear and finding one in memory means it came from elsewhere.
 */
#define MASK      0x5a
#define NEEDLES   32

struct needle {
    char           what[24];
    size_t         len;
    unsigned char  x[512];      /* the bytes ^ MASK */
};

static struct needle  needles[NEEDLES];
static unsigned       nneedles;

static void
path_of(char *buf, size_t n, const char *name, const char *ext)
{
    snprintf(buf, n, "%s/%s.%s", KEY_DIR, name, ext);
}

static int
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f != NULL && fwrite(data, 1, len, f) == len;

    return (f != NULL && fclose(f) == 0 && ok) ? 0 : -1;
}

static void
add_needle(FILE *nf, const char *what, const unsigned char *b, size_t len,
    int reversed)
{
    unsigned char x[512];
    size_t i;

    if (len > sizeof(x)) {
        return;
    }
    for (i = 0; i < len; i++) {
        x[i] = b[reversed ? len - 1 - i : i] ^ MASK;
    }
    fwrite(what, 1, 24, nf);
    fwrite(&len, sizeof(len), 1, nf);
    fwrite(x, 1, len, nf);
}

/* A BIGNUM parameter in both byte orders: big-endian as in the DER, and
 * little-endian as a BIGNUM's limbs sit in memory on x86-64. */
static int
add_bn_needle(FILE *nf, EVP_PKEY *pk, const char *param, const char *what,
    size_t len)
{
    unsigned char b[512];
    BIGNUM *bn = NULL;
    char w[24];

    if (!EVP_PKEY_get_bn_param(pk, param, &bn)
        || BN_bn2binpad(bn, b, (int) len) != (int) len)
    {
        BN_free(bn);
        return -1;
    }
    memset(w, 0, sizeof(w));
    snprintf(w, sizeof(w), "%s BE", what);
    add_needle(nf, w, b, len, 0);
    snprintf(w, sizeof(w), "%s LE", what);
    add_needle(nf, w, b, len, 1);
    BN_clear_free(bn);
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

/* Line number lineno of a PEM file, base64 of the private key: one from
 * the middle, which a freed stdio buffer keeps (allocators reuse the
 * first bytes of a freed block for their lists). */
static int
add_pem_needle(FILE *nf, const char *name, int lineno)
{
    char path[256], line[256], w[24];
    FILE *f;
    int ok = 1, i;

    path_of(path, sizeof(path), name, "pem");
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    for (i = 0; ok && i < lineno; i++) {
        ok = fgets(line, sizeof(line), f) != NULL;
    }
    ok = ok && strlen(line) > 40 && strncmp(line, "-----", 5) != 0;
    fclose(f);
    if (ok) {
        memset(w, 0, sizeof(w));
        snprintf(w, sizeof(w), "%s PEM", name);
        add_needle(nf, w, (unsigned char *) line, strcspn(line, "\n"), 0);
    }
    OPENSSL_cleanse(line, sizeof(line));
    return ok ? 0 : -1;
}

static EVP_PKEY *
gen_sig_key(const char *alg, const char *group, int bits)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    EVP_PKEY *pk = NULL;

    if (c == NULL || EVP_PKEY_keygen_init(c) <= 0
        || (group != NULL && EVP_PKEY_CTX_set_group_name(c, group) <= 0)
        || (bits > 0 && EVP_PKEY_CTX_set_rsa_keygen_bits(c, bits) <= 0)
        || EVP_PKEY_keygen(c, &pk) <= 0)
    {
        pk = NULL;
    }
    EVP_PKEY_CTX_free(c);
    return pk;
}

/* Write name.pem (PKCS#8, or traditional if trad) and name.spki. */
static int
write_key(const char *name, EVP_PKEY *pk, int trad)
{
    char path[256];
    unsigned char *der = NULL;
    BIO *b;
    int ok, n;

    path_of(path, sizeof(path), name, "pem");
    b = BIO_new_file(path, "w");
    ok = b != NULL
         && (trad ? PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0,
                                                          NULL, NULL)
                  : PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL));
    BIO_free(b);
    n = i2d_PUBKEY(pk, &der);
    path_of(path, sizeof(path), name, "spki");
    ok = ok && n > 0 && write_file(path, der, (size_t) n) == 0;
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

/* In the child: every key file, and the masked needles. */
static int
make_keys(void)
{
    EVP_PKEY *rsa = gen_sig_key("RSA", NULL, 2048);
    EVP_PKEY *p256 = gen_sig_key("EC", "P-256", 0);
    EVP_PKEY *ed = gen_sig_key("ED25519", NULL, 0);
    EVP_PKEY *p521 = gen_sig_key("EC", "P-521", 0);
    unsigned char raw[32];
    size_t rawlen = sizeof(raw);
    char path[256];
    FILE *nf;
    BIO *b;
    int ok;

    if (rsa == NULL || p256 == NULL || ed == NULL || p521 == NULL) {
        return -1;
    }
    ok = write_key("rsa2048", rsa, 0) == 0
         && write_key("p256", p256, 1) == 0     /* "EC PRIVATE KEY" */
         && write_key("ed25519", ed, 0) == 0
         && write_key("p521", p521, 0) == 0;    /* a curve T refuses */
    /* an encrypted key: T must fail, not prompt for a passphrase */
    path_of(path, sizeof(path), "encrypted", "pem");
    b = BIO_new_file(path, "w");
    ok = ok && b != NULL
         && PEM_write_bio_PrivateKey(b, p256, EVP_aes_256_cbc(),
                                     (unsigned char *) "secret", 6, NULL, NULL);
    BIO_free(b);
    path_of(path, sizeof(path), "notakey", "pem");
    ok = ok && write_file(path, "hello, not a key\n", 17) == 0;

    path_of(path, sizeof(path), "needles", "bin");
    nf = fopen(path, "wb");
    ok = ok && nf != NULL
         && add_bn_needle(nf, rsa, OSSL_PKEY_PARAM_RSA_FACTOR1, "rsa p",
                          128) == 0
         && add_bn_needle(nf, rsa, OSSL_PKEY_PARAM_RSA_FACTOR2, "rsa q",
                          128) == 0
         && add_bn_needle(nf, rsa, OSSL_PKEY_PARAM_RSA_D, "rsa d", 256) == 0
         && add_bn_needle(nf, p256, OSSL_PKEY_PARAM_PRIV_KEY, "p256 k", 32) == 0
         && EVP_PKEY_get_raw_private_key(ed, raw, &rawlen) == 1 && rawlen == 32
         && add_pem_needle(nf, "rsa2048", 12) == 0
         && add_pem_needle(nf, "p256", 3) == 0
         && add_pem_needle(nf, "ed25519", 2) == 0;
    if (ok) {
        add_needle(nf, "ed25519 seed", raw, 32, 0);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    ok = nf != NULL && fclose(nf) == 0 && ok;
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(p521);
    return ok ? 0 : -1;
}

static int
load_needles(void)
{
    char path[256];
    FILE *f;

    path_of(path, sizeof(path), "needles", "bin");
    f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }
    while (nneedles < NEEDLES) {
        struct needle *n = &needles[nneedles];

        if (fread(n->what, 1, 24, f) != 24
            || fread(&n->len, sizeof(n->len), 1, f) != 1
            || n->len > sizeof(n->x) || fread(n->x, 1, n->len, f) != n->len)
        {
            break;
        }
        n->what[23] = '\0';
        nneedles++;
    }
    fclose(f);
    /* RSA p, q, d and the P-256 scalar in two byte orders, 3 PEM lines,
     * the Ed25519 seed */
    if (nneedles != 3 * 2 + 2 + 3 + 1) {
        fprintf(stderr, "%s: %u needles\n", path, nneedles);
        return -1;
    }
    return 0;
}

/* ---- the gate and T ---------------------------------------------------- */

/* The keystore and its T ranges (ks_test.h), then the keys. */
static int
setup(void **state)
{
    pid_t pid;
    int status;

    if (setup_keystore(state) != 0) {
        return -1;
    }
    /* the keys are made (RSA-2048 once: slow in the emulator) by a child,
     * so that this process never holds them */
    mkdir(KEY_DIR, 0700);
    pid = fork();
    if (pid == 0) {
        _exit(make_keys() == 0 ? 0 : 1);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)
        || WEXITSTATUS(status) != 0)
    {
        fprintf(stderr, "cannot make the test keys\n");
        return -1;
    }
    if (load_needles() != 0) {
        fprintf(stderr, "cannot read the masked keys\n");
        return -1;
    }
    return 0;
}

static long
t_keygen(const struct group *g, uint64_t *h, unsigned char *pub)
{
    size_t n = 0;
    struct ks_args_kex_keygen a = { g->id, h, pub, 2048, &n };
    long rc = ks_gate_call(KS_OP_KEX_KEYGEN, &a);

    if (rc == 0) {
        assert_int_equal(n, g->publen);
    }
    return rc;
}

static long
t_derive(uint64_t h, const unsigned char *peer, size_t peerlen,
    unsigned char *secret, size_t secretlen)
{
    struct ks_args_kex_derive a = { h, peer, peerlen, secret, secretlen };

    return ks_gate_call(KS_OP_KEX_DERIVE, &a);
}

static long
t_encap(uint32_t group, const unsigned char *peer, size_t peerlen,
    unsigned char *ct, size_t ctlen, size_t *ct_written,
    unsigned char *secret, size_t secretlen)
{
    struct ks_args_kem_encap a = { group, peer, peerlen, ct, ctlen,
                                   ct_written, secret, secretlen };

    return ks_gate_call(KS_OP_KEM_ENCAP, &a);
}

static long
t_decap(uint64_t h, const unsigned char *ct, size_t ctlen,
    unsigned char *secret, size_t secretlen)
{
    struct ks_args_kem_decap a = { h, ct, ctlen, secret, secretlen };

    return ks_gate_call(KS_OP_KEM_DECAP, &a);
}

static long
t_load(const char *path, size_t pathlen, uint64_t *h, unsigned char *pub,
    size_t publen, size_t *pub_written)
{
    struct ks_args_pkey_load a = { path, pathlen, h, pub, publen, pub_written };

    return ks_gate_call(KS_OP_PKEY_LOAD, &a);
}

static long
t_load_key(const char *name, uint64_t *h, unsigned char *spki, size_t *n)
{
    char path[256];

    path_of(path, sizeof(path), name, "pem");
    return t_load(path, strlen(path), h, spki, 1024, n);
}

static long
t_sign(uint64_t h, uint32_t md, uint32_t padding, const void *tbs,
    size_t tbslen, unsigned char *sig, size_t siglen, size_t *written)
{
    struct ks_args_sign a = { h, md, padding, tbs, tbslen, sig, siglen,
                              written };

    return ks_gate_call(KS_OP_SIGN, &a);
}

/* ---- the peer, in U, with the 3.5.7 libcrypto --------------------------- */

static EVP_PKEY *
u_keygen(const struct group *g)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, g->alg, NULL);
    EVP_PKEY *pk = NULL;

    assert_non_null(c);
    assert_true(EVP_PKEY_keygen_init(c) > 0);
    assert_true(EVP_PKEY_CTX_set_group_name(c, g->realname) > 0);
    assert_true(EVP_PKEY_keygen(c, &pk) > 0);
    EVP_PKEY_CTX_free(c);
    return pk;
}

static void
u_pub(EVP_PKEY *pk, const struct group *g, unsigned char *out)
{
    unsigned char *p = NULL;
    size_t n = EVP_PKEY_get1_encoded_public_key(pk, &p);

    assert_int_equal(n, g->publen);
    memcpy(out, p, n);
    OPENSSL_free(p);
}

/* The other side's key from its encoding, as libssl imports it. */
static EVP_PKEY *
u_peer(const struct group *g, const unsigned char *enc)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, g->alg, NULL);
    EVP_PKEY *pk = NULL;

    assert_non_null(c);
    assert_true(EVP_PKEY_paramgen_init(c) > 0);
    assert_true(EVP_PKEY_CTX_set_group_name(c, g->realname) > 0);
    assert_true(EVP_PKEY_paramgen(c, &pk) > 0);
    assert_true(EVP_PKEY_set1_encoded_public_key(pk, enc, g->publen) > 0);
    EVP_PKEY_CTX_free(c);
    return pk;
}

static void
u_derive(EVP_PKEY *priv, const struct group *g, const unsigned char *peer,
    unsigned char *ss)
{
    EVP_PKEY *pub = u_peer(g, peer);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    size_t n = g->secretlen;

    assert_true(EVP_PKEY_derive_init(c) > 0);
    assert_true(EVP_PKEY_derive_set_peer(c, pub) > 0);
    assert_true(EVP_PKEY_derive(c, ss, &n) > 0);
    assert_int_equal(n, g->secretlen);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pub);
}

/* ---- tests --------------------------------------------------------------- */

static void
private_libcrypto_is_separate(void **state)
{
    Dl_info info;
    uint64_t before;
    EVP_PKEY *pk;

    (void) state;
    assert_int_equal(OpenSSL_version_num(), 0x30500070UL);
    assert_int_equal(ks_private_openssl_version(), 0x30500070UL);
    /* our EVP calls bind to the copy in this executable, not the library's */
    assert_true(dladdr((void *) EVP_PKEY_new, &info) != 0);
    assert_null(strstr(info.dli_fname, "libkeystore"));
    assert_true(dladdr((void *) ks_gate_call, &info) != 0);
    assert_non_null(strstr(info.dli_fname, "libkeystore-test.so"));
    assert_null(dlsym(RTLD_DEFAULT, "EVP_PKEY_new"));   /* nothing exported */
    /* and its allocations are U's: the T heap does not move */
    before = heap_bytes();
    pk = u_keygen(G_MLKEM);
    assert_int_equal(heap_bytes(), before);
    EVP_PKEY_free(pk);
}

/* (EC)DH for every group: both sides agree, and only T can read T's copy. */
static void
kex_every_group(void **state)
{
    unsigned i;

    (void) state;
    for (i = 0; i < NGROUPS - 1; i++) {
        const struct group *g = &groups[i];
        unsigned char tpub[2048], upub[2048];
        unsigned char ss[80], token[80], token2[80], clear[80];
        uint64_t h = 0;
        EVP_PKEY *u;

        assert_int_equal(t_keygen(g, &h, tpub), 0);
        assert_int_not_equal(h, 0);
        assert_int_equal(h & 0xff, KS_HT_KEX);
        u = u_keygen(g);
        u_pub(u, g, upub);
        u_derive(u, g, tpub, ss);

        memset(token, SENTINEL, sizeof(token));
        assert_int_equal(t_derive(h, upub, g->publen, token, g->secretlen), 0);
        assert_int_equal(token[g->secretlen], SENTINEL);    /* no more */
        unseal(KS_SEAL_SECRET, token, clear, g->secretlen);
        assert_memory_equal(clear, ss, g->secretlen);
        /* sealing is on: what U holds is not the secret */
        assert_memory_not_equal(token, ss, g->secretlen);
        /* deterministic (tickets and caches depend on it) */
        assert_int_equal(t_derive(h, upub, g->publen, token2, g->secretlen), 0);
        assert_memory_equal(token, token2, g->secretlen);

        assert_int_equal(free_handle(h), 0);
        EVP_PKEY_free(u);
    }
}

/* T as the TLS 1.3 server: encapsulate to the client's share in one call. */
static void
mlkem_t_server(void **state)
{
    const struct group *g = G_MLKEM;
    unsigned char cpub[1216], ct[1200], token[64], ss[64], clear[64];
    EVP_PKEY *client = u_keygen(g);
    EVP_PKEY_CTX *c;
    size_t ctlen = 0, sslen = sizeof(ss);

    (void) state;
    u_pub(client, g, cpub);
    memset(ct, SENTINEL, sizeof(ct));
    assert_int_equal(t_encap(g->id, cpub, sizeof(cpub), ct, sizeof(ct),
                             &ctlen, token, sizeof(token)), 0);
    assert_int_equal(ctlen, 1120);
    assert_int_equal(ct[1120], SENTINEL);

    /* the client decapsulates as libssl does */
    c = EVP_PKEY_CTX_new_from_pkey(NULL, client, NULL);
    assert_true(EVP_PKEY_decapsulate_init(c, NULL) > 0);
    assert_true(EVP_PKEY_decapsulate(c, ss, &sslen, ct, ctlen) > 0);
    assert_int_equal(sslen, 64);
    EVP_PKEY_CTX_free(c);

    unseal(KS_SEAL_SECRET, token, clear, 64);
    assert_memory_equal(clear, ss, 64);
    assert_memory_not_equal(token, ss, 64);
    /* neither half in clear: ML-KEM ss || X25519 ss, sealed as one */
    assert_memory_not_equal(token, ss, 32);
    assert_memory_not_equal(token + 32, ss + 32, 32);
    EVP_PKEY_free(client);
}

/* T as the client: its key share from KEYGEN, the server's ct to DECAP. */
static void
mlkem_t_client(void **state)
{
    const struct group *g = G_MLKEM;
    unsigned char tpub[2048], ct[1120], ss[64], token[64], clear[64];
    size_t ctlen = sizeof(ct), sslen = sizeof(ss);
    EVP_PKEY *server;
    EVP_PKEY_CTX *c;
    uint64_t h = 0;

    (void) state;
    assert_int_equal(t_keygen(g, &h, tpub), 0);
    server = u_peer(g, tpub);
    c = EVP_PKEY_CTX_new_from_pkey(NULL, server, NULL);
    assert_true(EVP_PKEY_encapsulate_init(c, NULL) > 0);
    assert_true(EVP_PKEY_encapsulate(c, ct, &ctlen, ss, &sslen) > 0);
    assert_int_equal(ctlen, 1120);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(server);

    assert_int_equal(t_decap(h, ct, ctlen, token, sizeof(token)), 0);
    unseal(KS_SEAL_SECRET, token, clear, 64);
    assert_memory_equal(clear, ss, 64);
    assert_memory_not_equal(token, ss, 64);

    /* a tampered ML-KEM ciphertext: implicit rejection, another secret */
    ct[10] ^= 1;
    assert_int_equal(t_decap(h, ct, ctlen, token, sizeof(token)), 0);
    unseal(KS_SEAL_SECRET, token, clear, 64);
    assert_memory_not_equal(clear, ss, 32);
    assert_memory_equal(clear + 32, ss + 32, 32);       /* X25519 half */
    assert_int_equal(free_handle(h), 0);
}

/* The call must fail with rc and leave the array buf as it was. */
#define ASSERT_REFUSED(rc, call, buf)                                    \
    do {                                                                 \
        memset((buf), SENTINEL, sizeof(buf));                            \
        assert_int_equal((call), (rc));                                  \
        assert_true(all_sentinel((buf), sizeof(buf)));                   \
    } while (0)

static int
all_sentinel(const unsigned char *b, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (b[i] != SENTINEL) {
            return 0;
        }
    }
    return 1;
}

static void
bad_sizes_refused(void **state)
{
    unsigned char tpub[2048], upub[2048], ct[1200], out[128], pub[2048];
    size_t ctlen = 0, n = 0;
    uint64_t h = 0, hk = 0;
    uint64_t before;
    unsigned i;

    (void) state;
    for (i = 0; i < NGROUPS - 1; i++) {
        const struct group *g = &groups[i];
        EVP_PKEY *u = u_keygen(g);

        u_pub(u, g, upub);
        assert_int_equal(t_keygen(g, &h, tpub), 0);
        ASSERT_REFUSED(KS_ERR_ARG, t_derive(h, upub, g->publen - 1, out,
                                            g->secretlen), out);
        ASSERT_REFUSED(KS_ERR_ARG, t_derive(h, upub, g->publen + 1, out,
                                            g->secretlen), out);
        ASSERT_REFUSED(KS_ERR_ARG, t_derive(h, upub, g->publen, out,
                                            g->secretlen - 1), out);
        ASSERT_REFUSED(KS_ERR_ARG, t_derive(h, upub, g->publen, out,
                                            g->secretlen + 1), out);
        /* a key share of the right length that is no good: not a point
         * (EC), or the point 0 of order 1 (X25519/X448: all-zero secret) */
        if (strcmp(g->alg, "EC") == 0) {
            memset(upub + 1, 0xff, g->publen - 1);
        } else {
            memset(upub, 0, g->publen);
        }
        ASSERT_REFUSED(KS_ERR_CRYPTO, t_derive(h, upub, g->publen, out,
                                               g->secretlen), out);
        assert_int_equal(free_handle(h), 0);
        EVP_PKEY_free(u);

        /* no room for the public key: nothing made, no handle */
        {
            struct ks_args_kex_keygen a = { g->id, &h, pub, g->publen - 1, &n };

            before = heap_bytes();
            h = 0;
            ASSERT_REFUSED(KS_ERR_ARG, ks_gate_call(KS_OP_KEX_KEYGEN, &a), pub);
            assert_int_equal(h, 0);
            assert_int_equal(heap_bytes(), before);
        }
    }
    /* unknown groups */
    {
        struct ks_args_kex_keygen a = { 0, &h, pub, sizeof(pub), &n };

        ASSERT_REFUSED(KS_ERR_ARG, ks_gate_call(KS_OP_KEX_KEYGEN, &a), pub);
        a.group = KS_GROUP_X25519MLKEM768 + 1;
        ASSERT_REFUSED(KS_ERR_ARG, ks_gate_call(KS_OP_KEX_KEYGEN, &a), pub);
    }

    /* ENCAP: the share, the room for ct, the secret, and only for a KEM */
    {
        EVP_PKEY *u = u_keygen(G_MLKEM);

        u_pub(u, G_MLKEM, upub);
        EVP_PKEY_free(u);
    }
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(KS_GROUP_X25519MLKEM768, upub, 1215, ct,
                                       sizeof(ct), &ctlen, out, 64), ct);
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(KS_GROUP_X25519MLKEM768, upub, 1217, ct,
                                       sizeof(ct), &ctlen, out, 64), ct);
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(KS_GROUP_X25519MLKEM768, upub, 1216, ct,
                                       1119, &ctlen, out, 64), ct);
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(KS_GROUP_X25519MLKEM768, upub, 1216, ct,
                                       sizeof(ct), &ctlen, out, 63), ct);
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(KS_GROUP_X25519MLKEM768, upub, 1216, ct,
                                       sizeof(ct), &ctlen, out, 65), out);
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(KS_GROUP_X25519, upub, 32, ct,
                                       sizeof(ct), &ctlen, out, 32), ct);
    ASSERT_REFUSED(KS_ERR_ARG, t_encap(0, upub, 1216, ct, sizeof(ct), &ctlen,
                                       out, 64), ct);
    /* control */
    assert_int_equal(t_encap(KS_GROUP_X25519MLKEM768, upub, 1216, ct,
                             sizeof(ct), &ctlen, out, 64), 0);
    assert_int_equal(ctlen, 1120);

    /* DECAP: the ciphertext and the secret */
    assert_int_equal(t_keygen(G_MLKEM, &hk, tpub), 0);
    ASSERT_REFUSED(KS_ERR_ARG, t_decap(hk, ct, 1119, out, 64), out);
    ASSERT_REFUSED(KS_ERR_ARG, t_decap(hk, ct, 1121, out, 64), out);
    ASSERT_REFUSED(KS_ERR_ARG, t_decap(hk, ct, 1216, out, 64), out);
    ASSERT_REFUSED(KS_ERR_ARG, t_decap(hk, ct, 1120, out, 32), out);
    ASSERT_REFUSED(KS_ERR_ARG, t_decap(hk, ct, 1120, out, 65), out);
    /* control: a well-formed ciphertext (to another key: ML-KEM's implicit
     * rejection makes that a secret too) */
    assert_int_equal(t_decap(hk, ct, 1120, out, 64), 0);
    /* but not one whose X25519 share is the point 0 */
    memset(ct + 1088, 0, 32);
    ASSERT_REFUSED(KS_ERR_CRYPTO, t_decap(hk, ct, 1120, out, 64), out);
    assert_int_equal(free_handle(hk), 0);
}

static void
bad_handles_refused(void **state)
{
    unsigned char tpub[2048], upub[2048], out[128], sig[512], spki[1024];
    const struct group *g = &groups[0];     /* X25519 */
    uint64_t h = 0, hk = 0, hp = 0, bad[8];
    size_t n = 0;
    EVP_PKEY *u = u_keygen(g);
    unsigned i;

    (void) state;
    u_pub(u, g, upub);
    EVP_PKEY_free(u);
    assert_int_equal(t_keygen(g, &h, tpub), 0);
    assert_int_equal(t_keygen(G_MLKEM, &hk, tpub), 0);
    assert_int_equal(t_load_key("p256", &hp, spki, &n), 0);
    assert_int_equal(hp & 0xff, KS_HT_PKEY);
    /* controls */
    assert_int_equal(t_derive(h, upub, 32, out, 32), 0);
    assert_int_equal(t_sign(hp, KS_MD_SHA256, 0, "m", 1, sig, sizeof(sig), &n),
                     0);

    bad[0] = 0;
    bad[1] = h ^ ((uint64_t) 1 << 8);                   /* another slot */
    bad[2] = h + ((uint64_t) 1 << 28);                  /* generation */
    bad[3] = (h & ~(uint64_t) 0xff) | KS_HT_PKEY;       /* type */
    bad[4] = (h & ~(uint64_t) 0xff) | KS_HT_AEAD;
    bad[5] = hp;                                        /* a PKEY */
    bad[6] = hk;                    /* a KEM key share has no derive */
    bad[7] = ~(uint64_t) 0;
    for (i = 0; i < 8; i++) {
        ASSERT_REFUSED(KS_ERR_STATE, t_derive(bad[i], upub, 32, out, 32), out);
    }
    /* DECAP only with a KEM key share */
    memset(tpub, 0, 1120);
    ASSERT_REFUSED(KS_ERR_STATE, t_decap(h, tpub, 1120, out, 64), out);
    ASSERT_REFUSED(KS_ERR_STATE, t_decap(hp, tpub, 1120, out, 64), out);
    /* SIGN only with a PKEY */
    ASSERT_REFUSED(KS_ERR_STATE, t_sign(h, KS_MD_SHA256, 0, "m", 1, sig,
                                        sizeof(sig), &n), sig);
    ASSERT_REFUSED(KS_ERR_STATE, t_sign(hp ^ 0x100, KS_MD_SHA256, 0, "m", 1,
                                        sig, sizeof(sig), &n), sig);

    /* stale: after free, and a second free (h last: its slot is reused
     * first) */
    assert_int_equal(free_handle(hp), 0);
    assert_int_equal(free_handle(hk), 0);
    assert_int_equal(free_handle(h), 0);
    ASSERT_REFUSED(KS_ERR_STATE, t_derive(h, upub, 32, out, 32), out);
    ASSERT_REFUSED(KS_ERR_STATE, t_decap(hk, tpub, 1120, out, 64), out);
    ASSERT_REFUSED(KS_ERR_STATE, t_sign(hp, KS_MD_SHA256, 0, "m", 1, sig,
                                        sizeof(sig), &n), sig);
    assert_int_equal(free_handle(h), KS_ERR_STATE);
    assert_int_equal(free_handle(hk), KS_ERR_STATE);
    assert_int_equal(free_handle(hp), KS_ERR_STATE);
    /* a new key in the freed slot does not revive the old handle */
    assert_int_equal(t_keygen(g, &bad[0], tpub), 0);
    assert_int_equal(bad[0] & 0xfffff00, h & 0xfffff00);   /* same slot */
    assert_int_not_equal(bad[0], h);
    ASSERT_REFUSED(KS_ERR_STATE, t_derive(h, upub, 32, out, 32), out);
    assert_int_equal(t_derive(bad[0], upub, 32, out, 32), 0);
    assert_int_equal(free_handle(bad[0]), 0);
}

/*
 * The call must be refused with KS_ERR_ARG, leave the len bytes of T at t
 * as they were, and allocate nothing in T (no handle made and lost).
 */
static void
refused_at(uintptr_t t, size_t len, unsigned op, void *args)
{
    unsigned char before[2048], after[2048];
    uint64_t heap;
    struct ks_stats st;

    assert_true(len <= sizeof(before));
    peek(t, before, len);
    heap = heap_bytes();
    assert_int_equal(ks_gate_call(op, args), KS_ERR_ARG);
    assert_int_equal(ks_stats(&st), 0);
    assert_int_equal(st.t_heap_bytes, heap);
    peek(t, after, len);
    assert_memory_equal(before, after, len);
}

/*
 * Every pointer of every operation, pointed into T: at a live byte of the
 * keystore's data, in the heap, and straddling the start of the heap.
 */
static void
t_pointers_refused(void **state)
{
    unsigned char tpub[2048], upub[2048], ct[1200], out[128], sig[512];
    unsigned char spki[1024];
    char path[256];
    uint64_t h = 0, hk = 0, hp = 0, hx = 0;
    size_t n = 0;
    uintptr_t targets[3] = {
        ranges[R_DATA].start,
        ranges[R_HEAP].start + ranges[R_HEAP].len / 2,
        ranges[R_HEAP].start - 4,       /* 4 bytes of U, then T */
    };
    unsigned i;

    (void) state;
    {
        EVP_PKEY *u = u_keygen(G_MLKEM);

        u_pub(u, G_MLKEM, upub);
        EVP_PKEY_free(u);
    }
    assert_int_equal(t_keygen(&groups[0], &h, tpub), 0);
    assert_int_equal(t_keygen(G_MLKEM, &hk, tpub), 0);
    assert_int_equal(t_load_key("ed25519", &hp, spki, &n), 0);
    path_of(path, sizeof(path), "p256", "pem");

    for (i = 0; i < 3; i++) {
        /* p is the pointer passed, in the first byte of T it covers, d the
         * bytes of U before it: refused_at looks at the L - d bytes in T */
        size_t d = i == 2 ? 4 : 0;
        uintptr_t t = targets[i], in = t + d;
        void *p = (void *) t;

#define REFUSED(op, field, L) \
        do { a = ok; a.field = p; refused_at(in, (L) - d, (op), &a); } while (0)
        {
            struct ks_args_kex_keygen ok = { KS_GROUP_X25519, &hx, tpub, 1216,
                                             &n }, a;

            REFUSED(KS_OP_KEX_KEYGEN, handle, 8);
            REFUSED(KS_OP_KEX_KEYGEN, pub, 1216);
            REFUSED(KS_OP_KEX_KEYGEN, pub_written, 8);
        }
        /* DERIVE: reading a "key share" from T, writing the token to T */
        {
            struct ks_args_kex_derive ok = { h, upub, 32, out, 32 }, a;

            REFUSED(KS_OP_KEX_DERIVE, peer, 32);
            REFUSED(KS_OP_KEX_DERIVE, secret, 32);
        }
        {
            struct ks_args_kem_encap ok = { KS_GROUP_X25519MLKEM768, upub, 1216,
                                            ct, 1120, &n, out, 64 }, a;

            REFUSED(KS_OP_KEM_ENCAP, peer, 1216);
            REFUSED(KS_OP_KEM_ENCAP, ct, 1120);
            REFUSED(KS_OP_KEM_ENCAP, ct_written, 8);
            REFUSED(KS_OP_KEM_ENCAP, secret, 64);
        }
        {
            struct ks_args_kem_decap ok = { hk, ct, 1120, out, 64 }, a;

            REFUSED(KS_OP_KEM_DECAP, ct, 1120);
            REFUSED(KS_OP_KEM_DECAP, secret, 64);
        }
        /* PKEY_LOAD: a path read from T, and each output */
        {
            struct ks_args_pkey_load ok = { path, strlen(path), &hx, spki,
                                            sizeof(spki), &n }, a;

            REFUSED(KS_OP_PKEY_LOAD, path, strlen(path));
            REFUSED(KS_OP_PKEY_LOAD, handle, 8);
            REFUSED(KS_OP_PKEY_LOAD, pub, sizeof(spki));
            REFUSED(KS_OP_PKEY_LOAD, pub_written, 8);
        }
        /* SIGN: signing T memory would hand it out; writing into T */
        {
            struct ks_args_sign ok = { hp, 0, 0,
                                       (const unsigned char *) "message", 7,
                                       sig, 64, &n }, a;

            REFUSED(KS_OP_SIGN, tbs, 7);
            REFUSED(KS_OP_SIGN, sig, 64);
            REFUSED(KS_OP_SIGN, sig_written, 8);
        }
#undef REFUSED
    }
    /* controls: the same blocks with U pointers work */
    assert_int_equal(t_derive(h, tpub, 32, out, 32), 0);
    assert_int_equal(t_encap(KS_GROUP_X25519MLKEM768, upub, 1216, ct, 1120, &n,
                             out, 64), 0);
    assert_int_equal(t_decap(hk, ct, 1120, out, 64), 0);
    assert_int_equal(t_sign(hp, 0, 0, "m", 1, sig, 64, &n), 0);
    assert_int_equal(t_load(path, strlen(path), &hx, spki, sizeof(spki), &n),
                     0);
    assert_int_equal(free_handle(hx), 0);
    assert_int_equal(free_handle(h), 0);
    assert_int_equal(free_handle(hk), 0);
    assert_int_equal(free_handle(hp), 0);
}

/* ---- long-term keys ------------------------------------------------------ */

static const char *
md_name(uint32_t md)
{
    return md == KS_MD_SHA256 ? "SHA2-256" : md == KS_MD_SHA384 ? "SHA2-384"
           : md == KS_MD_SHA512 ? "SHA2-512" : NULL;
}

static int
u_verify(EVP_PKEY *pub, uint32_t md, uint32_t padding, const void *msg,
    size_t msglen, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int ok;

    ok = EVP_DigestVerifyInit_ex(c, &pc, md_name(md), NULL, NULL, pub,
                                 NULL) > 0;
    if (ok && padding == KS_SIG_RSA_PKCS1) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0;
    }
    if (ok && padding == KS_SIG_RSA_PSS) {
        /* strict: the salt must be exactly the digest's length */
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0
             && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0
             && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, md_name(md), NULL) > 0;
    }
    ok = ok && EVP_DigestVerify(c, sig, siglen, msg, msglen) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

static void
read_spki(const char *name, unsigned char *buf, size_t *len)
{
    char path[256];
    FILE *f;

    path_of(path, sizeof(path), name, "spki");
    f = fopen(path, "rb");
    assert_non_null(f);
    *len = fread(buf, 1, 1024, f);
    fclose(f);
    assert_true(*len > 0);
}

static void
load_and_sign(void **state)
{
    /* TLS 1.3 CertificateVerify content: 64 spaces, context, 0, hash */
    unsigned char msg[64 + 34 + 48];
    unsigned char spki[1024], want[1024], sig[600];
    uint32_t schemes[][2] = {
        { KS_MD_SHA256, KS_SIG_RSA_PKCS1 }, { KS_MD_SHA384, KS_SIG_RSA_PKCS1 },
        { KS_MD_SHA512, KS_SIG_RSA_PKCS1 }, { KS_MD_SHA256, KS_SIG_RSA_PSS },
        { KS_MD_SHA384, KS_SIG_RSA_PSS }, { KS_MD_SHA512, KS_SIG_RSA_PSS },
        { KS_MD_SHA256, 0 }, { KS_MD_SHA384, 0 }, { KS_MD_SHA512, 0 },
        { 0, 0 },
    };
    unsigned i, j, signed_with;

    (void) state;
    memset(msg, ' ', 64);
    memcpy(msg + 64, "TLS 1.3, server CertificateVerify", 34);
    for (i = 0; i < 48; i++) {
        msg[98 + i] = (unsigned char) (i * 7);
    }
    for (i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const unsigned char *p = spki;
        size_t n = 0, wantlen = 0, siglen = 0;
        uint64_t h = 0;
        EVP_PKEY *pub;

        assert_int_equal(t_load_key(k->name, &h, spki, &n), 0);
        assert_int_equal(h & 0xff, KS_HT_PKEY);
        /* the SPKI is the key's public half, for U to match the cert */
        read_spki(k->name, want, &wantlen);
        assert_int_equal(n, wantlen);
        assert_memory_equal(spki, want, n);
        pub = d2i_PUBKEY(NULL, &p, (long) n);
        assert_non_null(pub);

        signed_with = 0;
        for (j = 0; j < sizeof(schemes) / sizeof(schemes[0]); j++) {
            uint32_t md = schemes[j][0], pad = schemes[j][1];
            int valid = k->kind == 'r' ? pad != 0
                        : k->kind == 'e' ? pad == 0 && md != 0
                        : pad == 0 && md == 0;

            if (!valid) {
                /* a scheme of another kind of key: refused, nothing out */
                ASSERT_REFUSED(KS_ERR_ARG, t_sign(h, md, pad, msg, sizeof(msg),
                                                  sig, sizeof(sig), &siglen),
                               sig);
                continue;
            }
            memset(sig, 0, sizeof(sig));
            assert_int_equal(t_sign(h, md, pad, msg, sizeof(msg), sig,
                                    sizeof(sig), &siglen), 0);
            assert_true(siglen > 0 && siglen <= (size_t) k->bits);
            assert_true(u_verify(pub, md, pad, msg, sizeof(msg), sig, siglen));
            /* controls: another message, or the other RSA padding, fails */
            msg[70] ^= 1;
            assert_false(u_verify(pub, md, pad, msg, sizeof(msg), sig, siglen));
            msg[70] ^= 1;
            if (pad != 0) {
                assert_false(u_verify(pub, md, 3 - pad, msg, sizeof(msg), sig,
                                      siglen));
            }
            signed_with++;
        }
        assert_int_equal(signed_with,
                         k->kind == 'r' ? 6 : k->kind == 'e' ? 3 : 1);

        /* unknown md and padding; too little room for the signature */
        ASSERT_REFUSED(KS_ERR_ARG, t_sign(h, 4, k->kind == 'r', msg, 10, sig,
                                          sizeof(sig), &siglen), sig);
        ASSERT_REFUSED(KS_ERR_ARG, t_sign(h, k->kind == 'd' ? 0 : 1, 3, msg, 10,
                                          sig, sizeof(sig), &siglen), sig);
        ASSERT_REFUSED(KS_ERR_ARG, t_sign(h, k->kind == 'd' ? 0 : 1,
                                          k->kind == 'r', msg, 10, sig,
                                          (size_t) k->bits - 1, &siglen), sig);
        /* an empty message is a message (TLS never sends one, but no crash) */
        assert_int_equal(t_sign(h, k->kind == 'd' ? 0 : 1, k->kind == 'r', msg,
                                0, sig, sizeof(sig), &siglen), 0);
        assert_true(u_verify(pub, k->kind == 'd' ? 0 : 1, k->kind == 'r', msg,
                             0, sig, siglen));
        EVP_PKEY_free(pub);
        assert_int_equal(free_handle(h), 0);
    }
}

static void
load_errors(void **state)
{
    char path[300], nul[64];
    unsigned char spki[1024];
    char *longpath;
    const char *names[] = { "missing", "notakey", "encrypted", "p521" };
    const long want[] = { KS_ERR_ARG, KS_ERR_CRYPTO, KS_ERR_CRYPTO,
                          KS_ERR_STATE };
    uint64_t h, heap = 0;
    size_t n;
    unsigned i, round;

    (void) state;
    for (round = 0; round < 2; round++) {
        for (i = 0; i < 4; i++) {
            path_of(path, sizeof(path), names[i], "pem");
            h = 0;
            n = 0;
            ASSERT_REFUSED(want[i], t_load(path, strlen(path), &h, spki,
                                           sizeof(spki), &n), spki);
            assert_int_equal(h, 0);
            assert_int_equal(n, 0);
        }
        /* a directory, a device, the empty path, a path that is too long */
        ASSERT_REFUSED(KS_ERR_ARG, t_load(KEY_DIR, strlen(KEY_DIR), &h, spki,
                                          sizeof(spki), &n), spki);
        ASSERT_REFUSED(KS_ERR_ARG, t_load("/dev/null", 9, &h, spki,
                                          sizeof(spki), &n), spki);
        ASSERT_REFUSED(KS_ERR_ARG, t_load("", 0, &h, spki, sizeof(spki), &n),
                       spki);
        longpath = malloc(8192);
        assert_non_null(longpath);
        memset(longpath, '/', 8192);
        ASSERT_REFUSED(KS_ERR_ARG, t_load(longpath, 4096, &h, spki,
                                          sizeof(spki), &n), spki);
        ASSERT_REFUSED(KS_ERR_ARG, t_load(longpath, 8192, &h, spki,
                                          sizeof(spki), &n), spki);
        free(longpath);
        /* an embedded NUL: "/…/p256.pem\0junk" is not "/…/p256.pem" */
        path_of(nul, sizeof(nul), "p256", "pem");
        n = strlen(nul);
        memcpy(nul + n, "\0junk", 5);
        ASSERT_REFUSED(KS_ERR_ARG, t_load(nul, n + 5, &h, spki, sizeof(spki),
                                          &n), spki);
        /* the path's length is what counts, not a NUL: a prefix of it */
        ASSERT_REFUSED(KS_ERR_ARG, t_load(nul, n - 4, &h, spki, sizeof(spki),
                                          &n), spki);
        /* too little room for the SPKI: the key is dropped again */
        ASSERT_REFUSED(KS_ERR_ARG, t_load(nul, strlen(nul), &h, spki, 90, &n),
                       spki);
        /* the failures leave nothing behind in T (the first round may
         * warm libcrypto's caches) */
        if (round == 0) {
            heap = heap_bytes();
        } else {
            assert_int_equal(heap_bytes(), heap);
        }
    }
    /* control: the same path with its own length loads */
    assert_int_equal(t_load(nul, strlen(nul), &h, spki, sizeof(spki), &n), 0);
    assert_int_equal(free_handle(h), 0);
}

/* Keygen/derive/encap/decap/load/sign and free again: the T heap comes
 * back to where it was (after one warm-up round for libcrypto's caches). */
static void
heap_returns_to_baseline(void **state)
{
    unsigned char tpub[2048], upub[NGROUPS][2048], ct[1120], out[128];
    unsigned char spki[1024], sig[512];
    uint64_t base = 0, h;
    size_t n;
    unsigned round, i;

    (void) state;
    for (i = 0; i < NGROUPS; i++) {
        EVP_PKEY *u = u_keygen(&groups[i]);

        u_pub(u, &groups[i], upub[i]);
        EVP_PKEY_free(u);
    }
    for (round = 0; round < 4; round++) {
        for (i = 0; i < NGROUPS; i++) {
            const struct group *g = &groups[i];

            assert_int_equal(t_keygen(g, &h, tpub), 0);
            if (g->ctlen == 0) {
                assert_int_equal(t_derive(h, upub[i], g->publen, out,
                                          g->secretlen), 0);
            } else {
                assert_int_equal(t_encap(g->id, upub[i], g->publen, ct,
                                         sizeof(ct), &n, out, 64), 0);
                assert_int_equal(t_decap(h, ct, sizeof(ct), out, 64), 0);
            }
            assert_int_equal(free_handle(h), 0);
        }
        for (i = 0; i < NKEYS; i++) {
            assert_int_equal(t_load_key(keys[i].name, &h, spki, &n), 0);
            assert_int_equal(t_sign(h, keys[i].kind == 'd' ? 0 : KS_MD_SHA256,
                                    keys[i].kind == 'r' ? KS_SIG_RSA_PSS : 0,
                                    "m", 1, sig, sizeof(sig), &n), 0);
            assert_int_equal(free_handle(h), 0);
        }
        if (round == 0) {
            base = heap_bytes();
        } else {
            assert_int_equal(heap_bytes(), base);
        }
    }
}

/* ---- nothing of the private keys in U memory --------------------------- */

/*
 * The needles that occur in [p, p + len), as a bit mask.  One pass: a
 * table of the needles' first bytes (a bit each: that much of the keys
 * this process may hold) picks the offsets worth a full comparison.
 */
static uint32_t
find_needles(const unsigned char *p, size_t len)
{
    uint32_t first[256], found = 0;
    unsigned k;
    size_t i, j;

    memset(first, 0, sizeof(first));
    for (k = 0; k < nneedles; k++) {
        first[needles[k].x[0] ^ MASK] |= (uint32_t) 1 << k;
    }
    for (i = 0; i < len; i++) {
        uint32_t cand = first[p[i]] & ~found;

        for (k = 0; cand != 0; k++, cand >>= 1) {
            const struct needle *nd = &needles[k];

            if (!(cand & 1) || nd->len > len - i) {
                continue;
            }
            for (j = 1; j < nd->len && (p[i + j] ^ MASK) == nd->x[j]; j++) {
            }
            if (j == nd->len) {
                found |= (uint32_t) 1 << k;
            }
        }
    }
    return found;
}

static int
overlaps_t(uintptr_t s, uintptr_t e)
{
    uint32_t i;

    for (i = 0; i < nranges; i++) {
        if (s < ranges[i].start + ranges[i].len && ranges[i].start < e) {
            return 1;
        }
    }
    return 0;
}

/* /proc/self/smaps, read without stdio or malloc: either would reuse
 * freed U heap blocks and so overwrite what is being looked for */
static char  smaps[1 << 20];

/*
 * Scan every mapping of this process that U can read (not the T ranges,
 * nothing tagged with a protection key, not the vsyscall/vvar pages) for
 * the needles: the mask of those found.
 */
static uint32_t
scan_u_memory(void)
{
    char perms[8], name[256], *line, *next;
    uintptr_t s = 0, e = 0;
    uint32_t found = 0;
    size_t len = 0;
    ssize_t r;
    int fd = open("/proc/self/smaps", O_RDONLY), have = 0, keyed = 0;

    assert_true(fd >= 0);
    while ((r = read(fd, smaps + len, sizeof(smaps) - 1 - len)) > 0) {
        len += (size_t) r;
    }
    close(fd);
    assert_true(len > 0 && len < sizeof(smaps) - 1);
    smaps[len] = '\0';
    /* a mapping's header line, then its fields; ProtectionKey is one of
     * them on a kernel and CPU with pkeys (else nothing could be told
     * apart, and the test fails) */
    for (line = smaps; *line != '\0'; line = next) {
        unsigned long a, b;
        int pk;

        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';            /* sscanf takes strlen of its input */
        } else {
            next = line + strlen(line);
        }
        name[0] = '\0';
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &a, &b, perms,
                   name) >= 3)
        {
            s = a;
            e = b;
            have = perms[0] == 'r' && strcmp(name, "[vsyscall]") != 0
                   && strcmp(name, "[vvar]") != 0
                   && strcmp(name, "[vvar_vclock]") != 0 && !overlaps_t(s, e);
            continue;
        }
        if (sscanf(line, "ProtectionKey: %d", &pk) == 1) {
            keyed = 1;
            if (have && pk == 0) {
                found |= find_needles((const unsigned char *) s, e - s);
            }
            have = 0;
        }
    }
    assert_true(keyed);
    return found;
}

static void
print_needles(uint32_t mask)
{
    unsigned k;

    for (k = 0; k < nneedles; k++) {
        if (mask & ((uint32_t) 1 << k)) {
            print_message("found %s in U memory\n", needles[k].what);
        }
    }
}

/* The mask of the needles whose name contains what. */
static uint32_t
needles_named(const char *what)
{
    uint32_t m = 0;
    unsigned k;

    for (k = 0; k < nneedles; k++) {
        if (strstr(needles[k].what, what) != NULL) {
            m |= (uint32_t) 1 << k;
        }
    }
    return m;
}

static void
private_keys_not_in_u_memory(void **state)
{
    unsigned char spki[1024], sig[512];
    uint64_t h[NKEYS];
    uint32_t found;
    size_t n;
    pid_t pid;
    unsigned i;

    (void) state;
    for (i = 0; i < NKEYS; i++) {
        assert_int_equal(t_load_key(keys[i].name, &h[i], spki, &n), 0);
        assert_int_equal(t_sign(h[i], keys[i].kind == 'd' ? 0 : KS_MD_SHA256,
                                keys[i].kind == 'r', "m", 1, sig, sizeof(sig),
                                &n), 0);
    }
    found = scan_u_memory();
    print_needles(found);
    assert_int_equal(found, 0);

    /* controls, in a child (the key must not enter this process): the
     * scan finds a PEM file read in U, and the key decoded in U */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char path[256];
        unsigned char *pem = malloc(4096);
        EVP_PKEY *pk = NULL;
        FILE *f;
        size_t len = 0;
        BIO *b;
        int ok;

        path_of(path, sizeof(path), "rsa2048", "pem");
        f = fopen(path, "rb");
        if (f != NULL && pem != NULL) {
            len = fread(pem, 1, 4096, f);
        }
        if (f != NULL) {
            fclose(f);
        }
        ok = len > 0 && (scan_u_memory() & needles_named("rsa2048 PEM")) != 0;
        b = BIO_new_file(path, "r");
        pk = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        /* the BIGNUMs of the decoded key, little-endian limbs */
        ok = ok && pk != NULL
             && (scan_u_memory() & needles_named("rsa p LE")) != 0;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(child_exit_code(pid), 0);

    for (i = 0; i < NKEYS; i++) {
        assert_int_equal(free_handle(h[i]), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(private_libcrypto_is_separate),
        cmocka_unit_test(kex_every_group),
        cmocka_unit_test(mlkem_t_server),
        cmocka_unit_test(mlkem_t_client),
        cmocka_unit_test(bad_sizes_refused),
        cmocka_unit_test(bad_handles_refused),
        cmocka_unit_test(t_pointers_refused),
        cmocka_unit_test(load_and_sign),
        cmocka_unit_test(load_errors),
        cmocka_unit_test(heap_returns_to_baseline),
        cmocka_unit_test(private_keys_not_in_u_memory),
    };

    return cmocka_run_group_tests_name("ks_pkey", tests, setup, NULL);
}
