/*
 * Unit tests of keystore/ks_seal: sealed tokens.
 *
 * The avalanche and related-length checks are functions that return a
 * verdict instead of asserting, so that they can be run on a naive
 * XOR-with-keystream "seal" as a positive control: such a seal round-trips,
 * is deterministic and changes every secret, and these checks must reject
 * it.  The known answers pin the token format (tokens persist in tickets
 * and are shared between servers); they were computed by the independent
 * Python implementation quoted above known_answers().
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "../../keystore/ks_seal.h"

static const size_t lengths[] = { 16, 32, 48, 56, 64, 66 };
#define NLENGTHS (sizeof(lengths) / sizeof(lengths[0]))

typedef int (*seal_fn)(unsigned char *out, const unsigned char *in,
    size_t len);

/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x6d706b2d746c7331ULL;

static uint64_t
rng_next(void)                                  /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
rng_fill(unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = (unsigned char) rng_next();
    }
}

static size_t
hamming(const unsigned char *a, const unsigned char *b, size_t n)
{
    size_t i, d = 0;

    for (i = 0; i < n; i++) {
        d += (size_t) __builtin_popcount((unsigned) (a[i] ^ b[i]));
    }
    return d;
}

static void
unhex(unsigned char *out, const char *hex, size_t n)
{
    size_t i;

    assert_int_equal(strlen(hex), 2 * n);
    for (i = 0; i < n; i++) {
        unsigned v;

        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char) v;
    }
}

static const unsigned char key_a[KS_SEAL_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
    0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static const unsigned char key_b[KS_SEAL_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
    0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1e,  /* last bit differs */
};

/* Every test starts with key_a set and identity mode off. */
static int
setup_key_a(void **state)
{
    (void) state;
    ks_seal_key_wipe();
    return ks_seal_key_set(key_a, sizeof(key_a));
}

static int
teardown_wipe(void **state)
{
    (void) state;
    ks_seal_key_wipe();
    return 0;
}

/* ---- the naive seal (positive control) ---------------------------------- */

static unsigned char naive_stream[KS_SEAL_MAX_LEN];

/* token = secret XOR a fixed keystream: invertible, deterministic, and
 * changes every secret -- but a bit flip stays a bit flip. */
static int
naive_seal(unsigned char *out, const unsigned char *in, size_t len)
{
    size_t i;

    if (!ks_seal_len_ok(len)) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        out[i] = in[i] ^ naive_stream[i];
    }
    return 0;
}

/*
 * A second control: mixes well inside each half but not across them (as
 * sealing the halves separately, or a narrow-block mode, would).  Not
 * invertible; the avalanche check does not need that.
 */
