/*
 * Unit tests of libkeystore.so as a whole, linked together with the
 * system's libcrypto (OpenSSL 3.0) the way NGINX's worker will hold two
 * copies: its own and the keystore's private 3.5.7 one.  They show that
 * the two coexist (each answers with its own version and the right
 * digest), that the private copy allocates only from the T heap and never
 * from the system malloc, that the system copy never touches the T heap,
 * and that the private copy ignores OPENSSL_CONF.  Needs MPK, since
 * ks_init() creates the protection domain (run_all.py runs it in a QEMU
 * guest on CPUs without protection keys).
 */

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/crypto.h>     /* the system's OpenSSL 3.0 */
#include <openssl/evp.h>

#include "../../keystore/keystore.h"
#include "../../keystore/ks_ops.h"

#define PRIVATE_VERSION 0x30500070UL    /* OpenSSL 3.5.7 */

static const unsigned char sha256_abc[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde,
    0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
};
static const unsigned char sha256_empty[32] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
    0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
    0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/*
 * Count the calls to the system malloc in this process.  The definitions
 * here interpose on glibc's for every library, libkeystore.so included;
 * glibc exports its own implementation as __libc_*.
 */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *p, size_t n);
static atomic_long sys_allocs;

void *
malloc(size_t n)
{
    atomic_fetch_add(&sys_allocs, 1);
    return __libc_malloc(n);
}

void *
calloc(size_t nmemb, size_t size)
{
    atomic_fetch_add(&sys_allocs, 1);
    return __libc_calloc(nmemb, size);
}

void *
realloc(void *p, size_t n)
{
    atomic_fetch_add(&sys_allocs, 1);
    return __libc_realloc(p, n);
}

/* SHA-256 with the system's libcrypto: 0, or -1. */
static int
system_sha256(const void *in, size_t len, unsigned char out[32])
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    unsigned int outlen = 0;
    int ok = md != NULL && EVP_Digest(in, len, out, &outlen, md, NULL)
             && outlen == 32;

    EVP_MD_free(md);
    return ok ? 0 : -1;
}

/* The reason ks_init() gives when it fails (printed by group_setup). */
static char init_err[256];

/* What happened while the group setup created the keystore. */
static struct {
    int selftest_before, stats_before, init;
    long sys_allocs;                /* during ks_init() + first self-test */
    struct ks_stats after_init, after_selftest;
} boot;

static int
group_setup(void **state)
{
    unsigned char out[32];
    struct ks_stats st;
    long n;

    (void) state;
    boot.selftest_before = ks_selftest_sha256("abc", 3, out);
    boot.stats_before = ks_stats(&st);
    n = atomic_load(&sys_allocs);
    boot.init = ks_init(NULL, init_err, sizeof(init_err));
    if (boot.init != 0) {
        fprintf(stderr, "ks_init: %s\n", init_err);
    }
    ks_stats(&boot.after_init);
    ks_selftest_sha256("abc", 3, out);
    boot.sys_allocs = atomic_load(&sys_allocs) - n;
    ks_stats(&boot.after_selftest);
    return 0;
}

static void
init_once(void **state)
{
    struct ks_config cfg = { .heap_size = 1 << 20 };

    (void) state;
    /* Before ks_init() nothing reaches the private copy ... */
    assert_int_equal(boot.selftest_before, -1);
    assert_int_equal(boot.stats_before, -1);
    /* ... then it works, once. */
    assert_int_equal(boot.init, 0);
    assert_int_equal(ks_init(&cfg, init_err, sizeof(init_err)), -1);
    assert_int_equal(ks_init(NULL, init_err, sizeof(init_err)), -1);
}

static void
versions_coexist(void **state)
{
    unsigned long sys = OpenSSL_version_num();

    (void) state;
    assert_int_equal(sys >> 20, 0x300);                 /* 3.0.x */
    assert_int_equal(sys, OPENSSL_VERSION_NUMBER);      /* /usr/include */
    assert_int_equal(ks_private_openssl_version(), PRIVATE_VERSION);
}

static void
sha256_known_answers_both_copies(void **state)
{
    static unsigned char big[1 << 20];
    unsigned char a[32], b[32];

    (void) state;
    assert_int_equal(ks_selftest_sha256("abc", 3, a), 0);
    assert_memory_equal(a, sha256_abc, 32);
    assert_int_equal(system_sha256("abc", 3, b), 0);
    assert_memory_equal(b, sha256_abc, 32);

    assert_int_equal(ks_selftest_sha256(NULL, 0, a), 0);
    assert_memory_equal(a, sha256_empty, 32);

    memset(big, 'a', sizeof(big));
    assert_int_equal(ks_selftest_sha256(big, sizeof(big), a), 0);
    assert_int_equal(system_sha256(big, sizeof(big), b), 0);
    assert_memory_equal(a, b, 32);

    assert_int_equal(ks_selftest_sha256(NULL, 1, a), -1);
    assert_int_equal(ks_selftest_sha256("abc", 3, NULL), -1);
}

