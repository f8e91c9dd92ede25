/*
 * Unit tests of keystore/ks_seal: sealed tokens.
 *
 * The avalanche and related-length checks are functions that return a
 * verdict instead of asserting, so that they can be run on a naive
 * XOR-with-keystream "seal" as a positive control: such a seal round-trips,
 * is deterministic and changes every secret, and these checks must reject
 * it.  The class-separation check is built the same way: its positive
 * controls are "class" schemes that look fine at first sight (tokens of
 * different classes differ in half their bits) but leave a fixed difference
 * between the classes.  The known answers pin the token format (tokens
 * persist in tickets and are shared between servers); they were computed
 * by the independent Python implementation quoted above known_answers().
 *
 * Tests that do not concern classes run for every class, through
 * seal_cls()/unseal_cls() and test_cls.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

static const unsigned classes[] = {
    KS_SEAL_SECRET, KS_SEAL_RECORD_KEY, KS_SEAL_MAC_KEY,
};
#define NCLASSES (sizeof(classes) / sizeof(classes[0]))

/* Not classes: every one must be refused. */
static const unsigned bad_classes[] = {
    KS_SEAL_NCLASSES, KS_SEAL_NCLASSES + 1, 7, 8, 16, 255, 256, 0x10000,
    INT_MAX, (unsigned) INT_MAX + 1, UINT_MAX - 1, UINT_MAX,
};
#define NBADCLASSES (sizeof(bad_classes) / sizeof(bad_classes[0]))

typedef int (*seal_fn)(unsigned char *out, const unsigned char *in,
    size_t len);
typedef int (*seal_cls_fn)(unsigned char *out, const unsigned char *in,
    size_t len, unsigned cls);

/* The class that seal_cls()/unseal_cls() use. */
static unsigned test_cls = KS_SEAL_SECRET;

static int
seal_cls(unsigned char *out, const unsigned char *in, size_t len)
{
    return ks_seal(out, in, len, test_cls);
}

static int
unseal_cls(unsigned char *out, const unsigned char *in, size_t len)
{
    return ks_unseal(out, in, len, test_cls);
}

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
    test_cls = KS_SEAL_SECRET;
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

/*
 * Naive token classes (positive controls for class_check()).  Each is a
 * good permutation (the real seal, class SECRET) and gives tokens of
 * different classes that differ in about half their bits, but:
 *   mask_out:  token = seal(x) ^ M[cls]: tokens of one secret in two
 *              classes differ by a fixed M[a] ^ M[b];
 *   mask_in:   token = seal(x ^ M[cls]): a token of class a unseals in
 *              class b to x ^ M[a] ^ M[b], the secret with a fixed
 *              difference (an HMAC with that key is as good as with x);
 *   no_class:  the class is ignored (v1).
 */
static unsigned char naive_mask[KS_SEAL_NCLASSES][KS_SEAL_MAX_LEN];

static void
xor_into(unsigned char *dst, const unsigned char *src, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        dst[i] ^= src[i];
    }
}

/* f(in, class SECRET) ^ M[cls]; f is ks_seal or ks_unseal. */
static int
f_then_mask(seal_cls_fn f, unsigned char *out, const unsigned char *in,
    size_t len, unsigned cls)
{
    if (cls >= KS_SEAL_NCLASSES || f(out, in, len, KS_SEAL_SECRET)) {
        return -1;
    }
    xor_into(out, naive_mask[cls], len);
    return 0;
}

/* f(in ^ M[cls], class SECRET). */
static int
mask_then_f(seal_cls_fn f, unsigned char *out, const unsigned char *in,
    size_t len, unsigned cls)
{
    unsigned char tmp[KS_SEAL_MAX_LEN];

    if (cls >= KS_SEAL_NCLASSES || !ks_seal_len_ok(len)) {
        return -1;
    }
    memcpy(tmp, in, len);
    xor_into(tmp, naive_mask[cls], len);
    return f(out, tmp, len, KS_SEAL_SECRET);
}

/* f(in, class SECRET), whatever cls is. */
static int
ignore_class(seal_cls_fn f, unsigned char *out, const unsigned char *in,
    size_t len, unsigned cls)
{
    (void) cls;
    return f(out, in, len, KS_SEAL_SECRET);
}

/* The schemes' seal and unseal as the seal_cls_fn class_check() takes:
 * name(out, in, len, cls) is how(f, out, in, len, cls). */
#define NAIVE_CLASS_FN(name, how, f)                                        \
    static int                                                              \
    name(unsigned char *out, const unsigned char *in, size_t len,           \
        unsigned cls)                                                       \
    {                                                                       \
        return how(f, out, in, len, cls);                                   \
    }