static void
half_mix(unsigned char *out, const unsigned char *in, size_t h)
{
    unsigned char d[64];
    unsigned dl;

    assert_int_equal(EVP_Digest(in, h, d, &dl, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_Digest(d, 32, d + 32, &dl, EVP_sha256(), NULL), 1);
    memcpy(out, d, h);
}

static int
halfwise_seal(unsigned char *out, const unsigned char *in, size_t len)
{
    unsigned char tmp[KS_SEAL_MAX_LEN];

    if (!ks_seal_len_ok(len)) {
        return -1;
    }
    half_mix(tmp, in, len / 2);
    half_mix(tmp + len / 2, in + len / 2, len - len / 2);
    memcpy(out, tmp, len);
    return 0;
}

/* ---- the checks (verdicts, not assertions) ------------------------------- */

/*
 * 48 flips per input bit: an output bit that depends on the input bit
 * stays unchanged in all of them with probability 2^-48; over the about
 * 2^21 (input bit, output bit) pairs of all lengths, seal and unseal, a
 * false alarm has probability about 2^-27.
 */
#define TRIALS_PER_BIT 48

/* The criteria of avalanche_check(), as bits of its result. */
#define AV_AVERAGE 0x1  /* on average <= 25 % or >= 75 % of the bits flip */
#define AV_HALVES  0x2  /* some one-bit change left a half of the output */
#define AV_DEPEND  0x4  /* an output bit never changed with an input bit */

/*
 * Flip each input bit of TRIALS_PER_BIT random inputs.  Returns 0 when the
 * output changes in between 25 % and 75 % of its bits on average, every
 * flip changes both halves of the output, and every output bit changed
 * with every input bit (in some of its trials); else the AV_* bits of the
 * criteria that failed (all are evaluated), with a description of the
 * first in why.
 */
static unsigned
avalanche_check(seal_fn f, size_t n, char *why, size_t whylen)
{
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN];
    unsigned char x2[KS_SEAL_MAX_LEN], y2[KS_SEAL_MAX_LEN];
    unsigned char seen[KS_SEAL_MAX_LEN];
    size_t h = n / 2, bit, i, t, total = 0, trials = 0, half_bit = 0;
    size_t dep_in = 0, dep_out = 0;
    unsigned failed = 0;
    double avg;

    for (bit = 0; bit < 8 * n; bit++) {
        memset(seen, 0, sizeof(seen));
        for (t = 0; t < TRIALS_PER_BIT; t++) {
            rng_fill(x, n);
            memcpy(x2, x, n);
            x2[bit / 8] ^= (unsigned char) (1u << (bit % 8));
            if (f(y, x, n) != 0 || f(y2, x2, n) != 0) {
                snprintf(why, whylen, "%zu bytes: the seal failed", n);
                return AV_AVERAGE | AV_HALVES | AV_DEPEND;
            }
            if (!(failed & AV_HALVES)
                && (hamming(y, y2, h) == 0
                    || hamming(y + h, y2 + h, n - h) == 0)) {
                failed |= AV_HALVES;
                half_bit = bit;
            }
            total += hamming(y, y2, n);
            trials++;
            for (i = 0; i < n; i++) {
                seen[i] |= y[i] ^ y2[i];
            }
        }
        for (i = 0; i < n && !(failed & AV_DEPEND); i++) {
            if (seen[i] != 0xff) {
                failed |= AV_DEPEND;
                dep_in = bit;
                dep_out = 8 * i + (size_t) __builtin_ctz(~seen[i] & 0xffu);
            }
        }
    }
    avg = (double) total / (double) (trials * 8 * n);
    if (avg <= 0.25 || avg >= 0.75) {
        failed |= AV_AVERAGE;
    }
    if (failed & AV_AVERAGE) {
        snprintf(why, whylen, "%zu bytes: a one-bit change flips %.1f %% of "
                 "the output bits on average", n, 100 * avg);
    } else if (failed & AV_HALVES) {
        snprintf(why, whylen, "%zu bytes: flipping input bit %zu left one "
                 "half of the output unchanged", n, half_bit);
    } else if (failed & AV_DEPEND) {
        snprintf(why, whylen, "%zu bytes: output bit %zu never changed when "
                 "input bit %zu was flipped", n, dep_out, dep_in);
    } else {
        snprintf(why, whylen, "%zu bytes: %.1f %% of the bits flip", n,
                 100 * avg);
    }
    return failed;
}

/*
 * Seal random n-byte secrets and their m-byte prefixes (m < n): the m-byte
 * token must be unrelated to the first m bytes of the n-byte token (between
 * 25 % and 75 % of the bits differ on average, never equal).
 */
static int
related_lengths_ok(seal_fn f, size_t m, size_t n, char *why, size_t whylen)
{
    unsigned char x[KS_SEAL_MAX_LEN], yn[KS_SEAL_MAX_LEN], ym[KS_SEAL_MAX_LEN];
    size_t t, d, total = 0;
    const size_t trials = 200;
    double avg;

    for (t = 0; t < trials; t++) {
        rng_fill(x, n);
        if (f(yn, x, n) != 0 || f(ym, x, m) != 0) {
            snprintf(why, whylen, "%zu/%zu bytes: the seal failed", m, n);
            return 0;
        }
        d = hamming(yn, ym, m);
        if (d == 0) {
            snprintf(why, whylen, "the %zu-byte token is the prefix of the "
                     "%zu-byte token", m, n);
            return 0;
        }
        total += d;
    }
    avg = (double) total / (double) (trials * 8 * m);
    if (avg <= 0.25 || avg >= 0.75) {
        snprintf(why, whylen, "%zu/%zu bytes: %.1f %% of the prefix bits "
                 "differ", m, n, 100 * avg);
        return 0;
    }
    return 1;
}

