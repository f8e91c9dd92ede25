# tests/: C unit tests (cmocka), included by the top-level Makefile.
# Each tests/unit/test_NAME.c becomes build/tests/unit/test_NAME.

UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)

$(BUILD)/tests/unit/test_platform: $(BUILD)/obj/tests/unit/test_platform.o \
		$(BUILD)/lib/libkeystore_platform.a
	mkdir -p $(@D)
	$(CC) -o $@ $^ -lcmocka
