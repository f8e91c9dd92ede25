# tests/: C unit tests (cmocka), included by the top-level Makefile.
# Each tests/unit/test_NAME.c becomes build/tests/unit/test_NAME, linked
# from its object, the prerequisites listed here and UNIT_LDLIBS.  Tests
# that include the .c file they test (to reach its static state) need
# nothing else.  MPK_UNIT_TESTS need protection keys: run_all.py runs them
# natively or in a QEMU guest (tests/qemu/).

LIB_DIR := $(abspath $(BUILD))/lib
UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%) \
	$(BUILD)/tests/unit/test_gate_noscrub
MPK_UNIT_TESTS := $(BUILD)/tests/unit/test_gate \
	$(BUILD)/tests/unit/test_gate_noscrub $(BUILD)/tests/unit/test_libkeystore

$(BUILD)/tests/unit/test_platform: $(BUILD)/lib/libkeystore_platform.a
$(BUILD)/tests/unit/test_heap: $(BUILD)/obj/ks/ks_heap.o

$(BUILD)/tests/unit/test_seal: $(BUILD)/obj/ks/ks_seal.o
$(BUILD)/tests/unit/test_seal: UNIT_LDLIBS = $(OPENSSL_PREFIX)/lib/libcrypto.a
$(BUILD)/obj/tests/unit/test_seal.o: CFLAGS_PROJECT += -I$(OPENSSL_PREFIX)/include
$(BUILD)/obj/tests/unit/test_seal.o: $(OPENSSL_STAMP)

# against the shipped library and the system's libcrypto (the copy in U)
$(BUILD)/tests/unit/test_libkeystore: $(BUILD)/lib/libkeystore.so
$(BUILD)/tests/unit/test_libkeystore: UNIT_LDLIBS = -L$(LIB_DIR) -lkeystore \
	-Wl,-rpath,$(LIB_DIR) -lcrypto

# the gate: against the test library, and against its no-scrub build
$(BUILD)/tests/unit/test_gate: $(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_gate: UNIT_LDLIBS = -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR) -lcrypto
$(BUILD)/obj/tests/unit/test_gate.o: CFLAGS_PROJECT += -DKS_TEST_OPS
$(BUILD)/obj/tests/unit/test_gate_noscrub.o: tests/unit/test_gate.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -DKS_TEST_OPS -DKS_TEST_NO_SCRUB -MMD -MP -c -o $@ $<
$(BUILD)/tests/unit/test_gate_noscrub: $(BUILD)/lib/noscrub/libkeystore-test.so
$(BUILD)/tests/unit/test_gate_noscrub: UNIT_LDLIBS = \
	-L$(LIB_DIR)/noscrub -lkeystore-test -Wl,-rpath,$(LIB_DIR)/noscrub -lcrypto

# AEAD records: against the test library; OpenSSL's own vectors are
# extracted from the pinned tree at build time (the QEMU guest cannot read it)
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_aead
AEAD_VECTOR_SRCS := $(addprefix $(OPENSSL_SRC)/test/recipes/30-test_evp_data/, \
	evpciph_aes_common.txt evpciph_chacha.txt)
$(BUILD)/tests/unit/gen/aead_vectors.h: tests/unit/gen_aead_vectors.py \
		$(AEAD_VECTOR_SRCS)
	mkdir -p $(@D)
	$(PYTHON) tests/unit/gen_aead_vectors.py $@ $(AEAD_VECTOR_SRCS)
$(BUILD)/obj/tests/unit/test_aead.o: $(BUILD)/tests/unit/gen/aead_vectors.h
$(BUILD)/obj/tests/unit/test_aead.o: CFLAGS_PROJECT += -DKS_TEST_OPS \
	-I$(BUILD)/tests/unit/gen
$(BUILD)/tests/unit/test_aead: $(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_aead: UNIT_LDLIBS = -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR)

# key exchange and signatures: against the test library, with the pinned
# 3.5.7 libcrypto linked statically as the peer in U (the system's 3.0 has
# no ML-KEM; the library's own copy is hidden, so the two never meet)
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_pkey
$(BUILD)/obj/tests/unit/test_pkey.o: CFLAGS_PROJECT += -DKS_TEST_OPS \
	-I$(OPENSSL_PREFIX)/include
$(BUILD)/obj/tests/unit/test_pkey.o: $(OPENSSL_STAMP)
$(BUILD)/tests/unit/test_pkey: $(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_pkey: UNIT_LDLIBS = -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR) $(OPENSSL_PREFIX)/lib/libcrypto.a

# KDF and MAC: against the test library (its seal ops); the system's
# libcrypto (U) computes the reference values that are not in a vector
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_kdf
$(BUILD)/obj/tests/unit/test_kdf.o: CFLAGS_PROJECT += -DKS_TEST_OPS
$(BUILD)/tests/unit/test_kdf: $(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_kdf: UNIT_LDLIBS = -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR) -lcrypto

# explicit sealing: the markers of the libssl series (openssl-patch/) reach
# a provider; linked statically against the patched libssl and libcrypto
$(BUILD)/obj/tests/unit/test_sealing_marks.o: CFLAGS_PROJECT += \
	-I$(OPENSSL_PREFIX)/include
$(BUILD)/obj/tests/unit/test_sealing_marks.o: $(OPENSSL_STAMP)
$(BUILD)/tests/unit/test_sealing_marks: UNIT_LDLIBS = \
	$(OPENSSL_PREFIX)/lib/libssl.a $(OPENSSL_PREFIX)/lib/libcrypto.a -ldl

