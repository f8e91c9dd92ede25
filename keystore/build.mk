# keystore/: included by the top-level Makefile.

KEYSTORE_SRCS := keystore/ks_platform.c
KEYSTORE_OBJS := $(KEYSTORE_SRCS:%.c=$(BUILD)/obj/%.o)

$(BUILD)/lib/libkeystore_platform.a: $(KEYSTORE_OBJS)
	mkdir -p $(@D)
	$(AR) rcs $@ $^

PROJECT_TARGETS += $(BUILD)/lib/libkeystore_platform.a