/* ---- tests ---------------------------------------------------------------- */

/*
 * Expected tokens for key 00 01 .. 1f and secret a0 a1 a2 ... (n bytes),
 * from this independent implementation of the construction in ks_seal.h:
 *
 *   import hashlib, hmac
 *   from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
 *   def hkdf(key, info):
 *       prk = hmac.new(b"mpk-tls sealed tokens v1", key, hashlib.sha256).digest()
 *       return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
 *   def seal(key, x):
 *       n = len(x)
 *       if n == 16:
 *           e = Cipher(algorithms.AES(hkdf(key, b"aes-256 block")),
 *                      modes.ECB()).encryptor()
 *           return e.update(x) + e.finalize()
 *       h = n // 2
 *       L, R = bytearray(x[:h]), bytearray(x[h:])
 *       for i in range(4):
 *           k = hkdf(key, b"feistel round %d" % i)
 *           src, dst = (R, L) if i % 2 == 0 else (L, R)
 *           f = b"".join(hmac.new(k, bytes([c, n, i]) + bytes(src),
 *                                 hashlib.sha256).digest()
 *                        for c in range((h + 31) // 32))
 *           for j in range(h):
 *               dst[j] ^= f[j]
 *       return bytes(L + R)
 */
static void
known_answers(void **state)
{
    static const char *const expect[NLENGTHS] = {
        "4b140dfbbe2a06fb753e91ddbe14a0ab",
        "0d9561807f004bf9672b715e3b15152c29c58946b1ef9fd73d0fd6b7e092648a",
        "a31b1d2e9c6d32ec5ae6e8747af9a0b099bef91f2a6f73ea1b30d65a9b80ad12"
        "d45a944b4deca94eac23062a4294c651",
        "b0c0dc7e1971f8bfdd998e66d856c8f27ebc6cb3c592b2cc8df1b42c56185465"
        "d5015684bea22a627186413a36713b74b88a49d201cbc8a1",
        "88056277999521d215442084f42b7f9468977423252c0abe5f75a34d140def17"
        "7f9e7ad9f6658e232d2c30aa39bed46fd258173d93cf9928ca6278949eb84afa",
        "d8f3196664a52b456bda32f3b7bf239432f46ba6c3b80e61d4d8fb9a903181b7"
        "2985b3e8566986d3d681430b5c016b797ff8983315d76248069aa6d409398b4b"
        "e9a8",
    };
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    unsigned char want[KS_SEAL_MAX_LEN];
    size_t k, j, n;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        for (j = 0; j < n; j++) {
            x[j] = (unsigned char) (0xa0 + j);
        }
        unhex(want, expect[k], n);
        assert_int_equal(ks_seal(y, x, n), 0);
        assert_memory_equal(y, want, n);
        assert_int_equal(ks_unseal(z, want, n), 0);
        assert_memory_equal(z, x, n);
    }
}

static void
round_trip(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    size_t k, t, n;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        for (t = 0; t < 2000; t++) {
            rng_fill(x, n);
            assert_int_equal(ks_seal(y, x, n), 0);
            assert_int_equal(ks_unseal(z, y, n), 0);
            assert_memory_equal(z, x, n);

            /* in place, both ways */
            memcpy(z, x, n);
            assert_int_equal(ks_seal(z, z, n), 0);
            assert_memory_equal(z, y, n);
            assert_int_equal(ks_unseal(z, z, n), 0);
            assert_memory_equal(z, x, n);
        }
        /* unseal is a permutation too: unseal-then-seal is the identity */
        rng_fill(y, n);
        assert_int_equal(ks_unseal(x, y, n), 0);
        assert_int_equal(ks_seal(z, x, n), 0);
        assert_memory_equal(z, y, n);
    }
}

