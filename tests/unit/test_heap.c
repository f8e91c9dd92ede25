/*
 * Unit tests of keystore/ks_heap: the T heap.  They need no MPK: they test
 * the allocator itself (correctness, zeroing of freed blocks, exhaustion
 * without a malloc fallback, statistics, threads) and its fail-closed
 * checks, which run in fork()ed children that must die with SIGABRT, each
 * next to a positive control: the same child with a valid call exits 0.
 */

#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../keystore/ks_heap.h"

/* Small, so that exhausting it is quick. */
#define TEST_HEAP_SIZE ((size_t) 1 << 20)

static int
in_heap(const void *p, size_t n)
{
    void *base;
    size_t len;

    assert_int_equal(ks_heap_range(&base, &len), 0);
    return (const char *) p >= (char *) base
           && (const char *) p + n <= (char *) base + len;
}

static int
all_bytes(const void *p, int byte, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != (unsigned char) byte) {
            return 0;
        }
    }
    return 1;
}

/*
 * Run fn in a fork()ed child (which inherits the heap) with its stderr
 * captured in err; return the child's wait status.  Children must not
 * use cmocka's asserts (a failure would resume the test run in the
 * child), hence CHILD_CHECK.
 */
static int
run_child(void (*fn)(void), char *err, size_t errlen)
{
    int fds[2], status;
    size_t got = 0;
    ssize_t r;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };

        setrlimit(RLIMIT_CORE, &no_core);   /* expected aborts: no cores */
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    while (got + 1 < errlen
           && (r = read(fds[0], err + got, errlen - 1 - got)) > 0) {
        got += (size_t) r;
    }
    err[got] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

#define CHILD_CHECK(cond)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "child check failed, line %d: %s\n", __LINE__,  \
                    #cond);                                                 \
            _exit(1);                                                       \
        }                                                                   \
    } while (0)

static void
init_once_and_range(void **state)
{
    void *base, *p;
    size_t len;

    (void) state;
    assert_int_equal(ks_heap_init(TEST_HEAP_SIZE), -1);    /* already done */
    assert_int_equal(ks_heap_range(&base, &len), 0);
    assert_int_equal((uintptr_t) base % KS_HEAP_PAGE, 0);
    assert_int_equal(len % KS_HEAP_PAGE, 0);
    assert_true(len <= TEST_HEAP_SIZE);
    assert_true(len > TEST_HEAP_SIZE - 2 * KS_HEAP_PAGE);
    p = ks_heap_alloc(100);
    assert_non_null(p);
    assert_true(in_heap(p, 100));
    ks_heap_free(p);
}

static void
alloc_sizes_aligned_disjoint(void **state)
{
    static const size_t sizes[] = { 0, 1, 15, 16, 17, 31, 32, 33, 100, 1000,
                                    2048, 2049, 4095, 4096, 4097, 10000,
                                    65536, 100000 };
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    unsigned char *p[N];
    size_t i;

    (void) state;
    for (i = 0; i < N; i++) {
        p[i] = ks_heap_alloc(sizes[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t) p[i] % 16, 0);
        if (sizes[i] > 2048) {
            assert_int_equal((uintptr_t) p[i] % KS_HEAP_PAGE, 0);
        }
        assert_true(in_heap(p[i], sizes[i]));
        memset(p[i], (int) i + 1, sizes[i]);
    }
    /* No block overlaps another: each still holds its own pattern. */
    for (i = 0; i < N; i++) {
        assert_true(all_bytes(p[i], (int) i + 1, sizes[i]));
    }
    for (i = 0; i < N; i++) {
        ks_heap_free(p[i]);
    }
    ks_heap_free(NULL);                         /* like free(NULL) */
}

static void
fresh_memory_is_zero(void **state)
{
    unsigned char *p, *q;

    (void) state;
    p = ks_heap_alloc(300);
    assert_non_null(p);
    assert_true(all_bytes(p, 0, 300));
    q = ks_heap_calloc(10, 100);
    assert_non_null(q);
    assert_true(all_bytes(q, 0, 1000));
    assert_null(ks_heap_calloc(SIZE_MAX / 2, 3));   /* nmemb * size overflows */
    ks_heap_free(p);
    ks_heap_free(q);
}

