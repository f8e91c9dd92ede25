# mpk-tls — top-level build.
#
#   make          build everything into build/ (runs ./configure if needed)
#   make run      serve https://127.0.0.1:8443/ with build/sbin/nginx
#   make test     unit + integration tests; ends with "N passed, N failed"
#   make bench    keystore-bench: ERIM's switch-cost table and our gate
#   make clean    remove the project's own objects (keeps OpenSSL and sources)
#   make distclean  remove build/ entirely
#
# OpenSSL is built once per configure: NGINX's --with-openssl recipe is run
# here, and NGINX's own rule for it is marked up to date, so that editing a
# project file or re-running NGINX's configure never rebuilds OpenSSL.

BUILD := build
JOBS ?= $(shell nproc)
PYTHON := /usr/bin/python3

CFLAGS_PROJECT := -std=gnu11 -O2 -g -Wall -Wextra -Werror -fPIC

all:

# configure writes build/config.mk; make re-runs it when configure itself or
# one of our patch series changed (it is idempotent and fast).
ifneq ($(MAKECMDGOALS),distclean)
include $(BUILD)/config.mk
endif
$(BUILD)/config.mk: configure $(wildcard openssl-patch/patches/*.patch) \
		$(wildcard nginx-module/patches/*.patch)
	./configure

OPENSSL_PREFIX := $(OPENSSL_SRC)/.openssl
OPENSSL_STAMP := $(OPENSSL_PREFIX)/include/openssl/ssl.h
NGINX_OBJS := $(abspath $(BUILD))/nginx

# ---- OpenSSL (patched, static): libssl/libcrypto for NGINX and the CLI ----

# The same options NGINX's auto/lib/openssl/make passes, plus ours: no
# tests or docs (not needed to serve), position-independent code (the
# keystore links a private copy of libcrypto into a shared library).
# install_ssldirs adds the default openssl.cnf that the CLI reads.
OPENSSL_OPT := no-tests no-docs -fPIC

$(OPENSSL_STAMP): $(OPENSSL_SRC)/.mpktls-stamp
	cd $(OPENSSL_SRC) \
	&& if [ -f Makefile ]; then $(MAKE) clean >/dev/null; fi \
	&& ./config --prefix=$(OPENSSL_PREFIX) no-shared no-threads \
		$(OPENSSL_OPT) >$(abspath $(BUILD))/openssl-config.log 2>&1 \
	&& $(MAKE) -j$(JOBS) >$(abspath $(BUILD))/openssl-build.log 2>&1 \
	&& $(MAKE) install_sw LIBDIR=lib >/dev/null 2>&1 \
	&& $(MAKE) install_ssldirs >/dev/null 2>&1 \
	|| { tail -40 $(abspath $(BUILD))/openssl-build.log; exit 1; }
	touch $@

$(BUILD)/bin/openssl: $(OPENSSL_STAMP)
	mkdir -p $(@D)
	cp $(OPENSSL_PREFIX)/bin/openssl $@

# ---- NGINX with the patched OpenSSL and our module, statically -----------

NGINX_CONFIGURE_ARGS := \
	--prefix=$(abspath $(BUILD)) \
	--builddir=$(NGINX_OBJS) \
	--with-openssl=$(OPENSSL_SRC) \
	--with-openssl-opt="$(OPENSSL_OPT)" \
	--with-threads \
	--with-http_ssl_module \
	--with-http_v2_module \
	--with-http_v3_module \
	--with-http_stub_status_module \
	--with-stream \
	--with-stream_ssl_module \
	--add-module=$(abspath nginx-module)

# The arguments are kept in a file that changes only when they do, so that
# NGINX is configured again exactly when needed.
$(NGINX_OBJS)/configure-args: FORCE
	@mkdir -p $(@D)
	@echo '$(NGINX_CONFIGURE_ARGS)' > $@.new
	@cmp -s $@.new $@ && rm $@.new || mv $@.new $@

# OpenSSL is order-only here: the touch below makes it newer than NGINX's
# Makefile, and a rebuilt OpenSSL needs only a rebuilt NGINX (next rule).
$(NGINX_OBJS)/Makefile: $(NGINX_OBJS)/configure-args nginx-module/config \
		$(NGINX_SRC)/.mpktls-stamp | $(OPENSSL_STAMP)
	cd $(NGINX_SRC) && MPKTLS_BUILD=$(abspath $(BUILD)) \
		./configure $(NGINX_CONFIGURE_ARGS) >$(NGINX_OBJS)/configure.log
	# NGINX's generated rule would rebuild OpenSSL because its Makefile is
	# newer now; OpenSSL was built above with the same recipe, so mark it.
	touch $(OPENSSL_STAMP)

NGINX_MODULE_SRCS := $(wildcard nginx-module/*.c nginx-module/*.h)

# What the module links (nginx-module/config); NGINX's Makefile does not
# know them, so a newer one removes the binary to relink it.
NGINX_MODULE_LIBS := $(BUILD)/lib/libkeystore.so \
	$(BUILD)/lib/libkeystore_provider.a $(BUILD)/lib/libkeystore_platform.a \
	$(BUILD)/lib/libinspect.a

$(BUILD)/sbin/nginx: $(NGINX_OBJS)/Makefile $(OPENSSL_STAMP) \
		$(NGINX_MODULE_SRCS) $(NGINX_MODULE_LIBS) \
		$(wildcard keystore/*.h inspect/*.h openssl-patch/provider/*.h)
	rm -f $(NGINX_OBJS)/nginx
	$(MAKE) -j$(JOBS) -C $(NGINX_SRC) -f $(NGINX_OBJS)/Makefile \
		>$(NGINX_OBJS)/build.log || { tail -40 $(NGINX_OBJS)/build.log; exit 1; }
	mkdir -p $(@D)
	cp $(NGINX_OBJS)/nginx $@

# ---- the project's own C code --------------------------------------------

$(BUILD)/obj/%.o: %.c
	mkdir -p $(@D)
	$(CC) $(CFLAGS_PROJECT) -MMD -MP -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

include keystore/build.mk
include openssl-patch/build.mk
include inspect/build.mk
include tests/build.mk
include tests/fuzz/build.mk

all: $(BUILD)/sbin/nginx $(BUILD)/bin/openssl $(PROJECT_TARGETS)

# ---- running and testing --------------------------------------------------

RUN_DIR := $(BUILD)/run

# The self-signed ECDSA P-256 certificate of `make run`, made once.
$(RUN_DIR)/cert.pem: | $(BUILD)/bin/openssl
	mkdir -p $(@D)
	$(BUILD)/bin/openssl req -x509 -newkey ec \
		-pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
		-keyout $(RUN_DIR)/key.pem -out $@ -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

# Copies the default configuration and site (nginx-module/default) into
# build/run/ and serves them in the foreground, with "keystore on".  On a
# CPU without protection keys NGINX runs in the QEMU guest that emulates
# them (as the MPK tests do), with 127.0.0.1:8443 forwarded into it.
RUN_NGINX = $(abspath $(BUILD))/sbin/nginx -p $(abspath $(RUN_DIR))/ \
	-c nginx.conf -e stderr -g 'daemon off;'
MPK_CPU := $(shell grep -qw pku /proc/cpuinfo && grep -qw ospke /proc/cpuinfo \
	&& echo yes)

run: all $(RUN_DIR)/cert.pem
	mkdir -p $(RUN_DIR)/logs
	chmod 0755 $(RUN_DIR) $(RUN_DIR)/logs
	sed -e 's|@RUN_DIR@|$(abspath $(RUN_DIR))|' \
		-e 's|@LISTEN@|$(if $(MPK_CPU),127.0.0.1,0.0.0.0)|' \
		nginx-module/default/nginx.conf > $(RUN_DIR)/nginx.conf
	rm -rf $(RUN_DIR)/html && cp -r nginx-module/default/html $(RUN_DIR)/html
	chmod -R a+rX $(RUN_DIR)/html $(RUN_DIR)/cert.pem
	@echo
	@echo "Serving https://127.0.0.1:8443/ with the keystore (self-signed:"
	@echo "  curl -k, or curl --cacert $(RUN_DIR)/cert.pem https://localhost:8443/)."
	@echo "The serving worker's keystore: https://127.0.0.1:8443/keystore_status"
ifeq ($(MPK_CPU),yes)
	@echo "Stop with Ctrl-C, or from another shell:"
	@echo "  $(BUILD)/sbin/nginx -p $(RUN_DIR)/ -c nginx.conf -s stop"
	@echo
	$(RUN_NGINX)
else
	@echo "This CPU has no protection keys: NGINX runs in a QEMU guest that"
	@echo "emulates them (slowly: behaviour, not speed).  Stop with Ctrl-C."
	@echo
	$(PYTHON) tests/lib/qemu_guest.py --forward 8443:8443 --follow \
		--out $(abspath $(RUN_DIR))/logs --timeout 86400 -- $(RUN_NGINX)
endif

test: all $(UNIT_TESTS) $(ATTACK_LIB)
	@$(PYTHON) tests/run_all.py --build $(BUILD) $(UNIT_TESTS) \
		--mpk $(MPK_UNIT_TESTS)

# Benchmarks print figures (never asserted): natively with MPK, else in the
# QEMU guest, where they are labelled as emulated.
bench: all
	@$(PYTHON) tests/run_all.py --build $(BUILD) --bench $(BUILD)/bin/keystore-bench

clean:
	rm -rf $(BUILD)/obj $(BUILD)/tests $(BUILD)/lib $(BUILD)/sbin $(BUILD)/bin
	if [ -f $(NGINX_OBJS)/Makefile ]; then rm -rf $(NGINX_OBJS)/src $(NGINX_OBJS)/nginx; fi

distclean:
	rm -rf $(BUILD)

FORCE:
.PHONY: all run test bench clean distclean FORCE
