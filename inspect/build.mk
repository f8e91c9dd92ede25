# inspect/: included by the top-level Makefile.
#
# libinspect.a: the scanner (inspect.h), for the CLI now and the NGINX
# module's workers later.  build/bin/mpk-inspect: the CLI, with --bench.
# Zydis comes from Debian's libzydis-dev, which ships no pkg-config file:
# -lZydis is enough (libZydis.so carries its Zycore).

INSPECT_CLI_SRCS := inspect/mpk_inspect.c inspect/mpk_inspect_bench.c
INSPECT_LIB_SRCS := $(filter-out $(INSPECT_CLI_SRCS),$(wildcard inspect/*.c))
INSPECT_LIB_OBJS := $(INSPECT_LIB_SRCS:%.c=$(BUILD)/obj/%.o)
INSPECT_LDLIBS := -lZydis

# rebuilt from scratch, so that an object whose source is gone never lingers
$(BUILD)/lib/libinspect.a: $(INSPECT_LIB_OBJS)
	mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/mpk-inspect: $(INSPECT_CLI_SRCS:%.c=$(BUILD)/obj/%.o) \
		$(BUILD)/lib/libinspect.a
	mkdir -p $(@D)
	$(CC) -o $@ $^ $(INSPECT_LDLIBS)

PROJECT_TARGETS += $(BUILD)/lib/libinspect.a $(BUILD)/bin/mpk-inspect

# Unit tests (tests/unit/test_inspect*.c; the generic rule is in
# tests/build.mk): against libinspect.a, with the hand-assembled fixtures.
INSPECT_UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%, \
	$(wildcard tests/unit/test_inspect*.c))
$(INSPECT_UNIT_TESTS): $(BUILD)/lib/libinspect.a \
	$(BUILD)/obj/tests/unit/inspect_fixtures.o
$(INSPECT_UNIT_TESTS): UNIT_LDLIBS = $(INSPECT_LDLIBS)

$(BUILD)/obj/tests/unit/inspect_fixtures.o: tests/unit/inspect_fixtures.S 		tests/unit/inspect_run_blocks.inc
	mkdir -p $(@D)
	$(CC) -c -o $@ $<

# The gadget test (tests/unit/test_rewrite.c, an MPK test: MPK_UNIT_TESTS
# in tests/build.mk): against the keystore's test library, libinspect.a,
# and a helper library that the program binds lazily (-z lazy), so that
# ld.so's lazy-binding XRSTORs run after the rewrite.
REWRITE_LAZY_SO := $(BUILD)/tests/unit/librewrite_lazy.so
$(REWRITE_LAZY_SO): tests/unit/rewrite_lazy.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -shared -o $@ $<
$(BUILD)/obj/tests/unit/test_rewrite.o: CFLAGS_PROJECT += -DKS_TEST_OPS
$(BUILD)/tests/unit/test_rewrite: $(BUILD)/lib/libinspect.a \
	$(BUILD)/lib/libkeystore-test.so $(REWRITE_LAZY_SO)
$(BUILD)/tests/unit/test_rewrite: UNIT_LDLIBS = -L$(LIB_DIR) -lkeystore-test \
	-Wl,-rpath,$(LIB_DIR) -L$(abspath $(BUILD))/tests/unit -lrewrite_lazy \
	-Wl,-rpath,$(abspath $(BUILD))/tests/unit $(INSPECT_LDLIBS) -Wl,-z,lazy

# The other classes under MPK (tests/unit/test_rewrite_classes.c, an MPK
# test: MPK_UNIT_TESTS in tests/build.mk): against the keystore's test
# library, libinspect.a and the fixtures (every class in its own .text).
$(BUILD)/obj/tests/unit/test_rewrite_classes.o: CFLAGS_PROJECT += -DKS_TEST_OPS
$(BUILD)/tests/unit/test_rewrite_classes: $(BUILD)/lib/libinspect.a \
	$(BUILD)/lib/libkeystore-test.so \
	$(BUILD)/obj/tests/unit/inspect_fixtures.o
$(BUILD)/tests/unit/test_rewrite_classes: UNIT_LDLIBS = -L$(LIB_DIR) \
	-lkeystore-test -Wl,-rpath,$(LIB_DIR) $(INSPECT_LDLIBS)
