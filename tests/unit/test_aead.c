/*
 * Tests of the AEAD record operations (KS_OP_AEAD_NEW, KS_OP_AEAD_RECORD,
 * KS_OP_FREE of a KS_HT_AEAD handle).  Needs MPK: runs natively on a CPU
 * with pku, else in the QEMU guest (tests/lib/qemu_guest.py).
 *
 * Linked against libkeystore-test.so for its test operations: sealing off
 * (KS_OP_TEST_SEAL_IDENTITY), so that results can be compared with
 * OpenSSL's own test vectors; tokens of known keys (KS_OP_TEST_SEAL); and
 * peeks at T memory (KS_OP_TEST_PEEK) to show a refused call wrote nothing.
 *
 * The vectors are every AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305
 * stanza with a 12-byte IV and a 16-byte tag in the pinned tree's
 * test/recipes/30-test_evp_data/evpciph_aes_common.txt and
 * evpciph_chacha.txt, extracted at build time by gen_aead_vectors.py into
 * aead_vectors.h (the guest cannot read the tree; see tests/build.mk).
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

#include "ks_test.h"

#include "aead_vectors.h"

#define NVECTORS  (sizeof(aead_vectors) / sizeof(aead_vectors[0]))

/* ---- helpers (and those of ks_test.h) ------------------------------------ */

static long
aead_new(unsigned alg, unsigned enc, const unsigned char *key, size_t keylen,
    uint64_t *h)
{
    struct ks_args_aead_new a = { alg, enc, key, keylen, h };

    return ks_gate_call(KS_OP_AEAD_NEW, &a);
}

static uint64_t
must_new(unsigned alg, unsigned enc, const unsigned char *key, size_t keylen)
{
    uint64_t h = 0;

    assert_int_equal(aead_new(alg, enc, key, keylen, &h), 0);
    assert_true(h != 0);
    assert_int_equal(h & 0xff, KS_HT_AEAD);
    return h;
}

static long
record(uint64_t h, const unsigned char *nonce, const unsigned char *aad,
    size_t aadlen, const unsigned char *in, size_t inlen, unsigned char *out,
    unsigned char *tag)
{
    struct ks_args_aead_record a = {
        h, nonce, aad, aadlen, in, inlen, out, tag
    };

    return ks_gate_call(KS_OP_AEAD_RECORD, &a);
}

/* The first vector of alg that both encrypts and decrypts, with data. */
static const struct aead_vector *
vector_for(unsigned alg)
{
    size_t i;

    for (i = 0; i < NVECTORS; i++) {
        const struct aead_vector *v = &aead_vectors[i];

        if (v->alg == alg && !v->dec_only && v->len >= 16 && v->aadlen > 0) {
            return v;
        }
    }
    fail_msg("no vector for alg %u", alg);
    return NULL;
}

/* ---- (1) OpenSSL's vectors, sealing off --------------------------------- */

