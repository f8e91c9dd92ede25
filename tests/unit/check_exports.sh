#!/bin/sh
# Checks the dynamic symbols of libkeystore.so (DESIGN.md, "Crypto inside T"):
#  - it exports exactly the API that keystore.h declares with KS_API: no
#    symbol of its private libcrypto (EVP_*, OPENSSL_*, CRYPTO_*, ...) and
#    no internal ks_* function may be visible, or U code and the system's
#    libcrypto could call or bind to T's internals;
#  - everything it imports comes from glibc (versioned @GLIBC_*), so the
#    private copy can never bind to the system's libcrypto either.
# Usage: check_exports.sh libkeystore.so [keystore.h]   (exit 0: clean)

set -eu
lib=${1:?usage: $0 libkeystore.so [keystore.h]}
header=${2:-$(dirname "$0")/../../keystore/keystore.h}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -o '^KS_API[^(]*(' "$header" \
    | sed -E 's/.*[ *](ks_[A-Za-z0-9_]+)\($/\1/' | sort -u > "$tmp/api"
nm -D --defined-only "$lib" | awk '{ print $NF }' | sort -u > "$tmp/exports"
# Weak undefined symbols (w) are the toolchain's optional hooks
# (__gmon_start__, _ITM_*, __cxa_finalize); only strong imports matter.
nm -D --undefined-only "$lib" | awk '$1 == "U" { print $2 }' \
    | { grep -v '@GLIBC_' || true; } > "$tmp/foreign"
comm -13 "$tmp/api" "$tmp/exports" > "$tmp/extra"
comm -23 "$tmp/api" "$tmp/exports" > "$tmp/missing"

n() { wc -l < "$tmp/$1" | tr -d ' '; }
echo "$lib: $(n exports) exports ($(n api) in keystore.h), $(n extra)" \
     "unexpected, $(n missing) missing, $(n foreign) non-glibc imports"
if [ "$(n api)" -eq 0 ] || [ -s "$tmp/extra" ] || [ -s "$tmp/missing" ] \
   || [ -s "$tmp/foreign" ]; then
    head -5 "$tmp/extra" | sed 's/^/  unexpected export: /'
    head -5 "$tmp/missing" | sed 's/^/  missing export: /'
    head -5 "$tmp/foreign" | sed 's/^/  non-glibc import: /'
    echo "FAIL: libkeystore.so must export only its API and import only glibc"
    exit 1
fi
echo "ok: exports are exactly the KS_API functions of keystore.h"