/*
 * A freed block is zeroed at once (except the free-list link in its first
 * word), and handed out zeroed again.  Reading a freed block is deliberate
 * here: it is our own heap, and what lingers there is what matters.  The
 * control that the zero check looks at the block that held the pattern:
 * the next allocation of the class returns that same block.
 */
static void
freed_block_zeroed_and_reused(void **state)
{
    static const size_t sizes[] = { 48, 2000, 10000 };

    (void) state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        unsigned char *p = ks_heap_alloc(n), *q;

        assert_non_null(p);
        memset(p, 0xa5, n);
        assert_true(all_bytes(p, 0xa5, n));
        ks_heap_free(p);
        assert_true(all_bytes(p + sizeof(void *), 0, n - sizeof(void *)));
        q = ks_heap_alloc(n);
        assert_ptr_equal(q, p);
        assert_true(all_bytes(q, 0, n));
        ks_heap_free(q);
    }
}

static void
realloc_keeps_data(void **state)
{
    static const size_t steps[] = { 16, 100, 5000, 70000, 40, 20 };
    unsigned char *p = NULL, *old;
    size_t have = 0, base_in_use, in_use, peak;

    (void) state;
    ks_heap_stats(&base_in_use, &peak);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        size_t n = steps[i], keep = have < n ? have : n;

        old = p;
        p = ks_heap_realloc(p, n);
        assert_non_null(p);
        for (size_t j = 0; j < keep; j++) {
            assert_int_equal(p[j], (unsigned char) (j * 7));
        }
        if (old != NULL) {
            /* Every step changes the class, so the block moved ... */
            assert_ptr_not_equal(p, old);
            /* ... and the old one, which held the data, is zero now. */
            assert_true(all_bytes(old + sizeof(void *), 0,
                                  keep - sizeof(void *)));
        }
        for (size_t j = 0; j < n; j++) {
            p[j] = (unsigned char) (j * 7);
        }
        have = n;
    }
    /* Within the same class the block stays where it is. */
    old = p;
    p = ks_heap_realloc(p, 30);
    assert_ptr_equal(p, old);
    assert_true(p[19] == (unsigned char) (19 * 7));

    /* Too large for the heap: NULL, and the old block is intact. */
    assert_null(ks_heap_realloc(p, TEST_HEAP_SIZE));
    assert_true(p[19] == (unsigned char) (19 * 7));

    /* realloc(p, 0) frees; realloc(NULL, n) allocates. */
    assert_null(ks_heap_realloc(p, 0));
    ks_heap_stats(&in_use, &peak);
    assert_int_equal(in_use, base_in_use);
    p = ks_heap_realloc(NULL, 50);
    assert_non_null(p);
    ks_heap_free(p);
}

static void
stats_baseline_and_peak(void **state)
{
    enum { N = 100 };
    void *p[N];
    size_t base, peak0, in_use, peak;

    (void) state;
    ks_heap_stats(&base, &peak0);
    assert_true(peak0 >= base);
    for (int i = 0; i < N; i++) {
        p[i] = ks_heap_alloc(1000);             /* class 1024 */
        assert_non_null(p[i]);
    }
    ks_heap_stats(&in_use, &peak);
    assert_int_equal(in_use, base + N * 1024);
    assert_true(peak >= in_use);
    for (int i = 0; i < N; i++) {
        ks_heap_free(p[i]);
    }
    ks_heap_stats(&in_use, &peak0);
    assert_int_equal(in_use, base);
    assert_int_equal(peak0, peak);              /* the peak stays */
}