NAIVE_CLASS_FN(mask_out_seal, f_then_mask, ks_seal)
NAIVE_CLASS_FN(mask_out_unseal, mask_then_f, ks_unseal)
NAIVE_CLASS_FN(mask_in_seal, mask_then_f, ks_seal)
NAIVE_CLASS_FN(mask_in_unseal, f_then_mask, ks_unseal)
NAIVE_CLASS_FN(no_class_seal, ignore_class, ks_seal)
NAIVE_CLASS_FN(no_class_unseal, ignore_class, ks_unseal)
#undef NAIVE_CLASS_FN

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

/* The criteria of class_check(), as bits of its result. */
#define CL_EQUAL   0x01 /* ya == yb or z == x (see class_check) */
#define CL_TOKENS  0x02 /* ya, yb: not about half the bits differ */
#define CL_CROSS   0x04 /* z, x: not about half the bits differ */
#define CL_DTOKENS 0x08 /* ya ^ yb does not vary with x */
#define CL_DCROSS  0x10 /* z ^ x does not vary with x */
#define CL_ALL     0x1f

#define CLASS_TRIALS 200

/* 1 if total differing bits out of trials * 8n is within 45 % .. 55 %. */
static int
about_half(size_t total, size_t trials, size_t n, double *avg)
{
    *avg = (double) total / (double) (trials * 8 * n);
    return *avg > 0.45 && *avg < 0.55;
}

/*
 * Whether classes a and b (a != b) are unrelated at length n, by
 * CLASS_TRIALS random secrets x.  With ya = seal(x, a), yb = seal(x, b),
 * z = unseal(ya, b) (a class-a token used where class b is expected):
 *   ya != yb and z != x every time;
 *   ya and yb, and z and x, differ in about half (45 .. 55 %) the bits
 *   on average;
 *   the differences ya ^ yb and z ^ x are not fixed: those of consecutive
 *   secrets differ in about half the bits on average, and every bit of
 *   them changes in some trial.  (A fixed difference would make a token
 *   of one class a token of the other, or the other class's unsealing
 *   the secret plus a constant.)
 * Returns 0 or the CL_* bits of the criteria that failed (all are
 * evaluated), with a description of the first in why.
 */
static unsigned
class_check(seal_cls_fn seal, seal_cls_fn unseal, size_t n, unsigned a,
    unsigned b, char *why, size_t whylen)
{
    unsigned char x[KS_SEAL_MAX_LEN], ya[KS_SEAL_MAX_LEN], yb[KS_SEAL_MAX_LEN];
    unsigned char z[KS_SEAL_MAX_LEN];
    unsigned char dy[KS_SEAL_MAX_LEN], dz[KS_SEAL_MAX_LEN];
    unsigned char dy0[KS_SEAL_MAX_LEN], dz0[KS_SEAL_MAX_LEN];
    unsigned char seen_y[KS_SEAL_MAX_LEN], seen_z[KS_SEAL_MAX_LEN];
    size_t t, i, h_tok = 0, h_cross = 0, h_dy = 0, h_dz = 0;
    unsigned failed = 0;
    double av_tok, av_cross, av_dy, av_dz;

    memset(seen_y, 0, sizeof(seen_y));
    memset(seen_z, 0, sizeof(seen_z));
    for (t = 0; t < CLASS_TRIALS; t++) {
        rng_fill(x, n);
        if (seal(ya, x, n, a) != 0 || seal(yb, x, n, b) != 0
            || unseal(z, ya, n, b) != 0) {
            snprintf(why, whylen, "%zu bytes, classes %u/%u: the seal "
                     "failed", n, a, b);
            return CL_ALL;
        }
        if (memcmp(ya, yb, n) == 0 || memcmp(z, x, n) == 0) {
            failed |= CL_EQUAL;
        }
        h_tok += hamming(ya, yb, n);
        h_cross += hamming(z, x, n);
        for (i = 0; i < n; i++) {
            dy[i] = ya[i] ^ yb[i];
            dz[i] = z[i] ^ x[i];
        }
        if (t > 0) {
            h_dy += hamming(dy, dy0, n);
            h_dz += hamming(dz, dz0, n);
            for (i = 0; i < n; i++) {
                seen_y[i] |= dy[i] ^ dy0[i];
                seen_z[i] |= dz[i] ^ dz0[i];
            }
        }
        memcpy(dy0, dy, n);
        memcpy(dz0, dz, n);
    }
    if (!about_half(h_tok, CLASS_TRIALS, n, &av_tok)) {
        failed |= CL_TOKENS;
    }
    if (!about_half(h_cross, CLASS_TRIALS, n, &av_cross)) {
        failed |= CL_CROSS;
    }
    if (!about_half(h_dy, CLASS_TRIALS - 1, n, &av_dy)) {
        failed |= CL_DTOKENS;
    }
    if (!about_half(h_dz, CLASS_TRIALS - 1, n, &av_dz)) {
        failed |= CL_DCROSS;
    }
    for (i = 0; i < n; i++) {
        if (seen_y[i] != 0xff) {
            failed |= CL_DTOKENS;
        }
        if (seen_z[i] != 0xff) {
            failed |= CL_DCROSS;
        }
    }

    if (failed & CL_EQUAL) {
        snprintf(why, whylen, "%zu bytes, classes %u/%u: a token equals the "
                 "other class's token, or unseals in the other class to "
                 "the secret", n, a, b);
    } else if (failed & CL_TOKENS) {
        snprintf(why, whylen, "%zu bytes, classes %u/%u: the tokens differ "
                 "in %.1f %% of the bits", n, a, b, 100 * av_tok);
    } else if (failed & CL_CROSS) {
        snprintf(why, whylen, "%zu bytes, classes %u/%u: unsealed in the "
                 "wrong class, %.1f %% of the bits differ from the secret",
                 n, a, b, 100 * av_cross);
    } else if (failed & CL_DTOKENS) {
        snprintf(why, whylen, "%zu bytes, classes %u/%u: the tokens of the "
                 "two classes differ by a (partly) fixed value (%.1f %% of "
                 "its bits change)", n, a, b, 100 * av_dy);
    } else if (failed & CL_DCROSS) {
        snprintf(why, whylen, "%zu bytes, classes %u/%u: unsealed in the "
                 "wrong class gives the secret xor a (partly) fixed value "
                 "(%.1f %% of its bits change)", n, a, b, 100 * av_dz);
    } else {
        snprintf(why, whylen, "%zu bytes, classes %u/%u: tokens differ in "
                 "%.1f %%, wrong-class unseal in %.1f %% of the bits", n, a,
                 b, 100 * av_tok, 100 * av_cross);
    }
    return failed;
}

