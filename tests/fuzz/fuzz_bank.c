/*
 * The fuzzer's start-up: the keystore, real material for the inputs to
 * point at (tokens of every class, public keys and a KEM share of every
 * group, a KEM ciphertext, the labels T's policy looks at, key files),
 * T addresses, and two canaries in T.  See fuzz.h.
 *
 * The sealing key is loaded from a file first, so that an input that
 * loads the same file again changes nothing for the inputs after it:
 * tokens made here stay valid, and inputs replay alike.
 */

#define _GNU_SOURCE
#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"
#include "../../keystore/ks_range.h"

struct fz_item  fz_bank[FZ_NBANKS][FZ_BANK_MAX];
unsigned        fz_nbank[FZ_NBANKS];
uintptr_t       fz_t_ptr[FZ_T_MAX];
unsigned        fz_nt;

static unsigned char  store[32768];         /* the banks' bytes */
static size_t         stored;

/* T canaries: in the T heap's last page (beyond the bump allocator) and
 * at the bottom of the T stack (deeper than T ever runs). */
#define CANARY_LEN  64
static uintptr_t      canary_at[2];
static unsigned char  canary[2][CANARY_LEN];

static int
fail(const char *what)
{
    fprintf(stderr, "fuzz setup: %s\n", what);
    return -1;
}

static void
add(enum fz_bank b, const void *p, size_t len)
{
    if (fz_nbank[b] < FZ_BANK_MAX && stored + len <= sizeof(store)) {
        memcpy(store + stored, p, len);
        fz_bank[b][fz_nbank[b]].p = store + stored;
        fz_bank[b][fz_nbank[b]++].len = len;
        stored += len;
    }
}

static int
keygen(uint32_t group, uint64_t *h, unsigned char *pub, size_t *publen)
{
    struct ks_args_kex_keygen a = { group, h, pub, 2048, publen };

    return ks_gate_call(KS_OP_KEX_KEYGEN, &a) == 0 ? 0 : -1;
}

/* out (outlen) from key with TLS13-KDF expand (label) or HKDF extract. */
static int
kdf(uint32_t kdf_id, uint32_t md, uint32_t mode, uint32_t is_token,
    uint32_t cls, const unsigned char *key, size_t keylen, const char *label,
    unsigned char *out, size_t outlen)
{
    struct ks_args_kdf a;

    memset(&a, 0, sizeof(a));
    a.kdf = kdf_id;
    a.md = md;
    a.mode = mode;
    a.key_is_token = is_token;
    a.out_class = cls;
    a.key = key;
    a.keylen = keylen;
    a.label = (const unsigned char *) label;
    a.labellen = label ? strlen(label) : 0;
    a.out = out;
    a.outlen = outlen;
    return ks_gate_call(KS_OP_KDF, &a) == 0 ? 0 : -1;
}

/* Tokens of every class and length the keystore makes. */
static int
make_tokens(void)
{
    static const uint32_t mds[3] = { KS_MD_SHA256, KS_MD_SHA384, KS_MD_SHA512 };
    static const size_t mdlen[3] = { 32, 48, 64 };
    unsigned char raw[64], tok[64], rk[32], pub[2][2048];
    size_t publen[2];
    uint64_t h[2];
    struct ks_args_kex_derive d;
    unsigned i, k;

    memset(raw, 0x42, sizeof(raw));
    for (i = 0; i < 3; i++) {
        if (kdf(KS_KDF_HKDF, mds[i], KS_KDF_EXTRACT_ONLY, 0, KS_OUT_SECRET,
                raw, mdlen[i], NULL, tok, mdlen[i]) != 0)
        {
            return fail("HKDF extract to a SECRET token");
        }
        add(FZ_TOKEN, tok, mdlen[i]);
        if (kdf(KS_KDF_TLS13, mds[i], KS_KDF_EXPAND_ONLY, 1, KS_OUT_MAC_KEY,
                tok, mdlen[i], "finished", rk, mdlen[i] < 32 ? mdlen[i] : 32)
            == 0)
        {
            add(FZ_TOKEN, rk, mdlen[i] < 32 ? mdlen[i] : 32);
        }
        for (k = 16; k <= 32; k += 16) {    /* AES-128 and -256 keys */
            if (kdf(KS_KDF_TLS13, mds[i], KS_KDF_EXPAND_ONLY, 1,
                    KS_OUT_RECORD_KEY, tok, mdlen[i], "key", rk, k) != 0)
            {
                return fail("TLS13-KDF \"key\" to a RECORD_KEY token");
            }
            add(FZ_TOKEN, rk, k);
        }
    }
    /* a shared secret of X25519 (32) and of X448 (56) */
    for (i = 0; i < 2; i++) {
        uint32_t g = i ? KS_GROUP_X448 : KS_GROUP_X25519;
        size_t n = i ? 56 : 32;

        if (keygen(g, &h[0], pub[0], &publen[0]) != 0
            || keygen(g, &h[1], pub[1], &publen[1]) != 0)
        {
            return fail("keygen");
        }
        d = (struct ks_args_kex_derive) { h[0], pub[1], publen[1], tok, n };
        if (ks_gate_call(KS_OP_KEX_DERIVE, &d) != 0) {
            return fail("derive");
        }
        add(FZ_TOKEN, tok, n);
    }
    return 0;
}