static void
openssl_vectors(void **state)
{
    unsigned counts[4] = { 0 }, fails = 0;
    size_t i;

    (void) state;
    identity(1);
    for (i = 0; i < NVECTORS; i++) {
        const struct aead_vector *v = &aead_vectors[i];
        unsigned char *buf = malloc(v->len + 1), *out = malloc(v->len + 1);
        unsigned char tag[KS_AEAD_TAG_LEN];
        uint64_t h;
        long rc;
        int k;

        assert_non_null(buf);
        assert_non_null(out);
        if (!v->dec_only) {
            h = must_new(v->alg, 1, v->key, v->keylen);
            /* twice on one context, the second in place: the context is
             * reused per record and each nonce restarts it */
            for (k = 0; k < 2; k++) {
                unsigned char *dst = k == 0 ? out : buf;

                memcpy(buf, v->pt, v->len);
                memset(tag, 0, sizeof(tag));
                rc = record(h, v->iv, v->aad, v->aadlen, buf, v->len, dst,
                            tag);
                if (rc != 0 || memcmp(dst, v->ct, v->len) != 0
                    || memcmp(tag, v->tag, KS_AEAD_TAG_LEN) != 0)
                {
                    fail_msg("%s: encryption %d: rc %ld, or ciphertext or "
                             "tag differ", v->source, k, rc);
                }
            }
            assert_int_equal(free_handle(h), 0);
        }
        h = must_new(v->alg, 0, v->key, v->keylen);
        for (k = 0; k < 2; k++) {
            unsigned char *dst = k == 0 ? out : buf;

            memcpy(buf, v->ct, v->len);
            memcpy(tag, v->tag, sizeof(tag));
            memset(out, 0xa5, v->len);
            rc = record(h, v->iv, v->aad, v->aadlen, buf, v->len, dst, tag);
            if (v->fail) {
                size_t j = 0;

                while (j < v->len && dst[j] == 0) {
                    j++;
                }
                if (rc != KS_ERR_CRYPTO || j != v->len) {
                    fail_msg("%s: bad tag %d: rc %ld, out not zeroed at %zu",
                             v->source, k, rc, j);
                }
            } else if (rc != 0 || memcmp(dst, v->pt, v->len) != 0) {
                fail_msg("%s: decryption %d: rc %ld, or plaintext differs",
                         v->source, k, rc);
            }
        }
        assert_int_equal(free_handle(h), 0);
        counts[v->alg]++;
        fails += v->fail;
        free(buf);
        free(out);
    }
    identity(0);
    print_message("# vectors: AES-128-GCM %u, AES-256-GCM %u, "
                  "ChaCha20-Poly1305 %u (%u with a bad tag)\n",
                  counts[KS_AEAD_AES_128_GCM], counts[KS_AEAD_AES_256_GCM],
                  counts[KS_AEAD_CHACHA20_POLY1305], fails);
    /* the generator found the stanzas it should: the NIST GCM spec cases,
     * the boringssl GCM set, RFC 7539 */
    assert_true(counts[KS_AEAD_AES_128_GCM] >= 10);
    assert_true(counts[KS_AEAD_AES_256_GCM] >= 5);
    assert_true(counts[KS_AEAD_CHACHA20_POLY1305] >= 2);
    assert_true(fails >= 1);
}

/* ---- (2) tokens --------------------------------------------------------- */

/* Encrypt v's plaintext under the given key bytes; ciphertext and tag. */
static void
encrypt_with(const struct aead_vector *v, const unsigned char *key,
    unsigned char *ct, unsigned char *tag)
{
    uint64_t h = must_new(v->alg, 1, key, v->keylen);

    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->pt, v->len, ct,
                            tag), 0);
    assert_int_equal(free_handle(h), 0);
}