/* ---- tests ---------------------------------------------------------------- */

/*
 * Expected tokens for key 00 01 .. 1f and secret a0 a1 a2 ... (n bytes) in
 * each class, from this independent implementation of the construction in
 * ks_seal.h (format v2):
 *
 *   import hashlib, hmac
 *   from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
 *   CLASSES = [b"secret", b"record key", b"mac key"]   # enum ks_seal_class
 *   def hkdf(key, cls, purpose):
 *       prk = hmac.new(b"mpk-tls sealed tokens v2", key, hashlib.sha256).digest()
 *       info = CLASSES[cls] + b"/" + purpose
 *       return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
 *   def seal(key, x, cls):
 *       n = len(x)
 *       if n == 16:
 *           e = Cipher(algorithms.AES(hkdf(key, cls, b"aes-256 block")),
 *                      modes.ECB()).encryptor()
 *           return e.update(x) + e.finalize()
 *       h = n // 2
 *       L, R = bytearray(x[:h]), bytearray(x[h:])
 *       for i in range(4):
 *           k = hkdf(key, cls, b"feistel round %d" % i)
 *           src, dst = (R, L) if i % 2 == 0 else (L, R)
 *           f = b"".join(hmac.new(k, bytes([c, n, i]) + bytes(src),
 *                                 hashlib.sha256).digest()
 *                        for c in range((h + 31) // 32))
 *           for j in range(h):
 *               dst[j] ^= f[j]
 *       return bytes(L + R)
 *
 * (Its hkdf() agrees with cryptography's HKDF class.)  The v1 tokens (no
 * classes, salt "... v1", info without a class) of the same secrets are
 * kept to check that no class reproduces them.
 */