$(UNIT_TESTS): $(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o
	mkdir -p $(@D)
	$(CC) -o $@ $(filter %.o %.a,$^) $(UNIT_LDLIBS) -lcmocka -pthread

# the static /init of the QEMU guest
$(BUILD)/tests/qemu/guest_init: tests/qemu/guest_init.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -static -o $@ $<

PROJECT_TARGETS += $(BUILD)/tests/qemu/guest_init

# the dynamic rewriter's gadget test (its link line is in inspect/build.mk)
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_rewrite

# the keystore provider, built in, in TLS 1.3 handshakes: the patched static
# libssl/libcrypto, the provider (openssl-patch/build.mk) and libkeystore.so
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_provider
$(BUILD)/obj/tests/unit/test_provider.o: CFLAGS_PROJECT += \
	-I$(OPENSSL_PREFIX)/include
$(BUILD)/obj/tests/unit/test_provider.o: $(OPENSSL_STAMP)
$(BUILD)/tests/unit/test_provider: $(BUILD)/lib/libkeystore_provider.a \
	$(BUILD)/lib/libkeystore.so
$(BUILD)/tests/unit/test_provider: UNIT_LDLIBS = \
	$(OPENSSL_PREFIX)/lib/libssl.a $(OPENSSL_PREFIX)/lib/libcrypto.a \
	-L$(LIB_DIR) -lkeystore -Wl,-rpath,$(LIB_DIR) -ldl

# the rewriter's other classes under MPK (link line in inspect/build.mk)
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_rewrite_classes

# OpenSSL's EVP test vectors (the pinned tree's data files, embedded with
# .incbin) through the keystore provider, built in, with the test
# library's sealing switch
PROVIDER_EVP_DATA := $(OPENSSL_SRC)/test/recipes/30-test_evp_data
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_provider_evp
$(BUILD)/obj/tests/unit/test_provider_evp.o: CFLAGS_PROJECT += -DKS_TEST_OPS \
	-I$(OPENSSL_PREFIX)/include -DEVP_DATA='"$(PROVIDER_EVP_DATA)"'
$(BUILD)/obj/tests/unit/test_provider_evp.o: $(OPENSSL_STAMP) \
	$(addprefix $(PROVIDER_EVP_DATA)/, evpciph_aes_common.txt \
	evpciph_chacha.txt evpkdf_tls13_kdf.txt evpkdf_hkdf.txt \
	evpkdf_tls12_prf.txt evpkdf_tls11_prf.txt evpmac_common.txt \
	evppkey_ecx.txt evppkey_ecdh.txt)
$(BUILD)/tests/unit/test_provider_evp: $(BUILD)/lib/libkeystore_provider.a \
	$(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_provider_evp: UNIT_LDLIBS = \
	$(OPENSSL_PREFIX)/lib/libcrypto.a -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR) -ldl

# bad input through EVP and the provider (built in), sealing on
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_provider_badinput
$(BUILD)/obj/tests/unit/test_provider_badinput.o: CFLAGS_PROJECT += \
	-DKS_TEST_OPS -I$(OPENSSL_PREFIX)/include
$(BUILD)/obj/tests/unit/test_provider_badinput.o: $(OPENSSL_STAMP)
$(BUILD)/tests/unit/test_provider_badinput: \
	$(BUILD)/lib/libkeystore_provider.a $(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_provider_badinput: UNIT_LDLIBS = \
	$(OPENSSL_PREFIX)/lib/libcrypto.a -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR) -ldl

# lockdown (keystore/ks_lockdown.c): every single-process attack class of
# pku-attacks.md with lockdown off and on, the policy call by call, the
# refusals and the status; against the test library (peek and poke for
# T's canary and hash), the system's libcrypto for SHA-256
MPK_UNIT_TESTS += $(BUILD)/tests/unit/test_lockdown
LOCKDOWN_TEST_OBJS := $(addprefix $(BUILD)/obj/tests/unit/, \
	lockdown_attacks.o lockdown_attacks2.o lockdown_policy.o)
$(BUILD)/obj/tests/unit/test_lockdown.o $(LOCKDOWN_TEST_OBJS): \
	CFLAGS_PROJECT += -DKS_TEST_OPS
$(BUILD)/tests/unit/test_lockdown: $(LOCKDOWN_TEST_OBJS) \
	$(BUILD)/lib/libkeystore-test.so
$(BUILD)/tests/unit/test_lockdown: UNIT_LDLIBS = -L$(LIB_DIR) \
	-lkeystore-test -Wl,-rpath,$(LIB_DIR) -lcrypto

# the attack suite (tests/attacks/): a library preloaded into NGINX that
# runs the attacks above, and those only a whole worker has, inside a real
# worker; linked against the shipped libkeystore.so (the one NGINX loads).
# -mno-red-zone: its inline asm calls a gadget below the stack pointer;
# -z now: once an attack has opened T, a lazy binding would go through
# ld.so's XRSTOR, whose rewritten check ends the worker before the attack
# can report (that check is a defense of its own, not the one under test).
ATTACK_LIB := $(BUILD)/tests/attacks/libmpktls-attack.so
ATTACK_OBJS := $(addprefix $(BUILD)/obj/tests/attacks/, \
	attack_preload.o attack_extra.o) \
	$(addprefix $(BUILD)/obj/tests/attacks/unit/, \
	lockdown_attacks.o lockdown_attacks2.o)
$(ATTACK_OBJS): CFLAGS_PROJECT += -DKS_TEST_OPS -mno-red-zone
$(BUILD)/obj/tests/attacks/unit/%.o: tests/unit/%.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -MMD -MP -c -o $@ $<
$(ATTACK_LIB): $(ATTACK_OBJS) $(BUILD)/lib/libkeystore.so
	mkdir -p $(@D)
	$(CC) -shared -o $@ $(ATTACK_OBJS) -L$(LIB_DIR) -lkeystore \
		-Wl,-rpath,$(LIB_DIR) -Wl,-z,now -ldl -lpthread
