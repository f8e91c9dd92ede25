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

$(UNIT_TESTS): $(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o
	mkdir -p $(@D)
	$(CC) -o $@ $(filter %.o %.a,$^) $(UNIT_LDLIBS) -lcmocka -pthread

# the static /init of the QEMU guest
$(BUILD)/tests/qemu/guest_init: tests/qemu/guest_init.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -static -o $@ $<

PROJECT_TARGETS += $(BUILD)/tests/qemu/guest_init