static void
known_answers(void **state)
{
    static const char *const expect[KS_SEAL_NCLASSES][NLENGTHS] = {
        [KS_SEAL_SECRET] = {
            "edb59546af194c873e4e936f005fbe10",
            "f94465d491412d4f101ab624115d089daee61cdd8eabbd7f4da06cd92098b1aa",
            "45a60185b0bc176d798c64ce1c335e8a642666d31ba0396b50a3cb9927d7cf76"
            "4a6a7dab0b2df48751329aed2623ffe6",
            "58aa987b4574a6eda7d21457e6546c215e4e63460f19de07a88122ce56677725"
            "d1359dea625ba064b699083f7d133072f6e1c5fd0182ac3b",
            "f661fd21745f58919ff6d2bc567d5239004a3caa14eaec3e25b7b3ad056e7753"
            "1b667e7caef1b2f7b8bcd91d317b8bb469b7504b0c91397ba9ea33d0b8e34905",
            "14b081daf1c7a8febfc6b086a97569b7162f580ca74681c9be22a664908d5635"
            "d8dcf73a8388ed8a33b2250de9281a7548b343630d7bbbd7e191f625c141c1cd"
            "6eea",
        },
        [KS_SEAL_RECORD_KEY] = {
            "78d76125ce068f5897565b34eef86ffa",
            "44b32ecb8fb0bdcbcdc58285c37347b4533eeebf5bdea5e54ec125f97776557c",
            "b5eb275ff5bb55344c17945c0dc80ef489a01dc651d9fe38bc96db34cb6dbd82"
            "7f9d0784e945afef850083e1da7a62bf",
            "1f298cd741b772e93b46c74aac96067789386da86781db23216888190b3233e2"
            "a9495a413d067868427ba178d182632a613174e4390a744c",
            "2ad983e928c2def76deb73a611b8b02dc274393eca143e9489bcc02ebc6b0f0f"
            "abe4988548292391105ac8646b66bdc16a0c2e79936feb3690d97b55595f409d",
            "cdd0fb406ee30d541ae5e99f25af99739c5e1cacbc2350e45c31c472af14edf6"
            "79723df7748a66b7b62f32cd543159a3b6c5aa498331a93558212a7dab1311bb"
            "90b5",
        },
        [KS_SEAL_MAC_KEY] = {
            "6c253588e4abde2582c93d3c916230fc",
            "3ba733544d85f61856f0231192dfefd38fd6bef3d1e27edeb03f2a697d30f8ca",
            "c1fb05d673c727d051b07800ccb79b41dcdab939ab58dee4d9a30a87945d7a0c"
            "a700d6da31e72b791ba5d5a91ca2e157",
            "f022efe1ee266cf7e392a32bde0d6f5266abc976b6ac22fab07f43c28897f76c"
            "d0f68909aeef63a7a0540120b93233c2ad3114a01b89f05a",
            "5782166f9ecfebb61593d97e4a8e8c5681c8a1189bcbfa37983699d716d8391d"
            "2b5115536bf56df952326827ce6c33a045c056ae10ed673e2f654133903864f3",
            "d2ddf8b1f536b18055e4320895b50f2ea06c4115efd37570a773af28d7ed6e7a"
            "33ee0ce6c7afc1e083bd04a7e0c5ceb282686fb0cc872e02e2ea62177a1b0307"
            "67b2",
        },
    };
    static const char *const v1[NLENGTHS] = {
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
    unsigned char want[KS_SEAL_MAX_LEN], old[KS_SEAL_MAX_LEN];
    size_t c, k, j, n;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            for (j = 0; j < n; j++) {
                x[j] = (unsigned char) (0xa0 + j);
            }
            unhex(want, expect[classes[c]][k], n);
            assert_int_equal(ks_seal(y, x, n, classes[c]), 0);
            assert_memory_equal(y, want, n);
            assert_int_equal(ks_unseal(z, want, n, classes[c]), 0);
            assert_memory_equal(z, x, n);

            /* a v1 token is no v2 token of any class */
            unhex(old, v1[k], n);
            assert_memory_not_equal(y, old, n);
            assert_int_equal(ks_unseal(z, old, n, classes[c]), 0);
            assert_memory_not_equal(z, x, n);
        }
    }
}

static void
round_trip(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    size_t c, k, t, n;
    unsigned cls;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        cls = classes[c];
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            for (t = 0; t < 2000; t++) {
                rng_fill(x, n);
                assert_int_equal(ks_seal(y, x, n, cls), 0);
                assert_int_equal(ks_unseal(z, y, n, cls), 0);
                assert_memory_equal(z, x, n);

                /* in place, both ways */
                memcpy(z, x, n);
                assert_int_equal(ks_seal(z, z, n, cls), 0);
                assert_memory_equal(z, y, n);
                assert_int_equal(ks_unseal(z, z, n, cls), 0);
                assert_memory_equal(z, x, n);
            }
            /* unseal is a permutation too: unseal-then-seal is the
             * identity */
            rng_fill(y, n);
            assert_int_equal(ks_unseal(x, y, n, cls), 0);
            assert_int_equal(ks_seal(z, x, n, cls), 0);
            assert_memory_equal(z, y, n);
        }
    }
}

static void
deterministic(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y1[KS_SEAL_MAX_LEN];
    unsigned char y2[KS_SEAL_MAX_LEN], y3[KS_SEAL_MAX_LEN];
    size_t c, k, n;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            rng_fill(x, n);
            assert_int_equal(ks_seal(y1, x, n, classes[c]), 0);
            assert_int_equal(ks_seal(y2, x, n, classes[c]), 0);
            assert_memory_equal(y1, y2, n);

            /* the same key set again (a restart with the same key file) */
            ks_seal_key_wipe();
            assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
            assert_int_equal(ks_seal(y3, x, n, classes[c]), 0);
            assert_memory_equal(y1, y3, n);
        }
    }
}

