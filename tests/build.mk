# tests/: C unit tests (cmocka), included by the top-level Makefile.
# Each tests/unit/test_NAME.c becomes build/tests/unit/test_NAME, linked
# from its object and the prerequisites listed here.  Tests that include
# the .c file they test (to reach its static state) need nothing else.

UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)

$(BUILD)/tests/unit/test_platform: $(BUILD)/lib/libkeystore_platform.a

$(UNIT_TESTS): $(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o
	mkdir -p $(@D)
	$(CC) -o $@ $(filter %.o %.a,$^) -lcmocka -pthread