static void
record_keys_are_unsealed(void **state)
{
    static const unsigned algs[] = {
        KS_AEAD_AES_128_GCM, KS_AEAD_AES_256_GCM, KS_AEAD_CHACHA20_POLY1305,
    };
    unsigned i;

    (void) state;
    for (i = 0; i < 3; i++) {
        const struct aead_vector *v = vector_for(algs[i]);
        unsigned char token[32], ct[2][512], tag[2][KS_AEAD_TAG_LEN];
        unsigned char pt[512];
        uint64_t h;

        assert_true(v->len <= sizeof(pt));

        /* control: the raw key with sealing off gives the vector */
        identity(1);
        encrypt_with(v, v->key, ct[0], tag[0]);
        assert_memory_equal(ct[0], v->ct, v->len);
        identity(0);

        /* a RECORD_KEY token of the key gives the same, both ways */
        seal(KS_SEAL_RECORD_KEY, v->key, token, v->keylen);
        assert_memory_not_equal(token, v->key, v->keylen);
        encrypt_with(v, token, ct[1], tag[1]);
        assert_memory_equal(ct[1], v->ct, v->len);
        assert_memory_equal(tag[1], v->tag, KS_AEAD_TAG_LEN);
        h = must_new(v->alg, 0, token, v->keylen);
        assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->ct, v->len,
                                pt, tag[1]), 0);
        assert_memory_equal(pt, v->pt, v->len);
        assert_int_equal(free_handle(h), 0);

        /* the raw key is not a token: T unseals it to another key */
        encrypt_with(v, v->key, ct[1], tag[1]);
        assert_memory_not_equal(ct[1], v->ct, v->len);
        assert_memory_not_equal(tag[1], v->tag, KS_AEAD_TAG_LEN);

        /* tokens of the other classes are no record keys */
        seal(KS_SEAL_SECRET, v->key, token, v->keylen);
        encrypt_with(v, token, ct[1], tag[1]);
        assert_memory_not_equal(ct[1], v->ct, v->len);
        assert_memory_not_equal(tag[1], v->tag, KS_AEAD_TAG_LEN);
        seal(KS_SEAL_MAC_KEY, v->key, token, v->keylen);
        encrypt_with(v, token, ct[1], tag[1]);
        assert_memory_not_equal(ct[1], v->ct, v->len);
    }
}

/* ---- (3) bad input ------------------------------------------------------ */

static void
all_zero(const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        assert_int_equal(p[i], 0);
    }
}

static void
bad_tag_and_truncation(void **state)
{
    const struct aead_vector *v = vector_for(KS_AEAD_AES_256_GCM);
    unsigned char buf[512], out[512], tag[KS_AEAD_TAG_LEN];
    unsigned char aad[64];
    uint64_t h;

    (void) state;
    assert_true(v->len <= sizeof(buf) && v->aadlen <= sizeof(aad));
    identity(1);
    h = must_new(v->alg, 0, v->key, v->keylen);

    /* one bit of the tag */
    memcpy(tag, v->tag, sizeof(tag));
    tag[5] ^= 0x10;
    memset(out, 0xa5, sizeof(out));
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->ct, v->len, out,
                            tag), KS_ERR_CRYPTO);
    all_zero(out, v->len);
    assert_int_equal(out[v->len], 0xa5);        /* and nothing beyond */

    /* in place: the buffer is zeroed too */
    memcpy(buf, v->ct, v->len);
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, buf, v->len, buf,
                            tag), KS_ERR_CRYPTO);
    all_zero(buf, v->len);

    /* a truncated record, a changed AAD byte, a changed ciphertext byte */
    memcpy(tag, v->tag, sizeof(tag));
    memset(out, 0xa5, sizeof(out));
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->ct, v->len - 1,
                            out, tag), KS_ERR_CRYPTO);
    all_zero(out, v->len - 1);
    memcpy(aad, v->aad, v->aadlen);
    aad[0] ^= 1;
    assert_int_equal(record(h, v->iv, aad, v->aadlen, v->ct, v->len, out,
                            tag), KS_ERR_CRYPTO);
    memcpy(buf, v->ct, v->len);
    buf[v->len - 1] ^= 0x80;
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, buf, v->len, out,
                            tag), KS_ERR_CRYPTO);
    all_zero(out, v->len);

    /* control: after all that the same context decrypts the record */
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->ct, v->len, out,
                            tag), 0);
    assert_memory_equal(out, v->pt, v->len);
    assert_int_equal(free_handle(h), 0);
    identity(0);
}