static void
tokens_differ(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], ya[KS_SEAL_MAX_LEN];
    unsigned char yb[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    size_t c, k, t, n, d_secret, d_keys;
    unsigned cls;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        cls = classes[c];
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            d_secret = d_keys = 0;
            for (t = 0; t < 100; t++) {
                rng_fill(x, n);
                assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
                assert_int_equal(ks_seal(ya, x, n, cls), 0);
                assert_int_equal(ks_seal_key_set(key_b, sizeof(key_b)), 0);
                assert_int_equal(ks_seal(yb, x, n, cls), 0);
                assert_memory_not_equal(ya, x, n);
                assert_memory_not_equal(yb, ya, n);
                d_secret += hamming(ya, x, n);
                d_keys += hamming(ya, yb, n);

                /* a token does not unseal under the other key */
                assert_int_equal(ks_unseal(z, ya, n, cls), 0);
                assert_memory_not_equal(z, x, n);
            }
            /* about half the bits differ (keys differ in one bit only) */
            assert_in_range(d_secret, 100 * 8 * n * 45 / 100,
                            100 * 8 * n * 55 / 100);
            assert_in_range(d_keys, 100 * 8 * n * 45 / 100,
                            100 * 8 * n * 55 / 100);
        }
    }
}

static void
length_preserved(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], buf[KS_SEAL_MAX_LEN + 64];
    unsigned char back[KS_SEAL_MAX_LEN + 64];
    size_t c, k, n, i;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            rng_fill(x, n);
            memset(buf, 0xa5, sizeof(buf));
            assert_int_equal(ks_seal(buf + 32, x, n, classes[c]), 0);
            for (i = 0; i < 32; i++) {
                assert_int_equal(buf[i], 0xa5);
            }
            for (i = 32 + n; i < sizeof(buf); i++) {
                assert_int_equal(buf[i], 0xa5);
            }
            memset(back, 0x5a, sizeof(back));
            assert_int_equal(ks_unseal(back + 32, buf + 32, n, classes[c]),
                             0);
            assert_memory_equal(back + 32, x, n);
            for (i = 0; i < 32; i++) {
                assert_int_equal(back[i], 0x5a);
            }
            for (i = 32 + n; i < sizeof(back); i++) {
                assert_int_equal(back[i], 0x5a);
            }
        }
    }
}

static void
avalanche(void **state)
{
    char why[160];
    size_t c, k;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        test_cls = classes[c];
        for (k = 0; k < NLENGTHS; k++) {
            if (avalanche_check(seal_cls, lengths[k], why, sizeof(why))
                != 0) {
                fail_msg("seal, class %u: %s", test_cls, why);
            }
            if (avalanche_check(unseal_cls, lengths[k], why, sizeof(why))
                != 0) {
                fail_msg("unseal, class %u: %s", test_cls, why);
            }
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
    size_t c, i, j;

    (void) state;
    for (c = 0; c < NCLASSES; c++) {
        test_cls = classes[c];
        for (i = 0; i < NLENGTHS; i++) {
            for (j = i + 1; j < NLENGTHS; j++) {
                if (!related_lengths_ok(seal_cls, lengths[i], lengths[j],
                                        why, sizeof(why))) {
                    fail_msg("class %u: %s", test_cls, why);
                }
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
    size_t c, i;

    (void) state;
    rng_fill(in, sizeof(in));
    memset(sentinel, 0xc3, sizeof(sentinel));
    for (c = 0; c < NCLASSES; c++) {
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            memcpy(out, sentinel, sizeof(out));
            assert_int_equal(ks_seal(out, in, bad[i], classes[c]), -1);
            assert_int_equal(ks_unseal(out, in, bad[i], classes[c]), -1);
            assert_memory_equal(out, sentinel, sizeof(out));
            assert_int_equal(ks_seal_len_ok(bad[i]), 0);
        }
        for (i = 0; i < NLENGTHS; i++) {
            assert_int_equal(ks_seal_len_ok(lengths[i]), 1);
            assert_int_equal(ks_seal(NULL, in, lengths[i], classes[c]), -1);
            assert_int_equal(ks_unseal(out, NULL, lengths[i], classes[c]),
                             -1);
            assert_memory_equal(out, sentinel, sizeof(out));
        }
    }
}

static void
no_key(void **state)
{
    unsigned char in[KS_SEAL_MAX_LEN], out[KS_SEAL_MAX_LEN];
    unsigned char sentinel[KS_SEAL_MAX_LEN], ref[KS_SEAL_MAX_LEN];
    size_t c, k;

    (void) state;
    rng_fill(in, sizeof(in));
    assert_int_equal(ks_seal(ref, in, 32, KS_SEAL_SECRET), 0);
    memset(sentinel, 0x3c, sizeof(sentinel));

    ks_seal_key_wipe();
    assert_int_equal(ks_seal_key_is_set(), 0);
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            memcpy(out, sentinel, sizeof(out));
            assert_int_equal(ks_seal(out, in, lengths[k], classes[c]), -1);
            assert_int_equal(ks_unseal(out, in, lengths[k], classes[c]), -1);
            assert_memory_equal(out, sentinel, sizeof(out));
        }
    }
    ks_seal_key_wipe();                         /* twice is fine */

    /* bad key lengths are refused and set nothing */
    assert_int_equal(ks_seal_key_set(key_a, 16), -1);
    assert_int_equal(ks_seal_key_set(key_a, 31), -1);
    assert_int_equal(ks_seal_key_set(key_a, 33), -1);
    assert_int_equal(ks_seal_key_set(NULL, 32), -1);
    assert_int_equal(ks_seal_key_is_set(), 0);
    assert_int_equal(ks_seal(out, in, 32, KS_SEAL_SECRET), -1);

    /* a bad key length does not replace a good key either */
    assert_int_equal(ks_seal_key_set(key_a, sizeof(key_a)), 0);
    assert_int_equal(ks_seal_key_set(key_b, 31), -1);
    assert_int_equal(ks_seal(out, in, 32, KS_SEAL_SECRET), 0);
    assert_memory_equal(out, ref, 32);
}

static void
random_key(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y1[KS_SEAL_MAX_LEN];
    unsigned char y2[KS_SEAL_MAX_LEN], z[KS_SEAL_MAX_LEN];
    size_t c, k, n;

    (void) state;
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_key_random(), 0);
    assert_int_equal(ks_seal_key_is_set(), 1);
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            rng_fill(x, n);
            assert_int_equal(ks_seal_key_random(), 0);
            assert_int_equal(ks_seal(y1, x, n, classes[c]), 0);
            assert_int_equal(ks_unseal(z, y1, n, classes[c]), 0);
            assert_memory_equal(z, x, n);
            assert_int_equal(ks_seal_key_random(), 0);
            assert_int_equal(ks_seal(y2, x, n, classes[c]), 0);
            assert_memory_not_equal(y1, y2, n);
        }
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