static void
private_copy_allocates_in_t_heap(void **state)
{
    unsigned char out[32];
    struct ks_stats before, after;
    long n;

    (void) state;
    /* Initializing the private copy and the sealing key (which fetches
     * SHA-256 and HMAC) left state in T (method store, provider, HMAC
     * contexts), and none of it, nor the first self-test's, came from
     * malloc. */
    assert_true(boot.after_init.t_heap_bytes > 0);
    assert_true(boot.after_selftest.t_heap_peak_bytes
                >= boot.after_init.t_heap_bytes);
    assert_int_equal(boot.sys_allocs, 0);

    /* Warm: still no malloc, and nothing leaks in T. */
    assert_int_equal(ks_stats(&before), 0);
    n = atomic_load(&sys_allocs);
    assert_int_equal(ks_selftest_sha256("abc", 3, out), 0);
    assert_int_equal(atomic_load(&sys_allocs) - n, 0);
    assert_int_equal(ks_stats(&after), 0);
    assert_int_equal(after.t_heap_bytes, before.t_heap_bytes);

    /* Control: the counter does see a libcrypto that uses malloc. */
    n = atomic_load(&sys_allocs);
    assert_int_equal(system_sha256("abc", 3, out), 0);
    assert_true(atomic_load(&sys_allocs) - n > 0);
}

static void
system_copy_stays_out_of_t_heap(void **state)
{
    unsigned char out[32];
    struct ks_stats before, after;
    EVP_PKEY *key;

    (void) state;
    assert_int_equal(ks_stats(&before), 0);
    assert_int_equal(system_sha256("abc", 3, out), 0);
    key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_non_null(key);
    EVP_PKEY_free(key);
    assert_int_equal(ks_stats(&after), 0);
    assert_int_equal(after.t_heap_bytes, before.t_heap_bytes);
    assert_int_equal(after.t_heap_peak_bytes, before.t_heap_peak_bytes);
    /* The control, that these stats move when a copy of libcrypto
     * allocates in T, is the first self-test in the test above. */
}

static void
stats_fields(void **state)
{
    struct ks_stats st, st2;

    (void) state;
    assert_int_equal(ks_stats(NULL), -1);
    assert_int_equal(ks_stats(&st), 0);
    assert_true(st.t_heap_peak_bytes >= st.t_heap_bytes);
    assert_true(st.pkey >= 1 && st.pkey < 16);
    /* every call crosses the gate once */
    assert_int_equal(ks_stats(&st2), 0);
    assert_int_equal(st2.gate_crossings, st.gate_crossings + 1);
}

/*
 * The shipped library has no test operations: the numbers the test build
 * gives them (peek and poke at T addresses, ...) are unknown operations
 * here.  The control is test_gate, where the same numbers work.
 */
static void
no_test_operations(void **state)
{
    unsigned op;

    (void) state;
    for (op = KS_OP_COUNT; op < KS_OP_COUNT + 8; op++) {
        assert_int_equal(ks_gate_call(op, NULL), KS_ERR_OP);
    }
}

/*
 * OPENSSL_CONF: in a fresh process (this binary, run again), both copies
 * meet a config file whose default properties ask for a provider that does
 * not exist, so any fetch fails in a copy that reads it.  The child's exit
 * status has bit 0 set if the private copy's SHA-256 worked and bit 1 if
 * the system copy's did.
 */
static int
conf_child(void)
{
    unsigned char out[32];
    int bits = 0;

    if (ks_init(NULL, init_err, sizeof(init_err)) == 0 && ks_selftest_sha256("abc", 3, out) == 0
        && memcmp(out, sha256_abc, 32) == 0) {
        bits |= 1;
    }
    /* The system copy reads the file at its first use (as libssl's does). */
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
    if (system_sha256("abc", 3, out) == 0) {
        bits |= 2;
    }
    return bits;
}

static int
run_conf_child(const char *conf)
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = { "test_libkeystore", "--conf-child", NULL };

        if (conf != NULL) {
            setenv("OPENSSL_CONF", conf, 1);
        } else {
            unsetenv("OPENSSL_CONF");
        }
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void
private_copy_ignores_openssl_conf(void **state)
{
    char path[] = "/tmp/test_libkeystore.cnf.XXXXXX";
    int fd = mkstemp(path);
    int with_file, without;
    FILE *f;

    (void) state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("openssl_conf = init\n"
          "[init]\n"
          "alg_section = algs\n"
          "[algs]\n"
          "default_properties = provider=no-such-provider\n", f);
    fclose(f);

    with_file = run_conf_child(path);
    without = run_conf_child(NULL);
    unlink(path);
    /* The private copy works; the system copy read the file and fails. */
    assert_int_equal(with_file, 1);
    /* Control: without the file both work, so that failure was the file. */
    assert_int_equal(without, 3);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_once),
        cmocka_unit_test(versions_coexist),
        cmocka_unit_test(sha256_known_answers_both_copies),
        cmocka_unit_test(private_copy_allocates_in_t_heap),
        cmocka_unit_test(system_copy_stays_out_of_t_heap),
        cmocka_unit_test(stats_fields),
        cmocka_unit_test(no_test_operations),
        cmocka_unit_test(private_copy_ignores_openssl_conf),
    };

    if (argc == 2 && strcmp(argv[1], "--conf-child") == 0) {
        return conf_child();
    }
    return cmocka_run_group_tests_name("libkeystore", tests, group_setup,
                                       NULL);
}
