/*
 * ks_seal: sealed tokens.  (T)
 *
 * libssl outside T only ever holds "sealed tokens" in place of TLS secrets:
 * a deterministic, length-preserving encryption of the secret under the
 * sealing key, which exists only in T (see DESIGN.md, "Sealed tokens").
 * Sealing must be deterministic (the same secret gives the same token, so
 * tickets and session caches work) and a strong pseudo-random permutation
 * over the whole value (every token bit depends on every secret bit and
 * vice versa, and tokens of related secrets of different lengths are
 * unrelated).
 *
 * Token classes.  A token stands for one kind of secret and must only be
 * usable where that kind is used; otherwise T becomes an oracle that turns
 * secrets into clear keys.  Example: HKDF-Expand(PRK, info) for a one-block
 * output is HMAC(PRK, info || 0x01), so an HMAC operation that accepted any
 * token as its key would hand out TLS 1.3 record keys in clear: given the
 * token of a traffic secret S, ask for HMAC(S, HkdfLabel || 0x01) with
 * HkdfLabel = (32, "tls13 key", "") and get HKDF-Expand-Label(S, "key", "",
 * 32), the record key.  So every token is sealed under one of three
 * classes:
 *
 *   KS_SEAL_SECRET      KDF inputs and outputs: (EC)DH/KEM shared secrets,
 *                       early/handshake/master/traffic/resumption secrets,
 *                       the TLS 1.2 master secret.
 *   KS_SEAL_RECORD_KEY  AEAD record keys: TLS 1.3 "key" outputs, the keys
 *                       of the TLS 1.2 key block.
 *   KS_SEAL_MAC_KEY     TLS 1.3 finished keys, i.e. the HMAC keys of
 *                       Finished and of PSK binders ("finished" outputs;
 *                       RFC 8446's binder_key is a KDF input, so SECRET),
 *                       used only by HMAC for Finished/binders.
 *
 * and each class has its own independent subkeys, so a class is its own
 * independent permutation: a token of one class unseals in another class
 * to bytes unrelated to the secret (not the secret, not the secret plus a
 * known difference).  The class is chosen by the operation in T that
 * seals or unseals (the KDF unseals its input as SECRET and seals "key" as
 * RECORD_KEY, "finished" as MAC_KEY and every other output that is not on
 * the clear allow-list as SECRET; the AEAD unseals its key as RECORD_KEY;
 * the Finished/binder HMAC unseals its key as MAC_KEY), never by a marker
 * from U.  With that, the HMAC operation above unseals a traffic-secret
 * token to bytes unrelated to S, and a token passed to an operation of
 * another class acts there as an unknown random key.
 *
 * Construction (format "v2"; tokens persist in tickets and session caches
 * and may be shared between servers with the same key file, so this is a
 * stable format: changing anything below needs a new version string.  v1
 * had no classes; v2 tokens of every class differ from v1 tokens, and v1
 * tokens, e.g. in tickets from before the change, unseal to garbage):
 *
 *   Subkeys.  From the 32-byte sealing key K, HKDF-SHA-256 (RFC 5869,
 *   extract-and-expand, salt "mpk-tls sealed tokens v2") derives
 *   independent 32-byte subkeys for each class C, named "secret",
 *   "record key" or "mac key" (the info strings are C "/" purpose, and no
 *   class name contains "/", so they are all distinct):
 *     KA[C]           = HKDF(K, info C "/aes-256 block"),
 *     K0[C] .. K3[C]  = HKDF(K, info C "/feistel round 0" .. "/feistel
 *                       round 3"),
 *   e.g. "record key/feistel round 2".  All 15 subkeys and their keyed
 *   contexts are set up when the key is set; a seal only picks its class's
 *   contexts, so it costs what it did without classes.
 *
 *   16 bytes: one AES-256 block encryption under KA[C] (AES is a strong PRP
 *   on 128-bit blocks; nothing else is needed).
 *
 *   n = 32, 48, 56, 64, 66 bytes: a balanced 4-round Feistel network over
 *   halves L, R of h = n/2 bytes (16, 24, 28, 32, 33), written without
 *   swaps:  L ^= F0(R); R ^= F1(L); L ^= F2(R); R ^= F3(L).
 *   Unsealing runs the rounds backwards.  The round function is
 *       Fi(x) = first h bytes of  HMAC-SHA-256(Ki[C], 0x00 || n || i || x)
 *                              || HMAC-SHA-256(Ki[C], 0x01 || n || i || x)
 *   (n and i one byte each; the second block, a counter-mode expansion as
 *   in NIST SP 800-108, is computed only for h = 33).
 *
 * Why: HMAC-SHA-256 with independent keys is a PRF, so by Luby-Rackoff
 * (and Naor-Reingold) 4 rounds give a strong PRP on 2h-byte strings with
 * distinguishing advantage about q^2 / 2^(8h) for q queries: q^2 / 2^128 at
 * the smallest half (16 bytes).  The total length n in every round input
 * makes the permutations for different n independent, so sealing a prefix
 * of a secret says nothing about the longer token; the class in the subkey
 * info makes the permutations of different classes independent in the same
 * way.  16 bytes uses AES because a Feistel network over 8-byte halves
 * would only reach q^2 / 2^64.
 * Only OpenSSL's EVP primitives are used (HMAC through EVP_MAC, AES through
 * EVP_CIPHER, HKDF through EVP_KDF); the keyed contexts are built once per
 * key and only re-initialized per seal.  Standard wide-block modes (EME,
 * HCTR2, Adiantum) are not in OpenSSL; XTS and SIV are not fit (XTS is not
 * a wide-block PRP, SIV is not length-preserving).
 *
 * Determinism means equal secrets give equal tokens; that is required
 * (tickets, caches) and is all a token reveals.  Using T as a sealing or
 * unsealing oracle while U is compromised is accepted by the threat model.
 *
 * Storage.  Everything this file keeps (flags, subkey scratch, the working
 * copy of a secret) is static data of ks_seal.c, to be placed in T pages;
 * each operation wipes its scratch with OPENSSL_cleanse before returning.
 * The keyed EVP contexts are allocated by libcrypto, whose allocator T
 * points at the T heap (DESIGN.md, "Crypto inside T").
 *
 * Threads.  A spinlock in ks_seal.c (no libc, no syscalls) serializes
 * seal/unseal/key changes.  The pinned libcrypto is built no-threads, so
 * T as a whole must still be entered by one thread at a time (the gate's
 * job; see ks_crypto.h).
 *
 * All functions return 0 on success and -1 on failure.  A failed call
 * changes nothing (no output written, the previous key stays in effect).
 */