/* 1 if the current key is key_b (compared by a token of every class). */
static int
key_is_b(void)
{
    unsigned char x[32] = { 1, 2, 3 };
    unsigned char want[NCLASSES][32], got[NCLASSES][32];
    size_t c;

    for (c = 0; c < NCLASSES; c++) {
        assert_int_equal(ks_seal(got[c], x, 32, classes[c]), 0);
    }
    assert_int_equal(ks_seal_key_set(key_b, sizeof(key_b)), 0);
    for (c = 0; c < NCLASSES; c++) {
        assert_int_equal(ks_seal(want[c], x, 32, classes[c]), 0);
    }
    return memcmp(got, want, sizeof(got)) == 0;
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
    assert_int_equal(ks_seal(before, x, 32, KS_SEAL_SECRET), 0);
    if (ks_seal_key_load(path, err, sizeof(err)) != -1) {
        fail_msg("load %s was accepted", path);
    }
    print_message("# %s\n", err);
    assert_non_null(strstr(err, path));
    if (strstr(err, what) == NULL) {
        fail_msg("message \"%s\" does not say \"%s\"", err, what);
    }
    assert_int_equal(ks_seal(after, x, 32, KS_SEAL_SECRET), 0);
    assert_memory_equal(before, after, 32);
}

/* Write tmpdir/name (as write_file) and expect_reject() it with what. */
static void
reject_file(const char *name, const void *data, size_t len, mode_t mode,
    const char *what)
{
    char path[256];

    write_file(path, sizeof(path), name, data, len, mode);
    expect_reject(path, what);
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
    static const struct {
        const char  *name;
        mode_t       mode;
        const char  *what;
    } modes[] = {
        { "m644", 0644, "accessible by group or others (mode 0644)" },
        { "m640", 0640, "(mode 0640); expected mode 0600 or stricter" },
        { "m604", 0604, "mode 0604" },
        { "m620", 0620, "mode 0620" },
        { "m602", 0602, "mode 0602" },
        { "m610", 0610, "mode 0610" },
    };
    unsigned char raw[4096], zero[KS_SEAL_KEY_LEN];
    char path[256], hex[2 * KS_SEAL_KEY_LEN + 3], err[8];
    int fds = open_fds();
    size_t i;

    (void) state;
    rng_fill(raw, sizeof(raw));
    memset(zero, 0, sizeof(zero));
    key_b_hex(hex, 0);

    reject_file("empty", raw, 0, 0600,
                "has 0 bytes; expected exactly 32 raw bytes or 64 hex");
    reject_file("raw31", raw, 31, 0600,
                "has 31 bytes; expected exactly 32 raw bytes");
    reject_file("raw33", raw, 33, 0600, "has 33 bytes");
    memcpy(raw + 100, key_b, 32);
    raw[132] = '\n';
    reject_file("raw32nl", raw + 100, 33, 0600, "has 33 bytes");
    reject_file("hex63", hex, 63, 0600, "has 63 bytes");
    strcpy(hex + 64, "\r\n");
    reject_file("hexcrlf", hex, 66, 0600, "is longer than 65 bytes");
    hex[64] = ' ';
    reject_file("hexspace", hex, 65, 0600, "has 65 bytes");
    reject_file("big", raw, sizeof(raw), 0600, "is longer than 65 bytes");

    key_b_hex(hex, 0);
    hex[10] = 'g';
    reject_file("badhex", hex, 64, 0600, "not a hex digit at offset 10");
    key_b_hex(hex, 0);
    hex[63] = ' ';
    hex[64] = '\n';
    reject_file("badhex2", hex, 65, 0600, "not a hex digit at offset 63");

    reject_file("zero", zero, sizeof(zero), 0600, "all-zero key");
    reject_file("zerohex",
                "0000000000000000000000000000000000000000000000000000000000000000",
                64, 0600, "all-zero key");

    /* permissions: nothing for group or others */
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        reject_file(modes[i].name, key_b, 32, modes[i].mode, modes[i].what);
    }

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

