# tests/fuzz/: the gate fuzzer, included by the top-level Makefile.
#
#   make fuzz [FUZZ_SECONDS=600]   run it (in the QEMU guest without pku)
#
# build/tests/fuzz/fuzz_gate: the harness (clang, libFuzzer, ASan, UBSan)
# and build/lib/fuzz/libkeystore-fuzz.so: the test library's sources built
# with clang, ASan and UBSan, and with trace-pc/trace-cmp coverage whose
# edge hook is renamed to the harness's ks_fuzz_trace_pc (why:
# fuzz_gate.c).  The gate (.S) and the private libcrypto are not
# instrumented.  Built with `make` when clang is installed (configure
# installs it), so that a broken fuzzer shows at once.

FUZZ_CC := clang
FUZZ_SECONDS ?= 600
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_KS_CFLAGS := -std=gnu11 -O1 -g -fPIC -Wall -Wextra -Werror \
	-fvisibility=hidden -DKS_TEST_OPS -I$(OPENSSL_PREFIX)/include \
	-I$(KS_GEN) $(FUZZ_SAN) -fsanitize-coverage=trace-pc,trace-cmp \
	-mllvm -asan-globals=0
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -DKS_TEST_OPS \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_KS_OBJS := $(patsubst keystore/%,$(BUILD)/obj/ks-fuzz/%.o, \
	$(basename $(KS_SRCS)))
FUZZ_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o, \
	$(wildcard tests/fuzz/*.c))
FUZZ_BIN := $(BUILD)/tests/fuzz/fuzz_gate
FUZZ_LIB := $(BUILD)/lib/fuzz/libkeystore-fuzz.so

$(BUILD)/obj/ks-fuzz/%.o: keystore/%.c $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_KS_CFLAGS) -MMD -MP -MT $@ -MF $(@:.o=.d) -c -o $@.tmp $<
	objcopy --redefine-sym __sanitizer_cov_trace_pc=ks_fuzz_trace_pc \
		$@.tmp $@ && rm $@.tmp

$(BUILD)/obj/ks-fuzz/%.o: keystore/%.S
	mkdir -p $(@D)
	$(CC) -DKS_TEST_OPS -MMD -MP -c -o $@ $<

$(BUILD)/obj/ks-fuzz/ks_seccomp.o: $(KS_GEN)/ks_seccomp_filter.h

# No -z defs: the sanitizer runtimes and ks_fuzz_trace_pc are the
# harness's, bound when it loads the library.
$(FUZZ_LIB): $(FUZZ_KS_OBJS) $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(FUZZ_CC) -shared -nostartfiles -Wl,--exclude-libs,ALL -Wl,-z,now \
		-Wl,-z,relro -Wl,-z,noexecstack -Wl,-Bsymbolic-functions \
		-Wl,-soname,libkeystore-fuzz.so -o $@ $(FUZZ_KS_OBJS) \
		$(OPENSSL_PREFIX)/lib/libcrypto.a

$(BUILD)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

# the system's libcrypto (U) writes the key files the inputs point at
$(FUZZ_BIN): $(FUZZ_OBJS) $(FUZZ_LIB)
	mkdir -p $(@D)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $(FUZZ_OBJS) \
		-L$(abspath $(BUILD))/lib/fuzz -lkeystore-fuzz \
		-Wl,-rpath,$(abspath $(BUILD))/lib/fuzz -lcrypto \
		-Wl,--export-dynamic-symbol=ks_fuzz_trace_pc

ifneq ($(shell command -v $(FUZZ_CC) 2>/dev/null),)
PROJECT_TARGETS += $(FUZZ_BIN)
endif

# Runs natively on a CPU with pku, else in the QEMU guest; the working
# corpus and any crash land in build/fuzz/.  Fails if a crash was found.
fuzz: all $(FUZZ_BIN)
	@$(PYTHON) tests/fuzz/run_fuzz.py --build $(BUILD) \
		--seconds $(FUZZ_SECONDS)

.PHONY: fuzz