static void
deterministic(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y1[KS_SEAL_MAX_LEN];
    unsigned char y2[KS_SEAL_MAX_LEN], y3[KS_SEAL_MAX_LEN];
    size_t k, n;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        rng_fill(x, n);
        assert_int_equal(ks_seal(y1, x, n), 0);
        assert_int_equal(ks_seal(y2, x, n), 0);
        assert_memory_equal(y1, y2, n);

        /* the same key set again (a restart with the same key file) */
        ks_seal_key_wipe();
        assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
        assert_int_equal(ks_seal(y3, x, n), 0);
        assert_memory_equal(y1, y3, n);
    }
}

static void
tokens_differ(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], ya[KS_SEAL_MAX_LEN];
    unsigned char yb[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    size_t k, t, n, d_secret, d_keys;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        d_secret = d_keys = 0;
        for (t = 0; t < 100; t++) {
            rng_fill(x, n);
            assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
            assert_int_equal(ks_seal(ya, x, n), 0);
            assert_int_equal(ks_seal_key_set(key_b, sizeof(key_b)), 0);
            assert_int_equal(ks_seal(yb, x, n), 0);
            assert_memory_not_equal(ya, x, n);
            assert_memory_not_equal(yb, ya, n);
            d_secret += hamming(ya, x, n);
            d_keys += hamming(ya, yb, n);

            /* a token does not unseal under the other key */
            assert_int_equal(ks_unseal(z, ya, n), 0);
            assert_memory_not_equal(z, x, n);
        }
        /* about half the bits differ (keys differ in one bit only) */
        assert_in_range(d_secret, 100 * 8 * n * 45 / 100,
                        100 * 8 * n * 55 / 100);
        assert_in_range(d_keys, 100 * 8 * n * 45 / 100,
                        100 * 8 * n * 55 / 100);
    }
}

static void
length_preserved(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], buf[KS_SEAL_MAX_LEN + 64];
    unsigned char back[KS_SEAL_MAX_LEN + 64];
    size_t k, n, i;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        rng_fill(x, n);
        memset(buf, 0xa5, sizeof(buf));
        assert_int_equal(ks_seal(buf + 32, x, n), 0);
        for (i = 0; i < 32; i++) {
            assert_int_equal(buf[i], 0xa5);
        }
        for (i = 32 + n; i < sizeof(buf); i++) {
            assert_int_equal(buf[i], 0xa5);
        }
        memset(back, 0x5a, sizeof(back));
        assert_int_equal(ks_unseal(back + 32, buf + 32, n), 0);
        assert_memory_equal(back + 32, x, n);
        for (i = 32 + n; i < sizeof(back); i++) {
            assert_int_equal(back[i], 0x5a);
        }
    }
}

static void
avalanche(void **state)
{
    char why[160];
    size_t k;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        if (avalanche_check(ks_seal, lengths[k], why, sizeof(why)) != 0) {
            fail_msg("seal: %s", why);
        }
        if (avalanche_check(ks_unseal, lengths[k], why, sizeof(why)) != 0) {
            fail_msg("unseal: %s", why);
        }
    }
}

/*
 * Positive controls: every criterion of the avalanche check rejects the
 * naive seal at every length, so does the related-length check, and the
 * both-halves and dependence criteria reject the halfwise seal.
 */
static void
avalanche_rejects_naive_seals(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    char why[160];
    size_t k, n;

    (void) state;
    rng_fill(naive_stream, sizeof(naive_stream));
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        /* it passes the easy properties ... */
        rng_fill(x, n);
        assert_int_equal(naive_seal(y, x, n), 0);
        assert_memory_not_equal(y, x, n);
        assert_int_equal(naive_seal(z, y, n), 0);
        assert_memory_equal(z, x, n);
        /* ... but not these */
        assert_int_equal(avalanche_check(naive_seal, n, why, sizeof(why)),
                         AV_AVERAGE | AV_HALVES | AV_DEPEND);
        print_message("# naive seal rejected: %s\n", why);
        assert_true((avalanche_check(halfwise_seal, n, why, sizeof(why))
                     & (AV_HALVES | AV_DEPEND)) == (AV_HALVES | AV_DEPEND));
        print_message("# halfwise seal rejected: %s\n", why);
        if (k + 1 < NLENGTHS) {
            assert_false(related_lengths_ok(naive_seal, n, lengths[k + 1],
                                            why, sizeof(why)));
        }
    }
}