/* ---- classes ------------------------------------------------------------ */

/*
 * For every length and every ordered pair of distinct classes, the classes
 * are unrelated permutations (class_check).  Two spot checks of the hole
 * that classes close: a record-key or MAC-key "unsealing" of a SECRET
 * token is not the secret.
 */
static void
class_separation(void **state)
{
    char why[200];
    size_t a, b, k;

    (void) state;
    for (k = 0; k < NLENGTHS; k++) {
        for (a = 0; a < NCLASSES; a++) {
            for (b = 0; b < NCLASSES; b++) {
                if (a == b) {
                    continue;
                }
                if (class_check(ks_seal, ks_unseal, lengths[k], classes[a],
                                classes[b], why, sizeof(why)) != 0) {
                    fail_msg("%s", why);
                }
            }
        }
        print_message("# %s\n", why);
    }
}

/* Positive controls: class_check rejects each naive class scheme at every
 * length, by the criteria that scheme breaks. */
static void
class_check_rejects_naive_classes(void **state)
{
    char why[200];
    size_t k, n;
    unsigned got;

    (void) state;
    rng_fill(&naive_mask[0][0], sizeof(naive_mask));
    for (k = 0; k < NLENGTHS; k++) {
        n = lengths[k];
        got = class_check(mask_out_seal, mask_out_unseal, n, KS_SEAL_SECRET,
                          KS_SEAL_MAC_KEY, why, sizeof(why));
        print_message("# output masking rejected: %s\n", why);
        assert_true(got & CL_DTOKENS);

        got = class_check(mask_in_seal, mask_in_unseal, n, KS_SEAL_SECRET,
                          KS_SEAL_MAC_KEY, why, sizeof(why));
        print_message("# input masking rejected: %s\n", why);
        assert_true(got & CL_DCROSS);

        got = class_check(no_class_seal, no_class_unseal, n, KS_SEAL_SECRET,
                          KS_SEAL_MAC_KEY, why, sizeof(why));
        print_message("# no classes rejected: %s\n", why);
        assert_int_equal(got, CL_ALL);
    }
}

/*
 * Anything but a class is refused by seal and unseal with -1, nothing
 * written (also in place, with identity mode on, and without a key), and
 * a refused call changes nothing for the next.
 */
static void
unknown_class(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], ref[KS_SEAL_MAX_LEN];
    unsigned char out[KS_SEAL_MAX_LEN + 16], sentinel[sizeof(out)];
    unsigned char inplace[KS_SEAL_MAX_LEN];
    size_t i, k, n;
    int mode;

    (void) state;
    rng_fill(x, sizeof(x));
    memset(sentinel, 0x96, sizeof(sentinel));
    assert_int_equal(ks_seal(ref, x, 32, KS_SEAL_RECORD_KEY), 0);

    /*
     * mode 0: identity mode on (first: there a missing class check shows as
     * a copy, not as an out-of-bounds context); 1: key set; 2: no key
     */
    for (mode = 0; mode < 3; mode++) {
        if (mode == 0) {
            assert_int_equal(ks_seal_test_set_identity(
                                 KS_SEAL_TEST_IDENTITY_MAGIC, 1), 0);
        } else if (mode == 2) {
            ks_seal_key_wipe();
        }
        for (i = 0; i < NBADCLASSES; i++) {
            for (k = 0; k < NLENGTHS; k++) {
                n = lengths[k];
                memcpy(out, sentinel, sizeof(out));
                assert_int_equal(ks_seal(out, x, n, bad_classes[i]), -1);
                assert_int_equal(ks_unseal(out, x, n, bad_classes[i]), -1);
                assert_memory_equal(out, sentinel, sizeof(out));

                memcpy(inplace, x, n);
                assert_int_equal(ks_seal(inplace, inplace, n,
                                         bad_classes[i]), -1);
                assert_int_equal(ks_unseal(inplace, inplace, n,
                                           bad_classes[i]), -1);
                assert_memory_equal(inplace, x, n);
            }
            /* a bad length too */
            assert_int_equal(ks_seal(out, x, 33, bad_classes[i]), -1);
            assert_memory_equal(out, sentinel, sizeof(out));
        }
        if (mode == 0) {
            assert_int_equal(ks_seal(out, x, 32, KS_SEAL_MAC_KEY), 0);
            assert_memory_equal(out, x, 32);
            assert_int_equal(ks_seal_test_set_identity(0, 0), 0);
        } else if (mode == 1) {
            /* the good classes still work, with the same tokens */
            assert_int_equal(ks_seal(out, x, 32, KS_SEAL_RECORD_KEY), 0);
            assert_memory_equal(out, ref, 32);
        }
    }
}