static void
bad_handles(void **state)
{
    const struct aead_vector *v = vector_for(KS_AEAD_AES_128_GCM);
    unsigned char out[512], tag[KS_AEAD_TAG_LEN];
    uint64_t h, h2, forged[8];
    unsigned i;

    (void) state;
    identity(1);
    h = must_new(v->alg, 1, v->key, v->keylen);
    forged[0] = 0;
    forged[1] = KS_HT_AEAD;                             /* slot 0, gen 0 */
    forged[2] = h + ((uint64_t) 1 << 28);               /* next generation */
    forged[3] = h + ((uint64_t) 1 << 8) * 4096;         /* unused slot */
    forged[4] = (h & ~(uint64_t) 0xff) | KS_HT_KEX;     /* other types */
    forged[5] = (h & ~(uint64_t) 0xff) | KS_HT_PKEY;
    forged[6] = (h & ~(uint64_t) 0xff) | 0xff;
    forged[7] = ~h;
    for (i = 0; i < 8; i++) {
        memset(out, 0xa5, sizeof(out));
        assert_int_equal(record(forged[i], v->iv, v->aad, v->aadlen, v->pt,
                                v->len, out, tag), KS_ERR_STATE);
        assert_int_equal(out[0], 0xa5);
    }
    /* freeing through a wrong type does not end it */
    assert_int_equal(free_handle(forged[4]), KS_ERR_STATE);
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->pt, v->len, out,
                            tag), 0);                   /* control */
    assert_memory_equal(out, v->ct, v->len);

    /* freed: stale, also once its slot is reused */
    assert_int_equal(free_handle(h), 0);
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->pt, v->len, out,
                            tag), KS_ERR_STATE);
    assert_int_equal(free_handle(h), KS_ERR_STATE);
    h2 = must_new(v->alg, 1, v->key, v->keylen);
    assert_true(h2 != h);
    assert_int_equal(record(h, v->iv, v->aad, v->aadlen, v->pt, v->len, out,
                            tag), KS_ERR_STATE);
    assert_int_equal(free_handle(h2), 0);
    identity(0);
}

static void
bad_new_arguments(void **state)
{
    static const unsigned char key[64] = { 1, 2, 3 };
    static const size_t lens[] = { 0, 15, 16, 24, 32, 48, 64 };
    static const struct { unsigned alg; size_t keylen; } ok[] = {
        { KS_AEAD_AES_128_GCM, 16 }, { KS_AEAD_AES_256_GCM, 32 },
        { KS_AEAD_CHACHA20_POLY1305, 32 },
    };
    uint64_t h, before = heap_bytes();
    unsigned i, j;

    (void) state;
    /* wrong key length for the alg, handle not written */
    for (i = 0; i < 3; i++) {
        for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            if (lens[j] == ok[i].keylen) {
                continue;
            }
            h = 0x5a5a;
            assert_int_equal(aead_new(ok[i].alg, 1, key, lens[j], &h),
                             KS_ERR_ARG);
            assert_int_equal(h, 0x5a5a);
        }
    }
    /* unknown algorithm, unknown direction */
    assert_int_equal(aead_new(0, 1, key, 16, &h), KS_ERR_ARG);
    assert_int_equal(aead_new(KS_AEAD_CHACHA20_POLY1305 + 1, 1, key, 32, &h),
                     KS_ERR_ARG);
    assert_int_equal(aead_new(0xffffffffu, 1, key, 32, &h), KS_ERR_ARG);
    assert_int_equal(aead_new(KS_AEAD_AES_128_GCM, 2, key, 16, &h),
                     KS_ERR_ARG);
    assert_int_equal(h, 0x5a5a);
    /* key or handle pointer missing or in T */
    assert_int_equal(aead_new(KS_AEAD_AES_128_GCM, 1, NULL, 16, &h),
                     KS_ERR_ARG);
    assert_int_equal(aead_new(KS_AEAD_AES_128_GCM, 1, key, 16, NULL),
                     KS_ERR_ARG);
    for (i = 0; i < nranges; i++) {
        uint64_t t_before, t_after;
        uintptr_t s = ranges[i].start;

        assert_int_equal(aead_new(KS_AEAD_AES_128_GCM, 1,
                                  (const unsigned char *) s, 16, &h),
                         KS_ERR_ARG);
        if (i == R_GUARD_LO || i == R_GUARD_HI) {
            continue;
        }
        peek(s + ranges[i].len / 2, &t_before, sizeof(t_before));
        assert_int_equal(aead_new(KS_AEAD_AES_128_GCM, 1, key, 16,
                                  (uint64_t *) (s + ranges[i].len / 2)),
                         KS_ERR_ARG);
        peek(s + ranges[i].len / 2, &t_after, sizeof(t_after));
        assert_int_equal(t_before, t_after);
    }
    assert_int_equal(h, 0x5a5a);
    /* nothing was made by any of them */
    assert_int_equal(heap_bytes(), before);
}