static void
related_lengths(void **state)
{
    char why[160];
    size_t i, j;

    (void) state;
    for (i = 0; i < NLENGTHS; i++) {
        for (j = i + 1; j < NLENGTHS; j++) {
            if (!related_lengths_ok(ks_seal, lengths[i], lengths[j],
                                    why, sizeof(why))) {
                fail_msg("%s", why);
            }
        }
    }
}

static void
bad_lengths(void **state)
{
    static const size_t bad[] = {
        0, 1, 8, 15, 17, 20, 24, 31, 33, 47, 49, 55, 57, 63, 65, 67, 72, 96,
        128, 256, SIZE_MAX / 2, SIZE_MAX - 1, SIZE_MAX,
    };
    unsigned char in[KS_SEAL_MAX_LEN + 64], out[KS_SEAL_MAX_LEN + 64];
    unsigned char sentinel[sizeof(out)];
    size_t i;

    (void) state;
    rng_fill(in, sizeof(in));
    memset(sentinel, 0xc3, sizeof(sentinel));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(out, sentinel, sizeof(out));
        assert_int_equal(ks_seal(out, in, bad[i]), -1);
        assert_int_equal(ks_unseal(out, in, bad[i]), -1);
        assert_memory_equal(out, sentinel, sizeof(out));
        assert_int_equal(ks_seal_len_ok(bad[i]), 0);
    }
    for (i = 0; i < NLENGTHS; i++) {
        assert_int_equal(ks_seal_len_ok(lengths[i]), 1);
        assert_int_equal(ks_seal(NULL, in, lengths[i]), -1);
        assert_int_equal(ks_unseal(out, NULL, lengths[i]), -1);
        assert_memory_equal(out, sentinel, sizeof(out));
    }
}

static void
no_key(void **state)
{
    unsigned char in[KS_SEAL_MAX_LEN], out[KS_SEAL_MAX_LEN];
    unsigned char sentinel[KS_SEAL_MAX_LEN], ref[KS_SEAL_MAX_LEN];
    size_t k;

    (void) state;
    rng_fill(in, sizeof(in));
    assert_int_equal(ks_seal(ref, in, 32), 0);
    memset(sentinel, 0x3c, sizeof(sentinel));

    ks_seal_key_wipe();
    assert_int_equal(ks_seal_key_is_set(), 0);
    for (k = 0; k < NLENGTHS; k++) {
        memcpy(out, sentinel, sizeof(out));
        assert_int_equal(ks_seal(out, in, lengths[k]), -1);
        assert_int_equal(ks_unseal(out, in, lengths[k]), -1);
        assert_memory_equal(out, sentinel, sizeof(out));
    }
    ks_seal_key_wipe();                         /* twice is fine */

    /* bad key lengths are refused and set nothing */
    assert_int_equal(ks_seal_key_set(key_a, 16), -1);
    assert_int_equal(ks_seal_key_set(key_a, 31), -1);
    assert_int_equal(ks_seal_key_set(key_a, 33), -1);
    assert_int_equal(ks_seal_key_set(NULL, 32), -1);
    assert_int_equal(ks_seal_key_is_set(), 0);
    assert_int_equal(ks_seal(out, in, 32), -1);

    /* a bad key length does not replace a good key either */
    assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
    assert_int_equal(ks_seal_key_set(key_b, 31), -1);
    assert_int_equal(ks_seal(out, in, 32), 0);
    assert_memory_equal(out, ref, 32);
}

static void
random_key(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y1[KS_SEAL_MAX_LEN];
    unsigned char y2[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    size_t k, n;

    (void) state;
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_key_random(), 0);
    assert_int_equal(ks_seal_key_is_set(), 1);
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        rng_fill(x, n);
        assert_int_equal(ks_seal_key_random(), 0);
        assert_int_equal(ks_seal(y1, x, n), 0);
        assert_int_equal(ks_unseal(z, y1, n), 0);
        assert_memory_equal(z, x, n);
        assert_int_equal(ks_seal_key_random(), 0);
        assert_int_equal(ks_seal(y2, x, n), 0);
        assert_memory_not_equal(y1, y2, n);
    }
}