/* In a child, so that the pages it carves do not shape the other tests. */
static void
child_exhaust(void)
{
    void *base, *p, *last = NULL;
    size_t len, n = 0, in_use, peak;

    CHILD_CHECK(ks_heap_range(&base, &len) == 0);
    CHILD_CHECK(ks_heap_alloc(TEST_HEAP_SIZE) == NULL);    /* > data pages */
    while ((p = ks_heap_alloc(4096)) != NULL) {
        CHILD_CHECK(in_heap(p, 4096));
        last = p;
        n++;
    }
    CHILD_CHECK(n > 0 && n * 4096 <= len);
    /* Drain the 16-byte blocks earlier tests left free: then there is no
     * page left for more, and no fallback to malloc. */
    while (ks_heap_alloc(16) != NULL) {
    }
    CHILD_CHECK(ks_heap_alloc(16) == NULL);
    CHILD_CHECK(ks_heap_calloc(1, 16) == NULL);
    ks_heap_stats(&in_use, &peak);
    CHILD_CHECK(in_use >= n * 4096 && in_use <= len && peak >= in_use);
    /* Freed blocks are reused. */
    ks_heap_free(last);
    CHILD_CHECK(ks_heap_alloc(4096) == last);
    CHILD_CHECK(ks_heap_alloc(4096) == NULL);
}

static void
exhaustion_returns_null(void **state)
{
    char err[512];
    int status;

    (void) state;
    status = run_child(child_exhaust, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_msg("child: status %#x, stderr: %s", status, err);
    }
}

/* Several threads at once: blocks never overlap, all is freed in the end. */
enum { THREADS = 4, ROUNDS = 20000, SLOTS = 16 };
static atomic_int thread_errors;

static void *
hammer(void *arg)
{
    unsigned tag = (unsigned) (uintptr_t) arg, x = tag * 2654435761u + 1;
    unsigned char *slot[SLOTS] = { NULL };
    size_t len[SLOTS] = { 0 };

    for (int r = 0; r < ROUNDS; r++) {
        int s;

        x ^= x << 13; x ^= x >> 17; x ^= x << 5;    /* xorshift32 */
        s = (int) (x % SLOTS);
        if (slot[s] != NULL) {
            if (!all_bytes(slot[s], (int) tag, len[s])) {
                atomic_fetch_add(&thread_errors, 1);
            }
            ks_heap_free(slot[s]);
        }
        len[s] = x % 3000 + 1;
        slot[s] = ks_heap_alloc(len[s]);
        if (slot[s] == NULL || !all_bytes(slot[s], 0, len[s])) {
            atomic_fetch_add(&thread_errors, 1);
            len[s] = 0;
            continue;
        }
        memset(slot[s], (int) tag, len[s]);
    }
    for (int s = 0; s < SLOTS; s++) {
        ks_heap_free(slot[s]);
    }
    return NULL;
}

static void
threads_share_the_heap(void **state)
{
    pthread_t t[THREADS];
    size_t base, in_use, peak;

    (void) state;
    ks_heap_stats(&base, &peak);
    for (uintptr_t i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, hammer,
                                        (void *) (i + 1)), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(atomic_load(&thread_errors), 0);
    ks_heap_stats(&in_use, &peak);
    assert_int_equal(in_use, base);
}

/* 1 if the mapping that starts at addr has flag in its smaps VmFlags. */
static int
smaps_flag(const void *addr, const char *flag)
{
    char line[512], word[8];
    FILE *f = fopen("/proc/self/smaps", "r");
    int in_it = 0, found = 0;
    unsigned long start, end;

    assert_non_null(f);
    snprintf(word, sizeof(word), " %s ", flag);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmFlags:", 8) == 0) {
            found |= in_it && strstr(line, word) != NULL;
        } else if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
            in_it = start == (uintptr_t) addr;      /* a mapping's first line */
        }
    }
    fclose(f);
    return found;
}