/*
 * One record with one pointer (which: 0 nonce, 1 aad, 2 in, 3 out, 4 tag)
 * replaced by p: must be refused with nothing written, in U (out, tag) or
 * in T (the bytes of T the pointer's buffer covers).
 */
static void
refused_with_pointer(uint64_t h, const struct aead_vector *v, int which,
    uintptr_t p, int peekable, uintptr_t s, uintptr_t e)
{
    static const size_t lens[5] = { KS_AEAD_NONCE_LEN, 0, 0, 0,
                                    KS_AEAD_TAG_LEN };
    unsigned char out[512], tag[KS_AEAD_TAG_LEN], out0[512], tag0[16];
    unsigned char t_before[512], t_after[512];
    const unsigned char *nonce = v->iv, *aad = v->aad, *in = v->pt;
    unsigned char *o = out, *tg = tag;
    size_t len = which == 1 ? v->aadlen : lens[which] ? lens[which] : v->len;
    uintptr_t from = p < s ? s : p, to = p + len > e ? e : p + len;

    memset(out, 0xa5, sizeof(out));
    memcpy(tag, v->tag, sizeof(tag));
    memcpy(out0, out, sizeof(out));
    memcpy(tag0, tag, sizeof(tag));
    switch (which) {
    case 0: nonce = (const unsigned char *) p; break;
    case 1: aad = (const unsigned char *) p; break;
    case 2: in = (const unsigned char *) p; break;
    case 3: o = (unsigned char *) p; break;
    default: tg = (unsigned char *) p; break;
    }
    if (peekable && to > from) {
        peek(from, t_before, to - from);
    }
    assert_int_equal(record(h, nonce, aad, v->aadlen, in, v->len, o, tg),
                     KS_ERR_ARG);
    assert_memory_equal(out, out0, sizeof(out));
    assert_memory_equal(tag, tag0, sizeof(tag));
    if (peekable && to > from) {
        peek(from, t_after, to - from);
        assert_memory_equal(t_before, t_after, to - from);
    }
}

static void
t_pointers_refused(void **state)
{
    const struct aead_vector *v = vector_for(KS_AEAD_AES_128_GCM);
    uint64_t h[2];
    unsigned d, i, j;
    int which;

    (void) state;
    assert_true(v->len <= 512 && v->aadlen <= 512);
    identity(1);
    h[0] = must_new(v->alg, 0, v->key, v->keylen);
    h[1] = must_new(v->alg, 1, v->key, v->keylen);
    for (d = 0; d < 2; d++) {
        for (which = 0; which < 5; which++) {
            for (i = 0; i < nranges; i++) {
                uintptr_t s = ranges[i].start, e = s + ranges[i].len;
                /* at the start, in the middle, overlapping start and end */
                uintptr_t probes[4] = { s, s + ranges[i].len / 2, s - 8,
                                        e - 8 };
                int guard = i == R_GUARD_LO || i == R_GUARD_HI;

                for (j = 0; j < 4; j++) {
                    refused_with_pointer(h[d], v, which, probes[j], !guard,
                                         s, e);
                }
            }
            /* not in user space at all */
            refused_with_pointer(h[d], v, which, UINTPTR_MAX - 4, 0, 0, 0);
        }
    }
    /* control: the same record with U pointers works */
    {
        unsigned char out[512], tag[KS_AEAD_TAG_LEN];

        assert_int_equal(record(h[1], v->iv, v->aad, v->aadlen, v->pt,
                                v->len, out, tag), 0);
        assert_memory_equal(out, v->ct, v->len);
    }
    assert_int_equal(free_handle(h[0]), 0);
    assert_int_equal(free_handle(h[1]), 0);
    identity(0);
}