/* ---- key files ------------------------------------------------------------- */

static char tmpdir[64] = "/tmp/test_seal.XXXXXX";

static int
setup_tmpdir(void **state)
{
    (void) state;
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmpdir(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[sizeof(tmpdir) + sizeof(e->d_name) + 1];

    (void) state;
    ks_seal_key_wipe();
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
            if (rmdir(p) != 0) {
                unlink(p);
            }
        }
    }
    closedir(d);
    return rmdir(tmpdir);
}

/* Write tmpdir/name with the given bytes and mode; the path goes to path. */
static void
write_file(char *path, size_t pathlen, const char *name, const void *data,
    size_t len, mode_t mode)
{
    int fd;

    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t) len);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static int
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL) {
        n++;
    }
    closedir(d);
    return n;
}

/* The 32-byte key_b as 64 hex digits. */
static void
key_b_hex(char *hex, int upper)
{
    size_t i;

    for (i = 0; i < KS_SEAL_KEY_LEN; i++) {
        sprintf(hex + 2 * i, upper ? "%02X" : "%02x", key_b[i]);
    }
}

/* 1 if the current key is key_b (compared by a token). */
static int
key_is_b(void)
{
    unsigned char x[32] = { 1, 2, 3 }, want[32], got[32];

    assert_int_equal(ks_seal(got, x, 32), 0);
    assert_int_equal(ks_seal_key_set(key_b, sizeof(key_b)), 0);
    assert_int_equal(ks_seal(want, x, 32), 0);
    return memcmp(got, want, 32) == 0;
}

/* Load path and expect success with the key_b. */
static void
expect_load_b(const char *path)
{
    char err[512];

    memset(err, 'x', sizeof(err));
    ks_seal_key_wipe();
    if (ks_seal_key_load(path, err, sizeof(err)) != 0) {
        fail_msg("load %s: %s", path, err);
    }
    assert_string_equal(err, "");
    assert_int_equal(ks_seal_key_is_set(), 1);
    assert_true(key_is_b());
}

/*
 * Load path with key_a in effect and expect a rejection whose message names
 * the file and contains what; the key stays key_a.
 */
static void
expect_reject(const char *path, const char *what)
{
    unsigned char x[32] = { 9, 8, 7 }, before[32], after[32];
    char err[512];

    assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
    assert_int_equal(ks_seal(before, x, 32), 0);
    if (ks_seal_key_load(path, err, sizeof(err)) != -1) {
        fail_msg("load %s was accepted", path);
    }
    print_message("# %s\n", err);
    assert_non_null(strstr(err, path));
    if (strstr(err, what) == NULL) {
        fail_msg("message \"%s\" does not say \"%s\"", err, what);
    }
    assert_int_equal(ks_seal(after, x, 32), 0);
    assert_memory_equal(before, after, 32);
}

static void
key_file_good(void **state)
{
    char path[256], hex[2 * KS_SEAL_KEY_LEN + 3];
    int fds = open_fds();

    (void) state;
    write_file(path, sizeof(path), "raw", key_b, sizeof(key_b), 0600);
    expect_load_b(path);

    write_file(path, sizeof(path), "raw0400", key_b, sizeof(key_b), 0400);
    expect_load_b(path);

    key_b_hex(hex, 0);
    strcat(hex, "\n");
    write_file(path, sizeof(path), "hexnl", hex, 65, 0600);
    expect_load_b(path);

    write_file(path, sizeof(path), "hex", hex, 64, 0600);
    expect_load_b(path);

    key_b_hex(hex, 1);
    write_file(path, sizeof(path), "HEX", hex, 64, 0600);
    expect_load_b(path);

    /* err may be absent */
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_key_load(path, NULL, 0), 0);
    assert_true(key_is_b());

    assert_int_equal(open_fds(), fds);
}

