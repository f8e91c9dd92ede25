/* ks_seal: sealed tokens.  See ks_seal.h for the construction. */

#define _GNU_SOURCE
#include "ks_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* The pinned 3.5 headers (of T's private copy), as in ks_crypto.c. */
#if OPENSSL_VERSION_MAJOR != 3 || OPENSSL_VERSION_MINOR != 5
#error "ks_seal.c needs the pinned OpenSSL 3.5 headers, not the system's"
#endif

#define ROUNDS 4
#define HALF_MAX (KS_SEAL_MAX_LEN / 2)             /* 33 */
#define MAC_LEN 32                                 /* HMAC-SHA-256 */
#define HDR_LEN 3                                  /* counter, n, round */
#define INFO_MAX 48                                /* longest info string */

static const char hkdf_salt[] = "mpk-tls sealed tokens v2";

/* The class names of the info strings, indexed by enum ks_seal_class.
 * None may contain '/', the separator from the purpose. */
static const char *const class_name[KS_SEAL_NCLASSES] = {
    [KS_SEAL_SECRET] = "secret",
    [KS_SEAL_RECORD_KEY] = "record key",
    [KS_SEAL_MAC_KEY] = "mac key",
};
_Static_assert(KS_SEAL_SECRET == 0 && KS_SEAL_MAC_KEY == KS_SEAL_NCLASSES - 1,
               "class_name must name every class");
static const char info_aes[] = "aes-256 block";
static const char *const info_round[ROUNDS] = {
    "feistel round 0", "feistel round 1", "feistel round 2", "feistel round 3",
};

/* The keyed contexts of one class (pointers only, not secret). */
struct keyed_class {
    EVP_CIPHER_CTX *aes_enc;
    EVP_CIPHER_CTX *aes_dec;
    EVP_MAC_CTX *round[ROUNDS];
};

/* ... and of one sealing key: one set per class. */
struct keyed {
    struct keyed_class cls[KS_SEAL_NCLASSES];
};

/*
 * All state; static, so it lands in T pages.  seal_lock guards everything
 * below, including the scratch buffers, which hold secrets only while it
 * is held and are cleansed before it is released.
 */
static atomic_flag seal_lock = ATOMIC_FLAG_INIT;
static int key_set;
static int identity;
static struct keyed cur;
static struct {
    unsigned char key[KS_SEAL_KEY_LEN];            /* loaded/random key */
    unsigned char subkey[32];
    unsigned char file[2 * KS_SEAL_KEY_LEN + 2];   /* 66: one past the max */
    unsigned char work[KS_SEAL_MAX_LEN];
    unsigned char msg[HDR_LEN + HALF_MAX];
    unsigned char f[2 * MAC_LEN];
} scratch;

/*
 * A spinlock, like ks_heap's: it needs neither libc nor syscalls, so it
 * keeps working inside T after lockdown.  Held for one seal (about a
 * microsecond) or, at configuration time, one key change.
 */
static void
lock(void)
{
    while (atomic_flag_test_and_set_explicit(&seal_lock,
                                             memory_order_acquire)) {
        __builtin_ia32_pause();
    }
}

static void
unlock(void)
{
    atomic_flag_clear_explicit(&seal_lock, memory_order_release);
}

static void
scratch_wipe(void)
{
    OPENSSL_cleanse(&scratch, sizeof(scratch));
}

int
ks_seal_len_ok(size_t len)
{
    switch (len) {
    case 16: case 32: case 48: case 56: case 64: case 66:
        return 1;
    default:
        return 0;
    }
}

/* ---- keying ------------------------------------------------------------ */

static void
keyed_free(struct keyed *k)
{
    unsigned c;
    int i;

    for (c = 0; c < KS_SEAL_NCLASSES; c++) {
        EVP_CIPHER_CTX_free(k->cls[c].aes_enc);
        EVP_CIPHER_CTX_free(k->cls[c].aes_dec);
        for (i = 0; i < ROUNDS; i++) {
            EVP_MAC_CTX_free(k->cls[c].round[i]);
        }
    }
    memset(k, 0, sizeof(*k));
}