static void
lengths_bounded(void **state)
{
    const struct aead_vector *v = vector_for(KS_AEAD_CHACHA20_POLY1305);
    unsigned char *in = calloc(1, KS_ARG_LEN_MAX + 1);
    unsigned char *out = calloc(1, KS_ARG_LEN_MAX + 1);
    unsigned char tag[KS_AEAD_TAG_LEN], tag0[KS_AEAD_TAG_LEN];
    uint64_t enc, dec;

    (void) state;
    assert_non_null(in);
    assert_non_null(out);
    enc = must_new(v->alg, 1, v->key, v->keylen);
    dec = must_new(v->alg, 0, v->key, v->keylen);
    memset(tag, 0x77, sizeof(tag));
    memcpy(tag0, tag, sizeof(tag));
    out[0] = 0xa5;
    assert_int_equal(record(enc, v->iv, v->aad, v->aadlen, in,
                            KS_ARG_LEN_MAX + 1, out, tag), KS_ERR_ARG);
    assert_int_equal(record(enc, v->iv, v->aad, v->aadlen, in, SIZE_MAX,
                            out, tag), KS_ERR_ARG);
    assert_int_equal(record(enc, v->iv, in, KS_ARG_LEN_MAX + 1, in, 16,
                            out, tag), KS_ERR_ARG);
    assert_int_equal(record(enc, v->iv, in, SIZE_MAX, in, 16, out, tag),
                     KS_ERR_ARG);
    /* in and out overlapping but not equal */
    assert_int_equal(record(enc, v->iv, v->aad, v->aadlen, out, 64,
                            out + 1, tag), KS_ERR_ARG);
    assert_int_equal(record(enc, v->iv, v->aad, v->aadlen, out + 1, 64,
                            out, tag), KS_ERR_ARG);
    assert_int_equal(out[0], 0xa5);
    assert_memory_equal(tag, tag0, sizeof(tag));

    /* control: the longest record and AAD that are allowed round-trip */
    memset(in, 0x3c, KS_ARG_LEN_MAX);
    assert_int_equal(record(enc, v->iv, in, KS_ARG_LEN_MAX, in,
                            KS_ARG_LEN_MAX, out, tag), 0);
    assert_int_equal(record(dec, v->iv, in, KS_ARG_LEN_MAX, out,
                            KS_ARG_LEN_MAX, out, tag), 0);
    assert_memory_equal(out, in, KS_ARG_LEN_MAX);
    /* and an empty record carries just a tag */
    assert_int_equal(record(enc, v->iv, NULL, 0, NULL, 0, NULL, tag), 0);
    assert_int_equal(record(dec, v->iv, NULL, 0, NULL, 0, NULL, tag), 0);
    tag[0] ^= 1;
    assert_int_equal(record(dec, v->iv, NULL, 0, NULL, 0, NULL, tag),
                     KS_ERR_CRYPTO);
    assert_int_equal(free_handle(enc), 0);
    assert_int_equal(free_handle(dec), 0);
    free(in);
    free(out);
}

/* ---- (4) freeing, T heap back at its baseline --------------------------- */

static void
one_cycle(unsigned alg, size_t keylen, unsigned enc)
{
    static const unsigned char key[32], nonce[12];
    unsigned char buf[64] = { 0 }, tag[KS_AEAD_TAG_LEN] = { 0 };
    uint64_t h = must_new(alg, enc, key, keylen);
    long rc = record(h, nonce, buf, 13, buf, sizeof(buf), buf, tag);

    /* decryption of zeros under a zero tag fails: the error path too */
    assert_int_equal(rc, enc ? 0 : KS_ERR_CRYPTO);
    assert_int_equal(free_handle(h), 0);
    assert_int_equal(record(h, nonce, NULL, 0, NULL, 0, NULL, tag),
                     KS_ERR_STATE);
}

