# openssl-patch/: the keystore provider (U).  To be included by the
# top-level Makefile after keystore/build.mk:
#
#   include openssl-patch/build.mk
#
# Two builds of the same sources (openssl-patch/provider/):
#   build/lib/libkeystore_provider.a   the provider built in: a program
#       (the tests, NGINX) registers ks_provider_init() with
#       OSSL_PROVIDER_add_builtin() and links libkeystore.so;
#   build/lib/ossl-modules/keystore.so the loadable module for openssl.cnf
#       (OSSL_provider_init), linked against libkeystore.so only: -z defs
#       proves it needs nothing from libcrypto, so it loads into a program
#       with a static libcrypto (build/bin/openssl) as well.
# The provider uses only OpenSSL's headers (the pinned tree's).

KSPROV_SRCS := $(wildcard openssl-patch/provider/*.c)
KSPROV_CFLAGS := $(CFLAGS_PROJECT) -fvisibility=hidden \
	-I$(OPENSSL_PREFIX)/include

$(BUILD)/obj/ksprov/%.o: openssl-patch/provider/%.c $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(CC) $(KSPROV_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/ksprov-mod/%.o: openssl-patch/provider/%.c $(OPENSSL_STAMP)
	mkdir -p $(@D)
	$(CC) $(KSPROV_CFLAGS) -DKSP_MODULE -MMD -MP -c -o $@ $<

KSPROV_OBJS := $(KSPROV_SRCS:openssl-patch/provider/%.c=$(BUILD)/obj/ksprov/%.o)
KSPROV_MOD_OBJS := \
	$(KSPROV_SRCS:openssl-patch/provider/%.c=$(BUILD)/obj/ksprov-mod/%.o)

# rebuilt from scratch, so that an object whose source is gone never lingers
$(BUILD)/lib/libkeystore_provider.a: $(KSPROV_OBJS)
	mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/lib/ossl-modules/keystore.so: $(KSPROV_MOD_OBJS) \
		$(BUILD)/lib/libkeystore.so
	mkdir -p $(@D)
	$(CC) -shared -Wl,-z,defs -Wl,-z,now -Wl,-z,relro -Wl,-z,noexecstack \
		-o $@ $(KSPROV_MOD_OBJS) -L$(abspath $(BUILD))/lib -lkeystore \
		-Wl,-rpath,'$$ORIGIN/..'

PROJECT_TARGETS += $(BUILD)/lib/libkeystore_provider.a \
	$(BUILD)/lib/ossl-modules/keystore.so