/* A public key (or KEM share) of every group, and a KEM ciphertext. */
static int
make_peers(void)
{
    unsigned char pub[2048], ct[2048], secret[64];
    size_t publen, ctlen = 0;
    uint64_t h;
    uint32_t g;
    struct ks_args_kem_encap e;

    for (g = KS_GROUP_X25519; g <= KS_GROUP_X25519MLKEM768; g++) {
        if (keygen(g, &h, pub, &publen) != 0) {
            return fail("keygen of a group");
        }
        add(FZ_PEER, pub, publen);
    }
    e = (struct ks_args_kem_encap) { KS_GROUP_X25519MLKEM768, pub, publen,
                                     ct, sizeof(ct), &ctlen, secret, 64 };
    if (ks_gate_call(KS_OP_KEM_ENCAP, &e) != 0) {
        return fail("KEM encapsulation");
    }
    add(FZ_CT, ct, ctlen);
    return 0;
}

static int
write_key(const char *path, const char *alg, int bits)
{
    EVP_PKEY *k = bits ? EVP_PKEY_Q_keygen(NULL, NULL, alg, (size_t) bits)
                       : strcmp(alg, "EC") == 0
                         ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                         : EVP_PKEY_Q_keygen(NULL, NULL, alg);
    FILE *f = fopen(path, "w");
    int ok = k != NULL && f != NULL
             && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;

    if (f != NULL) {
        ok &= fclose(f) == 0;
    }
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

/* Key files in a new directory, the seal key loaded from one of them. */
static int
make_paths(void)
{
    static char dir[] = "/tmp/ks-fuzz-XXXXXX";
    static const char *const others[] = {
        "/nonexistent/key.pem", "/dev/null", "/proc/self/status", "/",
    };
    static const struct { const char *name, *alg; int bits; } keys[] = {
        { "ec", "EC", 0 }, { "ed25519", "ED25519", 0 }, { "rsa", "RSA", 2048 },
    };
    unsigned char key[32];
    char path[512], hex[66], err[256], lng[600];
    unsigned i;
    int fd;

    if (mkdtemp(dir) == NULL || getrandom(key, sizeof(key), 0) != 32) {
        return fail("key directory");
    }
    for (i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    }
    hex[64] = '\n';
    snprintf(path, sizeof(path), "%s/seal.key", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, hex, 65) != 65 || close(fd) != 0
        || ks_seal_key_load_file(path, err, sizeof(err)) != 0)
    {
        return fail("seal key file");
    }
    add(FZ_PATH, path, strlen(path));
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s.pem", dir, keys[i].name);
        if (write_key(path, keys[i].alg, keys[i].bits) != 0) {
            return fail(path);
        }
        add(FZ_PATH, path, strlen(path));
    }
    add(FZ_PATH, dir, strlen(dir));
    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        add(FZ_PATH, others[i], strlen(others[i]));
    }
    add(FZ_PATH, "ec.pem\0/x", 9);          /* a NUL inside */
    memset(lng, 'a', sizeof(lng));
    lng[0] = '/';
    add(FZ_PATH, lng, sizeof(lng));         /* longer than NAME_MAX */
    return 0;
}

static void
make_labels(void)
{
    static const char *const labels[] = {
        "key", "iv", "finished", "exporter", "derived", "c hs traffic",
        "s ap traffic", "res binder", "traffic upd", "key expansion",
        "master secret", "extended master secret", "client finished",
        "server finished", "EXPORTER-test", "tls13 key",
    };
    unsigned i;

    for (i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        add(FZ_LABEL, labels[i], strlen(labels[i]));
    }
}

/* T addresses: every range's edges and middle, and the canaries. */
static int
make_t_pointers(void)
{
    struct ks_range_out r[KS_RANGE_MAX];
    uint32_t n = 0, i;
    struct ks_args_ranges a = { r, &n };
    struct ks_args_test_mem m;

    if (ks_gate_call(KS_OP_RANGES, &a) != 0 || n < 2) {
        return fail("KS_OP_RANGES");
    }
    for (i = 0; i < n && fz_nt + 4 <= FZ_T_MAX; i++) {
        fz_t_ptr[fz_nt++] = r[i].start;
        fz_t_ptr[fz_nt++] = r[i].start + r[i].len / 2;
        fz_t_ptr[fz_nt++] = r[i].start + r[i].len - 8;
        fz_t_ptr[fz_nt++] = r[i].start + r[i].len - 1;
    }
    /* range 0 is the T heap, range 1 the T stack (ks_domain.c) */
    canary_at[0] = r[0].start + r[0].len - 4096 + 128;
    canary_at[1] = r[1].start;
    for (i = 0; i < 2; i++) {
        if (getrandom(canary[i], CANARY_LEN, 0) != CANARY_LEN) {
            return fail("getrandom");
        }
        m = (struct ks_args_test_mem) { canary_at[i], canary[i], CANARY_LEN };
        if (ks_gate_call(KS_OP_TEST_POKE, &m) != 0) {
            return fail("canary");
        }
        if (fz_nt < FZ_T_MAX) {
            fz_t_ptr[fz_nt++] = canary_at[i];
        }
    }
    return 0;
}

int
fz_canaries_intact(char *why, size_t len)
{
    unsigned char now[CANARY_LEN];
    struct ks_args_test_mem m;
    unsigned i;

    for (i = 0; i < 2; i++) {
        m = (struct ks_args_test_mem) { canary_at[i], now, CANARY_LEN };
        if (ks_gate_call(KS_OP_TEST_PEEK, &m) != 0
            || memcmp(now, canary[i], CANARY_LEN) != 0)
        {
            snprintf(why, len, "T canary %u at %#lx changed", i,
                     (unsigned long) canary_at[i]);
            return 0;
        }
    }
    return 1;
}

int
fz_setup(void)
{
    char err[256];

    if (ks_init(NULL, err, sizeof(err)) != 0) {
        return fail(err);
    }
    if (make_paths() != 0 || make_tokens() != 0 || make_peers() != 0
        || make_t_pointers() != 0)
    {
        return -1;
    }
    make_labels();
    return 0;
}