static void
heap_returns_to_baseline(void **state)
{
    static const struct { unsigned alg; size_t keylen; } algs[3] = {
        { KS_AEAD_AES_128_GCM, 16 }, { KS_AEAD_AES_256_GCM, 32 },
        { KS_AEAD_CHACHA20_POLY1305, 32 },
    };
    static const unsigned char key[32];
    uint64_t base, held[64];
    unsigned i, n;

    (void) state;
    /* warm-up: the first use fetches each cipher once (kept for good) and
     * sets up libcrypto's per-thread error state */
    for (i = 0; i < 3; i++) {
        one_cycle(algs[i].alg, algs[i].keylen, 1);
        one_cycle(algs[i].alg, algs[i].keylen, 0);
    }
    base = heap_bytes();

    /* control: live contexts do show up in the T heap */
    for (i = 0; i < 64; i++) {
        held[i] = must_new(algs[i % 3].alg, i & 1, key, algs[i % 3].keylen);
    }
    assert_true(heap_bytes() > base + 64 * 256);
    for (i = 0; i < 64; i++) {
        assert_int_equal(free_handle(held[i]), 0);
    }
    assert_int_equal(heap_bytes(), base);

    for (n = 0; n < 500; n++) {
        one_cycle(algs[n % 3].alg, algs[n % 3].keylen, n & 1);
    }
    assert_int_equal(heap_bytes(), base);
}

/* ---- (5) one gate crossing per record ----------------------------------- */

static void
one_crossing_per_record(void **state)
{
    const struct aead_vector *v = vector_for(KS_AEAD_AES_128_GCM);
    unsigned char buf[512], tag[KS_AEAD_TAG_LEN];
    struct ks_stats s1, s2;
    uint64_t enc, dec;
    unsigned i;

    (void) state;
    identity(1);
    enc = must_new(v->alg, 1, v->key, v->keylen);
    dec = must_new(v->alg, 0, v->key, v->keylen);
    assert_int_equal(ks_stats(&s1), 0);
    for (i = 0; i < 50; i++) {
        assert_int_equal(record(enc, v->iv, v->aad, v->aadlen, v->pt, v->len,
                                buf, tag), 0);
        assert_int_equal(record(dec, v->iv, v->aad, v->aadlen, buf, v->len,
                                buf, tag), 0);
    }
    assert_int_equal(ks_stats(&s2), 0);
    assert_memory_equal(buf, v->pt, v->len);
    /* 100 records, plus the second stats call (each counts itself) */
    assert_int_equal(s2.gate_crossings - s1.gate_crossings, 100 + 1);
    assert_int_equal(free_handle(enc), 0);
    assert_int_equal(free_handle(dec), 0);
    identity(0);
}

int
main(void)
{
    /* every test ends with sealing on, whatever it did */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(openssl_vectors, sealing_on),
        cmocka_unit_test_teardown(record_keys_are_unsealed, sealing_on),
        cmocka_unit_test_teardown(bad_tag_and_truncation, sealing_on),
        cmocka_unit_test_teardown(bad_handles, sealing_on),
        cmocka_unit_test_teardown(bad_new_arguments, sealing_on),
        cmocka_unit_test_teardown(t_pointers_refused, sealing_on),
        cmocka_unit_test_teardown(lengths_bounded, sealing_on),
        cmocka_unit_test_teardown(heap_returns_to_baseline, sealing_on),
        cmocka_unit_test_teardown(one_crossing_per_record, sealing_on),
    };

    return cmocka_run_group_tests_name("ks_aead", tests, setup_keystore,
                                       NULL);
}