/*
 * scratch.subkey = HKDF-SHA-256(key, salt, info), 32 bytes, where info is
 * the name of class cls, "/", purpose.
 */
static int
derive_subkey(EVP_KDF_CTX *kctx, const unsigned char *key, unsigned cls,
    const char *purpose)
{
    char info[INFO_MAX];
    size_t cl = strlen(class_name[cls]), pl = strlen(purpose);
    OSSL_PARAM p[5];

    if (cl + 1 + pl > sizeof(info)) {
        return -1;
    }
    memcpy(info, class_name[cls], cl);
    info[cl] = '/';
    memcpy(info + cl + 1, purpose, pl);

    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                            (char *) "SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                             (void *) key, KS_SEAL_KEY_LEN);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                             (void *) hkdf_salt,
                                             sizeof(hkdf_salt) - 1);
    p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                             info, cl + 1 + pl);
    p[4] = OSSL_PARAM_construct_end();
    return EVP_KDF_derive(kctx, scratch.subkey, sizeof(scratch.subkey), p)
           == 1 ? 0 : -1;
}

/* Build the keyed contexts of class cls for key into kc.  Lock held. */
static int
keyed_class_new(struct keyed_class *kc, EVP_KDF_CTX *kctx, EVP_MAC *mac,
    EVP_CIPHER *aes, const unsigned char *key, unsigned cls)
{
    OSSL_PARAM mp[2];
    int i;

    if (derive_subkey(kctx, key, cls, info_aes) != 0
        || (kc->aes_enc = EVP_CIPHER_CTX_new()) == NULL
        || (kc->aes_dec = EVP_CIPHER_CTX_new()) == NULL
        || !EVP_EncryptInit_ex2(kc->aes_enc, aes, scratch.subkey, NULL, NULL)
        || !EVP_DecryptInit_ex2(kc->aes_dec, aes, scratch.subkey, NULL, NULL)
        || !EVP_CIPHER_CTX_set_padding(kc->aes_enc, 0)
        || !EVP_CIPHER_CTX_set_padding(kc->aes_dec, 0)) {
        return -1;
    }

    mp[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                             (char *) "SHA256", 0);
    mp[1] = OSSL_PARAM_construct_end();
    for (i = 0; i < ROUNDS; i++) {
        if (derive_subkey(kctx, key, cls, info_round[i]) != 0
            || (kc->round[i] = EVP_MAC_CTX_new(mac)) == NULL
            || !EVP_MAC_init(kc->round[i], scratch.subkey,
                             sizeof(scratch.subkey), mp)
            || EVP_MAC_CTX_get_mac_size(kc->round[i]) != MAC_LEN) {
            return -1;
        }
    }
    return 0;
}

/* Build all keyed contexts (every class) for key into k.  Lock held. */
static int
keyed_new(struct keyed *k, const unsigned char *key)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
    unsigned c;
    int rc = -1;

    memset(k, 0, sizeof(*k));
    if (kctx == NULL || mac == NULL || aes == NULL) {
        goto out;
    }
    for (c = 0; c < KS_SEAL_NCLASSES; c++) {
        if (keyed_class_new(&k->cls[c], kctx, mac, aes, key, c) != 0) {
            goto out;
        }
    }
    rc = 0;

out:
    OPENSSL_cleanse(scratch.subkey, sizeof(scratch.subkey));
    if (rc != 0) {
        keyed_free(k);
    }
    EVP_CIPHER_free(aes);
    EVP_MAC_free(mac);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* Switch to key; on failure nothing changes.  Lock held. */
static int
key_set_locked(const unsigned char *key)
{
    struct keyed k;

    if (keyed_new(&k, key) != 0) {
        return -1;
    }
    keyed_free(&cur);
    cur = k;
    key_set = 1;
    return 0;
}

int
ks_seal_key_set(const unsigned char *key, size_t len)
{
    int rc;

    if (key == NULL || len != KS_SEAL_KEY_LEN) {
        return -1;
    }
    lock();
    rc = key_set_locked(key);
    scratch_wipe();
    unlock();
    return rc;
}