#ifndef KS_SEAL_H
#define KS_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define KS_SEAL_KEY_LEN 32

/* Longest secret that can be sealed. */
#define KS_SEAL_MAX_LEN 66

/*
 * 1 if len is a length that can be sealed (16, 32, 48, 56, 64, 66), else 0.
 * 16: AES-128 record keys; 32: SHA-256 secrets, X25519/P-256 shared
 * secrets, AES-256/ChaCha20 keys; 48: SHA-384 secrets, P-384, the TLS 1.2
 * master secret; 56: X448; 64: X25519MLKEM768; 66: P-521.
 */
int ks_seal_len_ok(size_t len);

/* Set the sealing key (exactly KS_SEAL_KEY_LEN bytes).  Replaces any key. */
int ks_seal_key_set(const unsigned char *key, size_t len);

/* A fresh random sealing key (RAND_priv_bytes): tokens live for one start. */
int ks_seal_key_random(void);

/*
 * Read the sealing key from a file (the `keystore_seal_key` directive).
 * The file must be a regular file holding exactly 32 raw bytes, or exactly
 * 64 hex digits optionally followed by one '\n' (make one with
 * `openssl rand 32 >FILE` or `openssl rand -hex 32 >FILE`, then
 * `chmod 600 FILE`).  It must not be accessible by group or others (no bit
 * of 077 in its mode) and must be owned by root or by the calling user, and
 * an all-zero key is refused.  On failure err (if errlen > 0) holds a
 * one-line message naming the file and what is expected, for `nginx -t`;
 * on success err is "".  The file is read with open/read/close and every
 * copy of its contents is wiped.
 *
 * Why permissions are checked although nginx's ssl_session_ticket_key does
 * not: whoever holds this key and can read worker memory (the attacker of
 * the threat model) unseals every token in it, past and future, so it is
 * worth more than a ticket key.  NGINX workers run as an unprivileged user
 * that is typically in the file's group or covered by "others", so a
 * group/other-readable file would hand the key to a compromised worker
 * with one open(); a group/other-writable file, or one owned by another
 * user, would let it plant a known key for the next start.
 */
int ks_seal_key_load(const char *path, char *err, size_t errlen);

/* 1 if a sealing key is set, else 0. */
int ks_seal_key_is_set(void);

/* Forget the sealing key (contexts freed, key schedules cleansed); also
 * turns identity mode off.  Afterwards ks_seal/ks_unseal fail. */
void ks_seal_key_wipe(void);

/* Token classes (see above).  The values are part of the API, not of the
 * token format (the format names classes by their info strings). */
enum ks_seal_class {
    KS_SEAL_SECRET = 0,         /* KDF inputs/outputs, TLS 1.2 master secret */
    KS_SEAL_RECORD_KEY = 1,     /* AEAD record keys */
    KS_SEAL_MAC_KEY = 2,        /* TLS 1.3 finished/binder HMAC keys */
};

/* Number of classes; valid classes are 0 .. KS_SEAL_NCLASSES - 1. */
#define KS_SEAL_NCLASSES 3

/*
 * Seal (unseal) len bytes from in to out as a token of class cls.  len must
 * satisfy ks_seal_len_ok and cls must be a ks_seal_class; otherwise, or if
 * no key is set, or on an internal error, -1 is returned and out is not
 * written.  out and in may overlap (out == in is fine).  Unsealing a token
 * with another class than it was sealed with succeeds but gives bytes
 * unrelated to the secret; the caller's choice of class is the check.
 */
int ks_seal(unsigned char *out, const unsigned char *in, size_t len,
    unsigned cls);
int ks_unseal(unsigned char *out, const unsigned char *in, size_t len,
    unsigned cls);

/*
 * TEST HOOK -- production code never calls this.
 *
 * Identity mode turns sealing off: ks_seal and ks_unseal copy their input
 * (lengths and classes are still checked; no key is needed), so that test
 * suites can compare libssl's outputs with OpenSSL's published test
 * vectors.  To turn it on, magic must be KS_SEAL_TEST_IDENTITY_MAGIC and on
 * must be 1; any other magic (0, 1, true, ...) or on value is refused with
 * -1 and changes nothing.  Turning it off (on = 0) is always allowed.  ks_seal_key_wipe
 * turns it off too.  The flag is T data, so code in U cannot flip it; this
 * function must never be in the gate operation table.
 */
#define KS_SEAL_TEST_IDENTITY_MAGIC UINT64_C(0x4e4f5345414c2121) /* NOSEAL!! */
int ks_seal_test_set_identity(uint64_t magic, int on);

/* 1 while identity mode is on (for a status page to show it), else 0. */
int ks_seal_identity_on(void);

#endif /* KS_SEAL_H */