static void
heap_not_in_core_dumps(void **state)
{
    void *base, *plain;
    size_t len;

    (void) state;
    assert_int_equal(ks_heap_range(&base, &len), 0);
    assert_true(smaps_flag(base, "dd"));
    /* Control: an ordinary anonymous mapping has no "dd". */
    plain = mmap(NULL, KS_HEAP_PAGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(plain != MAP_FAILED);
    assert_false(smaps_flag(plain, "dd"));
    munmap(plain, KS_HEAP_PAGE);
}

/* ---- fail closed: each bad call next to its valid twin ---------------- */

static void bad_double_free(void)
{ void *p = ks_heap_alloc(32); ks_heap_free(p); ks_heap_free(p); }
static void good_single_free(void)
{ void *p = ks_heap_alloc(32); ks_heap_free(p); }

static void bad_free_malloc(void)
{ ks_heap_free(malloc(32)); }
static void bad_free_stack(void)
{ char buf[32]; ks_heap_free(buf); }
static void bad_realloc_malloc(void)
{ ks_heap_realloc(malloc(32), 64); }
static void good_realloc(void)
{ ks_heap_free(ks_heap_realloc(ks_heap_alloc(32), 64)); }

static void bad_interior_small(void)
{ char *p = ks_heap_alloc(64); ks_heap_free(p + 16); }
static void good_free_small(void)
{ char *p = ks_heap_alloc(64); ks_heap_free(p); }
static void bad_interior_large(void)
{ char *p = ks_heap_alloc(8192); ks_heap_free(p + KS_HEAP_PAGE); }
static void good_free_large(void)
{ char *p = ks_heap_alloc(8192); ks_heap_free(p); }
/* The next block of the page: a block start, but never handed out. */
static void bad_unallocated_block(void)
{ char *p = ks_heap_alloc(64); ks_heap_free(p + 64); }

/* A write after free that forges the free-list link is caught on reuse. */
static void bad_forged_link(void)
{
    char local;
    void **p = ks_heap_alloc(64);

    ks_heap_free(p);
    *p = &local;
    ks_heap_alloc(64);
}
static void good_reuse(void)
{ void *p = ks_heap_alloc(64); ks_heap_free(p); ks_heap_alloc(64); }

static const struct fatal_case {
    const char *name;
    void (*bad)(void);
    void (*good)(void);
    const char *message;
} fatal_cases[] = {
    { "double free", bad_double_free, good_single_free, "double free" },
    { "free(malloc())", bad_free_malloc, good_single_free, "outside" },
    { "free(stack)", bad_free_stack, good_single_free, "outside" },
    { "realloc(malloc())", bad_realloc_malloc, good_realloc, "outside" },
    { "interior, small", bad_interior_small, good_free_small,
      "not a block start" },
    { "interior, large", bad_interior_large, good_free_large,
      "not a block start" },
    { "unallocated block", bad_unallocated_block, good_free_small,
      "not allocated" },
    { "forged free list", bad_forged_link, good_reuse, "corrupt free list" },
};

static void
broken_invariants_abort(void **state)
{
    char err[512];
    int status;

    (void) state;
    for (size_t i = 0; i < sizeof(fatal_cases) / sizeof(fatal_cases[0]); i++) {
        const struct fatal_case *c = &fatal_cases[i];

        status = run_child(c->bad, err, sizeof(err));
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
            fail_msg("%s: child status %#x, not SIGABRT", c->name, status);
        }
        /* One line, from the heap, that says what broke. */
        assert_true(strncmp(err, "ks_heap: ", 9) == 0);
        assert_non_null(strstr(err, c->message));
        assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);

        status = run_child(c->good, err, sizeof(err));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail_msg("%s, control: child status %#x", c->name, status);
        }
        assert_string_equal(err, "");
    }
}

static int
group_setup(void **state)
{
    (void) state;
    return ks_heap_init(TEST_HEAP_SIZE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_once_and_range),
        cmocka_unit_test(alloc_sizes_aligned_disjoint),
        cmocka_unit_test(fresh_memory_is_zero),
        cmocka_unit_test(freed_block_zeroed_and_reused),
        cmocka_unit_test(realloc_keeps_data),
        cmocka_unit_test(stats_baseline_and_peak),
        cmocka_unit_test(exhaustion_returns_null),
        cmocka_unit_test(threads_share_the_heap),
        cmocka_unit_test(heap_not_in_core_dumps),
        cmocka_unit_test(broken_invariants_abort),
    };

    return cmocka_run_group_tests_name("ks_heap", tests, group_setup, NULL);
}