static void
key_file_bad(void **state)
{
    unsigned char raw[4096], zero[KS_SEAL_KEY_LEN];
    char path[256], hex[2 * KS_SEAL_KEY_LEN + 3], err[8];
    int fds = open_fds();

    (void) state;
    rng_fill(raw, sizeof(raw));
    memset(zero, 0, sizeof(zero));
    key_b_hex(hex, 0);

    write_file(path, sizeof(path), "empty", raw, 0, 0600);
    expect_reject(path, "has 0 bytes; expected exactly 32 raw bytes or 64 hex");
    write_file(path, sizeof(path), "raw31", raw, 31, 0600);
    expect_reject(path, "has 31 bytes; expected exactly 32 raw bytes");
    write_file(path, sizeof(path), "raw33", raw, 33, 0600);
    expect_reject(path, "has 33 bytes");
    memcpy(raw + 100, key_b, 32);
    raw[132] = '\n';
    write_file(path, sizeof(path), "raw32nl", raw + 100, 33, 0600);
    expect_reject(path, "has 33 bytes");
    write_file(path, sizeof(path), "hex63", hex, 63, 0600);
    expect_reject(path, "has 63 bytes");
    strcpy(hex + 64, "\r\n");
    write_file(path, sizeof(path), "hexcrlf", hex, 66, 0600);
    expect_reject(path, "is longer than 65 bytes");
    hex[64] = ' ';
    write_file(path, sizeof(path), "hexspace", hex, 65, 0600);
    expect_reject(path, "has 65 bytes");
    write_file(path, sizeof(path), "big", raw, sizeof(raw), 0600);
    expect_reject(path, "is longer than 65 bytes");

    key_b_hex(hex, 0);
    hex[10] = 'g';
    write_file(path, sizeof(path), "badhex", hex, 64, 0600);
    expect_reject(path, "not a hex digit at offset 10");
    key_b_hex(hex, 0);
    hex[63] = ' ';
    hex[64] = '\n';
    write_file(path, sizeof(path), "badhex2", hex, 65, 0600);
    expect_reject(path, "not a hex digit at offset 63");

    write_file(path, sizeof(path), "zero", zero, sizeof(zero), 0600);
    expect_reject(path, "all-zero key");
    write_file(path, sizeof(path), "zerohex",
               "0000000000000000000000000000000000000000000000000000000000000000",
               64, 0600);
    expect_reject(path, "all-zero key");

    /* permissions: nothing for group or others */
    write_file(path, sizeof(path), "m644", key_b, 32, 0644);
    expect_reject(path, "accessible by group or others (mode 0644)");
    write_file(path, sizeof(path), "m640", key_b, 32, 0640);
    expect_reject(path, "(mode 0640); expected mode 0600 or stricter");
    write_file(path, sizeof(path), "m604", key_b, 32, 0604);
    expect_reject(path, "mode 0604");
    write_file(path, sizeof(path), "m620", key_b, 32, 0620);
    expect_reject(path, "mode 0620");
    write_file(path, sizeof(path), "m602", key_b, 32, 0602);
    expect_reject(path, "mode 0602");
    write_file(path, sizeof(path), "m610", key_b, 32, 0610);
    expect_reject(path, "mode 0610");

    /* not regular files */
    snprintf(path, sizeof(path), "%s/missing", tmpdir);
    expect_reject(path, "cannot open: No such file or directory");
    snprintf(path, sizeof(path), "%s/dir", tmpdir);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_reject(path, "is a directory; expected a regular file");
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_reject(path, "is not a regular file");   /* and does not block */
    expect_reject("/dev/zero", "is not a regular file");

    /* a short message buffer is truncated and terminated */
    memset(err, 'x', sizeof(err));
    assert_int_equal(ks_seal_key_load(path, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(ks_seal_key_load(path, NULL, 0), -1);
    assert_int_equal(ks_seal_key_load(NULL, err, sizeof(err)), -1);

    assert_int_equal(open_fds(), fds);
}

static void
key_file_owner(void **state)
{
    char path[256];
    int fd;

    (void) state;
    if (geteuid() != 0) {
        skip();                 /* only root can give a file away */
    }
    write_file(path, sizeof(path), "owner", key_b, 32, 0600);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, 12345, (gid_t) -1), 0);
    close(fd);
    expect_reject(path, "is owned by uid 12345; expected owner root or uid 0");
}

/* ---- identity mode ----------------------------------------------------- */

