/*
 * libkeystore: the public API.  (U calls it; T implements it)
 *
 * Only the functions declared KS_API here are exported from libkeystore.so;
 * everything else, including the private copy of libcrypto linked into it,
 * is hidden.  After ks_init() every function below reaches T through the
 * gate, ks_gate_call(), which is exported too: it is the one entry point
 * into T, and the tests (and later the provider) call it with the
 * operations of ks_ops.h.
 */

#ifndef KEYSTORE_H
#define KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#define KS_API __attribute__((visibility("default")))

struct ks_config {
    size_t      heap_size;      /* bytes of the T heap; 0: 64 MiB */
    size_t      stack_size;     /* bytes of the T stack; 0: 256 KiB */
};

struct ks_stats {
    uint64_t    t_heap_bytes;       /* bytes in live T heap blocks */
    uint64_t    t_heap_peak_bytes;  /* their maximum since ks_init() */
    uint64_t    gate_crossings;     /* gate entries, this call included */
    int         pkey;               /* the keystore's protection key */
};

/*
 * Create the keystore: a protection key, the T heap and stack, the private
 * libcrypto initialised in the T heap, T closed.  Needs MPK (pku/ospke,
 * Linux >= 6.12).  cfg may be NULL for the defaults.  Once per process,
 * before other threads start: 0, or -1 with the reason in err (then the
 * process must not use the keystore; there is no retry).
 */
KS_API int ks_init(const struct ks_config *cfg, char *err, size_t errlen);

/* Current statistics (one gate crossing): 0, or -1 before ks_init(). */
KS_API int ks_stats(struct ks_stats *out);

/* OpenSSL_version_num() of the private libcrypto (0x30500070: 3.5.7). */
KS_API unsigned long ks_private_openssl_version(void);

/*
 * TEST ENTRY, not for production use: SHA-256 of in[0..len) computed in T
 * by the private libcrypto, whose allocations come from the T heap.  The
 * digest is public, so it may leave T.  0, or -1 before ks_init() or on
 * failure.
 */
KS_API int ks_selftest_sha256(const void *in, size_t len,
    unsigned char out[32]);

/*
 * Replace the sealing key (made at random by ks_init()) with the one in
 * the file path: T reads the file itself (the `keystore_seal_key`
 * directive; rules in ks_seal.h: a regular file of 32 raw bytes or 64 hex
 * digits, mode without any 077 bit, owned by root or the caller, not all
 * zero).  Keystores (processes) that load the same file make the same
 * tokens.  One gate crossing.  0; or -1 with a one-line message naming
 * the file in err (if errlen > 0), and the previous key kept.
 */
KS_API int ks_seal_key_load_file(const char *path, char *err, size_t errlen);

/*
 * Lockdown (ks_lockdown.c): the pieces, as bits of ks_lockdown_status().
 * KS_LOCKDOWN_SIGNALS is also ks_lockdown()'s only flag.
 */
#define KS_LOCKDOWN_SIGNALS  0x01u  /* no handler; rt_sigreturn ends the
                                       process; rt_sigaction, sigaltstack:
                                       EPERM */
#define KS_LOCKDOWN_SEALED   0x02u  /* T, libkeystore and all code mseal'd */
#define KS_LOCKDOWN_NO_WX    0x04u  /* no W+X mapping, no writable alias of
                                       code, no READ_IMPLIES_EXEC */
#define KS_LOCKDOWN_NODUMP   0x08u  /* PR_GET_DUMPABLE is 0 */
#define KS_LOCKDOWN_SECCOMP  0x10u  /* the syscall filter, in every thread */
#define KS_LOCKDOWN_ALL      0x1fu  /* "lockdown: on" */

/*
 * Lock the process down, once, after ks_init() and the inspector's
 * rewriting and before serving (a worker's init_process), while no
 * attacker can be in control yet.  flags: 0 or KS_LOCKDOWN_SIGNALS (only
 * once no signal handler can run any more: asynchronous signals blocked
 * and read from a signalfd, every disposition SIG_DFL or SIG_IGN — a
 * remaining handler is refused).  Refuses (W+X mapping, writable alias of
 * code, a handler with KS_LOCKDOWN_SIGNALS) before changing anything;
 * then seals, sets PR_SET_DUMPABLE 0 and loads the
 * seccomp filter in all threads (NO_NEW_PRIVS; denied calls fail with
 * EPERM, x32/int 0x80 calls end the process with SIGSYS; the policy is in
 * ks_seccomp_gen.c).  Needs Linux >= 6.10 (mseal).  Returns 0 only if
 * ks_lockdown_status() then shows every requested piece; else -1 with a
 * one-line reason in err (errlen > 0 required), and the process must not
 * serve: pieces already in place stay.
 */
KS_API int ks_lockdown(unsigned flags, char *err, size_t errlen);

/*
 * The pieces in force in this process now (KS_LOCKDOWN_* bits), read from
 * the kernel (/proc/self/smaps, prctl, harmless probe calls), not
 * remembered; their names ("sealed no-wx nodump seccomp signals", or
 * "none") in desc if desc != NULL.  Reads smaps: for a status request or
 * once after ks_lockdown(), not per connection.
 */
KS_API unsigned ks_lockdown_status(char *desc, size_t desclen);

/* The gate: run operation op (ks_ops.h) in T.  >= 0, or a KS_ERR_* code. */
KS_API long ks_gate_call(unsigned op, void *args);

#endif /* KEYSTORE_H */
