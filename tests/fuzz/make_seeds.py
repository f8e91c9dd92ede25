#!/usr/bin/python3
"""Write the gate fuzzer's seed corpus (tests/fuzz/corpus/gate/).

    make_seeds.py [OUTDIR]

Each seed is a short, valid sequence of gate calls in fuzz_ops.c's input
format, so that fuzzing starts from every operation done right (a record
sealed with a real key token, a derivation per group, a signature per key
type) instead of having to find those by chance.  The encoding follows
fuzz_ops.c: one byte for the operation and one for where the argument
block goes, then each field in the order of the operation's descriptor:
numbers, lengths and handles first, then the pointers.  The seeds are
committed; run this again after changing that format.
"""

import os
import struct
import sys

OPS = dict(NOP=0, STATS=1, SHA256=2, RANGES=3, FREE=4, AEAD_NEW=5,
           AEAD_RECORD=6, KDF=7, MAC=8, KEYGEN=9, DERIVE=10, ENCAP=11,
           DECAP=12, PKEY_LOAD=13, SIGN=14, SEAL_KEY_LOAD=15)
NBANKS = 5
# fuzz_bank.c's order: tokens per digest (SECRET, MAC_KEY, RECORD_KEY 16,
# RECORD_KEY 32) for SHA-256/384/512, then X25519 and X448 shared secrets
TOKEN = dict(secret32=0, mac32=1, rk16=2, rk32=3, secret48=4, secret64=8,
             x25519=12, x448=13)
PATH = dict(seal=0, ec=1, ed25519=2, rsa=3)


def op(name):
    return bytes([OPS[name], 0])            # the block in a fenced buffer


def u32(v):
    return bytes([v])                       # v < 0xf0: taken modulo range+2


def small(n):
    return bytes([1, n])                    # a length below 256


def mid(n):
    return bytes([2]) + struct.pack("<I", n)    # a length below 8192


def handle(i=0):
    return bytes([0, i])                    # the i-th handle made so far


def out():
    return bytes([0])                       # fenced, ending at the guard


def data(b):
    return bytes([0]) + b                   # fenced, filled with b


def bank(i):
    return bytes([6, NBANKS * i])           # bank item i, with its length


def null():
    return bytes([7])


def aead(alg, keytok, aadlen=13, inlen=32):
    s = op("AEAD_NEW") + u32(alg) + u32(1) + small(0) + bank(keytok) + out()
    s += (op("AEAD_RECORD") + handle() + small(aadlen) + small(inlen)
          + data(b"\x01" * 12) + data(b"\xaa" * aadlen)
          + data(b"\x55" * inlen) + out() + out())
    return s + op("FREE") + handle()


def kdf(kdf_id, md, mode, key_tok, cls, keytok, label, outlen):
    """TLS13-KDF and HKDF take the label as such, TLS1-PRF as its seed."""
    if label is None:
        label_data = null() + null()
    elif kdf_id == 3:
        label_data = null() + bank(label)
    else:
        label_data = bank(label) + null()
    return (op("KDF") + u32(kdf_id) + u32(md) + u32(mode) + u32(key_tok)
            + u32(0) + u32(cls) + small(0) + small(0) + small(0) + small(0)
            + u32(0) + u32(0) + u32(0) + small(outlen)
            + bank(keytok) + null() + label_data + out())


def kex(group, peer, secretlen):
    s = op("KEYGEN") + u32(group) + mid(2048) + out() + out() + out()
    s += (op("DERIVE") + handle() + small(0) + small(secretlen)
          + bank(peer) + out())
    return s + op("FREE") + handle()


def sign(path, md, padding):
    s = (op("PKEY_LOAD") + small(0) + mid(2048) + bank(PATH[path]) + out()
         + out() + out())
    s += (op("SIGN") + handle() + u32(md) + u32(padding) + small(32)
          + mid(2048) + data(b"\x33" * 32) + out() + out())
    return s + op("FREE") + handle()


def seeds():
    yield "stats", op("STATS") + out()
    yield "ranges", op("RANGES") + out() + out()
    yield "sha256", op("SHA256") + small(3) + data(b"abc") + out()
    yield "nop_null", bytes([0, 5])
    yield "stats_t_pointer", op("STATS") + bytes([8, 0])
    yield "unknown_op", bytes([0xf8, 0]) + struct.pack("<I", 0xdeadbeef) \
        + bytes(64)
    yield "aead_aes128gcm", aead(1, TOKEN["rk16"])
    yield "aead_aes256gcm", aead(2, TOKEN["rk32"])
    yield "aead_chacha", aead(3, TOKEN["rk32"], 5, 100)
    # TLS13-KDF expand: "key" (record key), "iv" (clear), "finished"
    yield "kdf_tls13_key", kdf(1, 1, 2, 1, 2, TOKEN["secret32"], 0, 16)
    yield "kdf_tls13_iv", kdf(1, 1, 2, 1, 4, TOKEN["secret32"], 1, 12)
    yield "kdf_tls13_finished", kdf(1, 1, 2, 1, 3, TOKEN["secret32"], 2, 32)
    yield "kdf_tls13_secret384", kdf(1, 2, 2, 1, 1, TOKEN["secret48"], 5, 48)
    yield "kdf_hkdf_extract", kdf(2, 1, 1, 1, 1, TOKEN["secret32"], None, 32)
    yield "kdf_prf_master", kdf(3, 1, 0, 1, 1, TOKEN["secret48"], 10, 48)
    yield "kdf_prf_finished", kdf(3, 1, 0, 1, 4, TOKEN["secret48"], 12, 12)
    yield "mac_finished", (op("MAC") + u32(1) + u32(1) + small(0)
                           + small(32) + small(32) + bank(TOKEN["mac32"])
                           + data(b"\x11" * 32) + out())
    for g, n in ((1, 32), (2, 56), (3, 32), (4, 48), (5, 66)):
        yield "kex_group%d" % g, kex(g, g - 1, n)
    yield "kem_encap", (op("ENCAP") + u32(6) + small(0) + mid(2048)
                        + small(64) + bank(5) + out() + out() + out())
    yield "kem_decap", (op("KEYGEN") + u32(6) + mid(2048) + out() + out()
                        + out() + op("DECAP") + handle() + small(0)
                        + small(64) + bank(0) + out() + op("FREE")
                        + handle())
    yield "sign_ec", sign("ec", 1, 0)
    yield "sign_ed25519", sign("ed25519", 0, 0)
    yield "sign_rsa_pkcs1", sign("rsa", 1, 1)
    yield "sign_rsa_pss", sign("rsa", 2, 2)
    yield "seal_key_load", (op("SEAL_KEY_LOAD") + small(0) + small(200)
                            + bank(PATH["seal"]) + out())


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "gate")
    os.makedirs(outdir, exist_ok=True)
    for name, blob in seeds():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main())