static void
identity_needs_magic(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN], s[KS_SEAL_MAX_LEN];
    size_t k, n;

    (void) state;
    rng_fill(x, sizeof(x));

    /* refused without the magic value, or with a wrong "on" */
    assert_int_equal(ks_seal_test_set_identity(0, 1), -1);
    assert_int_equal(ks_seal_test_set_identity(1, 1), -1);
    assert_int_equal(ks_seal_test_set_identity(UINT64_MAX, 1), -1);
    assert_int_equal(ks_seal_test_set_identity(
                         KS_SEAL_TEST_IDENTITY_MAGIC ^ 1, 1), -1);
    assert_int_equal(ks_seal_test_set_identity(
                         KS_SEAL_TEST_IDENTITY_MAGIC >> 1, 1), -1);
    assert_int_equal(ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                               2), -1);
    assert_int_equal(ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                               -1), -1);
    assert_int_equal(ks_seal_identity_on(), 0);
    assert_int_equal(ks_seal(y, x, 32), 0);
    assert_memory_not_equal(y, x, 32);              /* still sealing */

    /* with it: copies, lengths still checked, no key needed */
    assert_int_equal(ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                               1), 0);
    assert_int_equal(ks_seal_identity_on(), 1);
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        assert_int_equal(ks_seal(y, x, n), 0);
        assert_memory_equal(y, x, n);
        assert_int_equal(ks_unseal(y, x, n), 0);
        assert_memory_equal(y, x, n);
    }
    memset(s, 0x77, sizeof(s));
    memcpy(y, s, sizeof(y));
    assert_int_equal(ks_seal(y, x, 33), -1);
    assert_memory_equal(y, s, sizeof(y));

    /* off again (any magic), and the key is still there */
    assert_int_equal(ks_seal_test_set_identity(0, 0), 0);
    assert_int_equal(ks_seal_identity_on(), 0);
    assert_int_equal(ks_seal(y, x, 32), 0);
    assert_memory_not_equal(y, x, 32);

    /* identity without a key; wipe turns it off */
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                               1), 0);
    assert_int_equal(ks_seal(y, x, 48), 0);
    assert_memory_equal(y, x, 48);
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_identity_on(), 0);
    assert_int_equal(ks_seal(y, x, 48), -1);
}

/* ---- cost (a printed figure, not an assertion) --------------------------- */

static double
ns_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static void
cost(void **state)
{
    static const size_t ns[] = { 16, 32, 48, 66 };
    const int iters = 100000;
    unsigned char buf[KS_SEAL_MAX_LEN];
    double t0, seal_ns, unseal_ns;
    size_t k;
    int i;

    (void) state;
    rng_fill(buf, sizeof(buf));
    for (k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
        for (i = 0; i < 1000; i++) {               /* warm up */
            assert_int_equal(ks_seal(buf, buf, ns[k]), 0);
        }
        t0 = ns_now();
        for (i = 0; i < iters; i++) {
            if (ks_seal(buf, buf, ns[k]) != 0) {
                fail();
            }
        }
        seal_ns = (ns_now() - t0) / iters;
        t0 = ns_now();
        for (i = 0; i < iters; i++) {
            if (ks_unseal(buf, buf, ns[k]) != 0) {
                fail();
            }
        }
        unseal_ns = (ns_now() - t0) / iters;
        print_message("# cost %2zu bytes: seal %.0f ns, unseal %.0f ns "
                      "(mean of %d)\n", ns[k], seal_ns, unseal_ns, iters);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(known_answers, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(round_trip, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(deterministic, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(tokens_differ, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(length_preserved, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(avalanche, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(avalanche_rejects_naive_seals,
                                        setup_key_a, teardown_wipe),
        cmocka_unit_test_setup_teardown(related_lengths, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(bad_lengths, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(no_key, setup_key_a, teardown_wipe),
        cmocka_unit_test_setup_teardown(random_key, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(key_file_good, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(key_file_bad, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(key_file_owner, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(identity_needs_magic, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(cost, setup_key_a, teardown_wipe),
    };

    return cmocka_run_group_tests_name("ks_seal", tests, setup_tmpdir,
                                       teardown_tmpdir);
}