/* ---- identity mode ----------------------------------------------------- */

static void
identity_needs_magic(void **state)
{
    unsigned char x[KS_SEAL_MAX_LEN], y[KS_SEAL_MAX_LEN], s[KS_SEAL_MAX_LEN];
    size_t c, k, n;

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
    assert_int_equal(ks_seal(y, x, 32, KS_SEAL_SECRET), 0);
    assert_memory_not_equal(y, x, 32);              /* still sealing */

    /* with it: copies in every class, lengths and classes still checked,
     * no key needed */
    assert_int_equal(ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                               1), 0);
    assert_int_equal(ks_seal_identity_on(), 1);
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            assert_int_equal(ks_seal(y, x, n, classes[c]), 0);
            assert_memory_equal(y, x, n);
            assert_int_equal(ks_unseal(y, x, n, classes[c]), 0);
            assert_memory_equal(y, x, n);
        }
    }
    memset(s, 0x77, sizeof(s));
    memcpy(y, s, sizeof(y));
    assert_int_equal(ks_seal(y, x, 33, KS_SEAL_SECRET), -1);
    assert_int_equal(ks_seal(y, x, 32, KS_SEAL_NCLASSES), -1);
    assert_int_equal(ks_unseal(y, x, 32, UINT_MAX), -1);
    assert_memory_equal(y, s, sizeof(y));

    /* off again (any magic), and the key is still there */
    assert_int_equal(ks_seal_test_set_identity(0, 0), 0);
    assert_int_equal(ks_seal_identity_on(), 0);
    assert_int_equal(ks_seal(y, x, 32, KS_SEAL_SECRET), 0);
    assert_memory_not_equal(y, x, 32);

    /* identity without a key; wipe turns it off */
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_test_set_identity(KS_SEAL_TEST_IDENTITY_MAGIC,
                                               1), 0);
    assert_int_equal(ks_seal(y, x, 48, KS_SEAL_RECORD_KEY), 0);
    assert_memory_equal(y, x, 48);
    ks_seal_key_wipe();
    assert_int_equal(ks_seal_identity_on(), 0);
    assert_int_equal(ks_seal(y, x, 48, KS_SEAL_RECORD_KEY), -1);
}

/* ---- cost (a printed figure, not an assertion) --------------------------- */

static double
ns_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

/*
 * Every class and length; 10000 iterations each, repeated 5 times, the
 * fastest repetition reported (the others include whatever else the
 * machine was doing).
 */
static void
cost(void **state)
{
    const int iters = 10000, reps = 5;
    unsigned char buf[KS_SEAL_MAX_LEN];
    double t0, t, seal_ns, unseal_ns;
    size_t c, k, n;
    int i, r;

    (void) state;
    rng_fill(buf, sizeof(buf));
    for (c = 0; c < NCLASSES; c++) {
        for (k = 0; k < NLENGTHS; k++) {
            n = lengths[k];
            for (i = 0; i < 1000; i++) {           /* warm up */
                assert_int_equal(ks_seal(buf, buf, n, classes[c]), 0);
            }
            seal_ns = unseal_ns = 1e30;
            for (r = 0; r < reps; r++) {
                t0 = ns_now();
                for (i = 0; i < iters; i++) {
                    if (ks_seal(buf, buf, n, classes[c]) != 0) {
                        fail();
                    }
                }
                t = (ns_now() - t0) / iters;
                seal_ns = t < seal_ns ? t : seal_ns;
                t0 = ns_now();
                for (i = 0; i < iters; i++) {
                    if (ks_unseal(buf, buf, n, classes[c]) != 0) {
                        fail();
                    }
                }
                t = (ns_now() - t0) / iters;
                unseal_ns = t < unseal_ns ? t : unseal_ns;
            }
            print_message("# cost class %u, %2zu bytes: seal %.0f ns, "
                          "unseal %.0f ns (best of %d means of %d)\n",
                          classes[c], n, seal_ns, unseal_ns, reps, iters);
        }
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
        cmocka_unit_test_setup_teardown(class_separation, setup_key_a,
                                        teardown_wipe),
        cmocka_unit_test_setup_teardown(class_check_rejects_naive_classes,
                                        setup_key_a, teardown_wipe),
        cmocka_unit_test_setup_teardown(unknown_class, setup_key_a,
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