int
ks_seal_key_random(void)
{
    int rc = -1;

    lock();
    if (RAND_priv_bytes(scratch.key, sizeof(scratch.key)) == 1) {
        rc = key_set_locked(scratch.key);
    }
    scratch_wipe();
    unlock();
    return rc;
}

int
ks_seal_key_is_set(void)
{
    int v;

    lock();
    v = key_set;
    unlock();
    return v;
}

void
ks_seal_key_wipe(void)
{
    lock();
    keyed_free(&cur);
    key_set = 0;
    identity = 0;
    scratch_wipe();
    unlock();
}

/* ---- the key file -------------------------------------------------------- */

static void
load_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "sealing key file \"%s\": %s", path, why);
}

static int
hex_nibble(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

#define EXPECT_FORMAT \
    "expected exactly 32 raw bytes or 64 hex digits with an optional " \
    "trailing newline (openssl rand -hex 32)"

/*
 * Read and check the file into scratch.key.  Lock held; the caller wipes
 * scratch.
 */
static int
load_locked(const char *path, char *err, size_t errlen)
{
    struct stat st;
    size_t total = 0, i;
    unsigned char any = 0;
    ssize_t n;
    int fd, e;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        load_error(err, errlen, path, "cannot open: %s; expected a regular "
                   "file readable only by its owner", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        e = errno;
        close(fd);
        load_error(err, errlen, path, "cannot stat: %s", strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        load_error(err, errlen, path, "%s; expected a regular file",
                   S_ISDIR(st.st_mode) ? "is a directory"
                                       : "is not a regular file");
        return -1;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        close(fd);
        load_error(err, errlen, path, "is accessible by group or others "
                   "(mode %04o); expected mode 0600 or stricter (chmod 600)",
                   (unsigned) (st.st_mode & 07777));
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        close(fd);
        load_error(err, errlen, path, "is owned by uid %u; expected owner "
                   "root or uid %u (the user reading it)",
                   (unsigned) st.st_uid, (unsigned) geteuid());
        return -1;
    }

    while (total < sizeof(scratch.file)) {
        n = read(fd, scratch.file + total, sizeof(scratch.file) - total);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            e = errno;
            close(fd);
            load_error(err, errlen, path, "cannot read: %s", strerror(e));
            return -1;
        }
        if (n == 0) {
            break;
        }
        total += (size_t) n;
    }
    close(fd);

    if (total == KS_SEAL_KEY_LEN) {
        memcpy(scratch.key, scratch.file, KS_SEAL_KEY_LEN);
    } else if (total == 2 * KS_SEAL_KEY_LEN
               || (total == 2 * KS_SEAL_KEY_LEN + 1
                   && scratch.file[2 * KS_SEAL_KEY_LEN] == '\n')) {
        for (i = 0; i < 2 * KS_SEAL_KEY_LEN; i += 2) {
            int hi = hex_nibble(scratch.file[i]);
            int lo = hex_nibble(scratch.file[i + 1]);

            if (hi < 0 || lo < 0) {
                load_error(err, errlen, path, "has a character that is not "
                           "a hex digit at offset %zu; " EXPECT_FORMAT,
                           i + (hi < 0 ? 0 : 1));
                return -1;
            }
            scratch.key[i / 2] = (unsigned char) (hi << 4 | lo);
        }
    } else if (total == sizeof(scratch.file)) {
        load_error(err, errlen, path, "is longer than %zu bytes; "
                   EXPECT_FORMAT, sizeof(scratch.file) - 1);
        return -1;
    } else {
        load_error(err, errlen, path, "has %zu bytes; " EXPECT_FORMAT, total);
        return -1;
    }

    for (i = 0; i < KS_SEAL_KEY_LEN; i++) {
        any |= scratch.key[i];
    }
    if (any == 0) {
        load_error(err, errlen, path, "holds an all-zero key; expected a "
                   "random key (openssl rand -hex 32)");
        return -1;
    }
    if (key_set_locked(scratch.key) != 0) {
        load_error(err, errlen, path, "the key could not be set up "
                   "(libcrypto failed)");
        return -1;
    }
    return 0;
}

int
ks_seal_key_load(const char *path, char *err, size_t errlen)
{
    int rc;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (path == NULL) {
        load_error(err, errlen, "(null)", "no file name given");
        return -1;
    }
    lock();
    rc = load_locked(path, err, errlen);
    scratch_wipe();
    unlock();
    return rc;
}

/* ---- seal / unseal ------------------------------------------------------- */

/* dst ^= Fi(src), both h bytes, for total length n.  Lock held. */
static int
round_xor(const struct keyed_class *kc, int i, size_t n, unsigned char *dst,
    const unsigned char *src, size_t h)
{
    EVP_MAC_CTX *ctx = kc->round[i];
    size_t c, j, outl;

    scratch.msg[1] = (unsigned char) n;
    scratch.msg[2] = (unsigned char) i;
    memcpy(scratch.msg + HDR_LEN, src, h);
    for (c = 0; c * MAC_LEN < h; c++) {
        scratch.msg[0] = (unsigned char) c;
        if (!EVP_MAC_init(ctx, NULL, 0, NULL)
            || !EVP_MAC_update(ctx, scratch.msg, HDR_LEN + h)
            || !EVP_MAC_final(ctx, scratch.f + c * MAC_LEN, &outl, MAC_LEN)
            || outl != MAC_LEN) {
            return -1;
        }
    }
    for (j = 0; j < h; j++) {
        dst[j] ^= scratch.f[j];
    }
    return 0;
}

/* The Feistel network over scratch.work[0..n), forwards or backwards. */
static int
feistel(const struct keyed_class *kc, size_t n, int forward)
{
    size_t h = n / 2;
    unsigned char *l = scratch.work, *r = scratch.work + h;
    int k, i;

    for (k = 0; k < ROUNDS; k++) {
        i = forward ? k : ROUNDS - 1 - k;
        if (((i & 1) == 0 ? round_xor(kc, i, n, l, r, h)
                          : round_xor(kc, i, n, r, l, h)) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
block16(const struct keyed_class *kc, int forward)
{
    int outl = 0;

    if (forward) {
        if (!EVP_EncryptUpdate(kc->aes_enc, scratch.f, &outl,
                               scratch.work, 16)) {
            return -1;
        }
    } else if (!EVP_DecryptUpdate(kc->aes_dec, scratch.f, &outl,
                                  scratch.work, 16)) {
        return -1;
    }
    if (outl != 16) {
        return -1;
    }
    memcpy(scratch.work, scratch.f, 16);
    return 0;
}

static int
seal_dir(unsigned char *out, const unsigned char *in, size_t len,
    unsigned cls, int forward)
{
    const struct keyed_class *kc;
    int rc = -1;

    if (!ks_seal_len_ok(len) || cls >= KS_SEAL_NCLASSES || out == NULL
        || in == NULL) {
        return -1;
    }
    lock();
    kc = &cur.cls[cls];
    if (identity) {
        memmove(out, in, len);
        rc = 0;
    } else if (key_set) {
        memcpy(scratch.work, in, len);
        if ((len == 16 ? block16(kc, forward)
                       : feistel(kc, len, forward)) == 0) {
            memcpy(out, scratch.work, len);
            rc = 0;
        }
        OPENSSL_cleanse(scratch.work, sizeof(scratch.work));
        OPENSSL_cleanse(scratch.msg, sizeof(scratch.msg));
        OPENSSL_cleanse(scratch.f, sizeof(scratch.f));
    }
    unlock();
    return rc;
}

int
ks_seal(unsigned char *out, const unsigned char *in, size_t len, unsigned cls)
{
    return seal_dir(out, in, len, cls, 1);
}

int
ks_unseal(unsigned char *out, const unsigned char *in, size_t len,
    unsigned cls)
{
    return seal_dir(out, in, len, cls, 0);
}

/* ---- test hook ----------------------------------------------------------- */

int
ks_seal_test_set_identity(uint64_t magic, int on)
{
    if (on != 0 && (on != 1 || magic != KS_SEAL_TEST_IDENTITY_MAGIC)) {
        return -1;
    }
    lock();
    identity = on;
    unlock();
    return 0;
}

int
ks_seal_identity_on(void)
{
    int v;

    lock();
    v = identity;
    unlock();
    return v;
}
