# keystore/: included by the top-level Makefile.
#
# libkeystore.so: our T code and the private copy of the pinned libcrypto,
# linked statically with every symbol hidden (-fvisibility=hidden for our
# objects, --exclude-libs for the archive), no start files (no destructors
# that ld.so would run at exit with T closed), immediate binding and RELRO
# (the GOT is read-only from the start; see ks_domain.c for why it stays
# untagged), and calls to its own exported functions bound directly
# (-Bsymbolic-functions): no PLT detour for the U-side stubs, and no
# interposed symbol can redirect them.
#
# Two more builds of the same sources exist for the tests only:
# libkeystore-test.so adds the test operations of ks_ops.h (KS_TEST_OPS),
# libkeystore-noscrub.so also drops the gate's register scrub — the control
# that shows the register test can fail.

KS_SRCS := keystore/ks_api.c keystore/ks_crypto.c keystore/ks_dispatch.c \
	keystore/ks_domain.c keystore/ks_handle.c keystore/ks_heap.c \
	keystore/ks_op_aead.c keystore/ks_op_kdf.c keystore/ks_op_kex.c \
	keystore/ks_op_sign.c \
	keystore/ks_platform.c keystore/ks_range.c keystore/ks_seal.c \
	keystore/ks_lockdown.c keystore/ks_seccomp.c keystore/ks_signals.c \
	keystore/ks_vma.c \
	keystore/ks_gate.S
KS_GEN := $(BUILD)/gen/keystore
KS_CFLAGS := $(CFLAGS_PROJECT) -fvisibility=hidden -I$(OPENSSL_PREFIX)/include \
	-I$(KS_GEN)
KS_LDFLAGS := -shared -nostartfiles -Wl,--exclude-libs,ALL -Wl,-z,now \
	-Wl,-z,relro -Wl,-z,defs -Wl,-z,noexecstack -Wl,-Bsymbolic-functions

KS_VARIANTS := ks ks-test ks-noscrub
KS_DEFS_ks :=
KS_DEFS_ks-test := -DKS_TEST_OPS
KS_DEFS_ks-noscrub := -DKS_TEST_OPS -DKS_GATE_NO_SCRUB

define ks_variant
$(BUILD)/obj/$(1)/%.o: keystore/%.c $(OPENSSL_STAMP)
	mkdir -p $$(@D)
	$$(CC) $$(KS_CFLAGS) $$(KS_DEFS_$(1)) -MMD -MP -c -o $$@ $$<

$(BUILD)/obj/$(1)/%.o: keystore/%.S
	mkdir -p $$(@D)
	$$(CC) $$(KS_DEFS_$(1)) -MMD -MP -c -o $$@ $$<

KS_OBJS_$(1) := $$(patsubst keystore/%,$(BUILD)/obj/$(1)/%.o,$$(basename $$(KS_SRCS)))
$(BUILD)/obj/$(1)/ks_seccomp.o: $(KS_GEN)/ks_seccomp_filter.h
endef
$(foreach v,$(KS_VARIANTS),$(eval $(call ks_variant,$(v))))

$(BUILD)/lib/libkeystore.so: $(KS_OBJS_ks) $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(CC) $(KS_LDFLAGS) -Wl,-soname,libkeystore.so -o $@ $(KS_OBJS_ks) \
		$(OPENSSL_PREFIX)/lib/libcrypto.a

$(BUILD)/lib/libkeystore-test.so: $(KS_OBJS_ks-test) $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(CC) $(KS_LDFLAGS) -Wl,-soname,libkeystore-test.so -o $@ \
		$(KS_OBJS_ks-test) $(OPENSSL_PREFIX)/lib/libcrypto.a

# the no-scrub control keeps the test library's soname, so a test binary
# can be linked against either
$(BUILD)/lib/noscrub/libkeystore-test.so: $(KS_OBJS_ks-noscrub) $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(CC) $(KS_LDFLAGS) -Wl,-soname,libkeystore-test.so -o $@ \
		$(KS_OBJS_ks-noscrub) $(OPENSSL_PREFIX)/lib/libcrypto.a

# the platform check alone, for its unit test
$(BUILD)/lib/libkeystore_platform.a: $(BUILD)/obj/ks/ks_platform.o
	mkdir -p $(@D)
	$(AR) rcs $@ $^

PROJECT_TARGETS += $(BUILD)/lib/libkeystore.so $(BUILD)/lib/libkeystore-test.so \
	$(BUILD)/lib/noscrub/libkeystore-test.so $(BUILD)/lib/libkeystore_platform.a

# keystore-bench: ERIM's switch-cost table and our gate (`make bench`)
$(BUILD)/bin/keystore-bench: $(BUILD)/obj/tools/ks_bench.o $(BUILD)/lib/libkeystore.so
	mkdir -p $(@D)
	$(CC) -o $@ $< -L$(abspath $(BUILD))/lib -lkeystore \
		-Wl,-rpath,$(abspath $(BUILD))/lib

$(BUILD)/obj/tools/ks_bench.o: keystore/ks_bench.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -MMD -MP -c -o $@ $<

PROJECT_TARGETS += $(BUILD)/bin/keystore-bench

# The lockdown's seccomp filter: made at build time with libseccomp
# (Debian's libseccomp-dev) by a host tool, compiled into the library as
# constants (why: keystore/ks_seccomp_gen.c).  The .pfc next to it is
# libseccomp's readable listing of the same programs.
$(BUILD)/tools/ks_seccomp_gen: keystore/ks_seccomp_gen.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -o $@ $< -lseccomp

$(KS_GEN)/ks_seccomp_filter.h: $(BUILD)/tools/ks_seccomp_gen
	mkdir -p $(@D)
	$< $@.tmp $(KS_GEN)/ks_seccomp_filter.pfc && mv $@.tmp $@
