# Parley — plain GNU Makefile. Sources are found by wildcard: add a file, not a rule.
#   make            release build: bin/parley-proxy, bin/parley-gateway, bin/parleyctl
#   make test       install what is missing, ASan+UBSan build, unit + fuzz + system tests
#   make demo       install what is missing, build, run the demo on loopback
#   make bench      release build, run the benchmarks (figures, not pass/fail)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each
#   make format     apply .clang-format

BUILD    ?= build/release
BINDIR   ?= bin
SANITIZE ?=
FUZZ     ?=
PYTHON   ?= /usr/bin/python3
FUZZ_SECONDS ?= 20

ifeq ($(FUZZ),1)
CC       := clang
endif
CC       ?= cc

PKGS     := libuv libcares libprotobuf-c openssl expat inih sqlite3 libidn libosip2 libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 \
            -Werror=implicit-function-declaration -Werror
OPT      ?= -O2 -g
CFLAGS   += -std=c17 -D_GNU_SOURCE $(OPT) $(WARN) -MMD -MP -fno-omit-frame-pointer \
            -I. -Icommon -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm

# The daemons allocate with mimalloc (Debian's libmimalloc2.0, linked first so it replaces
# malloc for libosip2, expat and OpenSSL too): a SIP message parsed by libosip2 makes and
# frees about a hundred small blocks, and glibc's malloc spent 35-40 % of the gateway's CPU
# on them in the presence bench (issue #7). Sanitizer and fuzz builds keep the allocator the
# sanitizer brings; MALLOC_LIB= builds with glibc's.
MALLOC_LIB ?= -lmimalloc
ifneq ($(SANITIZE)$(FUZZ),)
MALLOC_LIB :=
endif

ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
ifeq ($(FUZZ),1)
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -DPARLEY_FUZZ=1
LDFLAGS  += -fsanitize=address,undefined
endif

# Debian's expat 2.5.0 carries XML_SetReparseDeferralEnabled as a backport while its
# version macros still say 2.5.0: detect the function by linking, never by version.
HAVE_REPARSE := $(shell printf '#include <expat.h>\nint main(void){XML_Parser p=XML_ParserCreate(0);XML_SetReparseDeferralEnabled(p,XML_FALSE);return 0;}' \
                | $(CC) -x c - -o /dev/null -lexpat >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_REPARSE),1)
CFLAGS   += -DHAVE_XML_SETREPARSEDEFERRALENABLED=1
endif

PROTOS        := $(wildcard proto/*.proto)
PROTO_C       := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H       := $(PROTO_C:.c=.h)
PROTO_PY      := $(patsubst proto/%.proto,$(BUILD)/py/%_pb2.py,$(PROTOS))

COMMON_SRC    := $(wildcard common/*.c)
PROXY_SRC     := $(filter-out proxy/main.c,$(wildcard proxy/*.c))
GATEWAY_SRC   := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
CTL_SRC       := $(wildcard common/ctl/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBPARLEY  := $(BUILD)/libparley.a
LIBPROXY   := $(BUILD)/libproxy.a
LIBGATEWAY := $(BUILD)/libgateway.a
LIBS_ALL   := $(LIBGATEWAY) $(LIBPROXY) $(LIBPARLEY)

UNIT_SRC   := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
BENCH_SRC  := $(wildcard tests/bench/*.c)
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/benchbin/%,$(BENCH_SRC))

BINS := $(BINDIR)/parley-proxy $(BINDIR)/parley-gateway
ifneq ($(CTL_SRC),)
BINS += $(BINDIR)/parleyctl
endif

# Generated sources are kept, not treated as intermediates to delete.
.SECONDARY: $(PROTO_C) $(PROTO_H)

.PHONY: all deps units run-units fuzz run-fuzz test system bench demo format clean proto-py
.DEFAULT_GOAL := all

all: $(BINS) proto-py

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Iproto $<

$(BUILD)/py/%_pb2.py: proto/%.proto
	@mkdir -p $(BUILD)/py
	protoc --python_out=$(BUILD)/py -Iproto $<

proto-py: $(PROTO_PY)

# Every object may include generated headers.
$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

$(LIBPARLEY): $(call obj,$(COMMON_SRC)) $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
	@rm -f $@
	ar rcs $@ $^

$(LIBPROXY): $(call obj,$(PROXY_SRC))
	@rm -f $@
	ar rcs $@ $^ $(if $^,,)

$(LIBGATEWAY): $(call obj,$(GATEWAY_SRC))
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/parley-proxy: $(call obj,proxy/main.c) $(LIBPROXY) $(LIBPARLEY)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(MALLOC_LIB) $(LDLIBS)

$(BINDIR)/parley-gateway: $(call obj,gateway/main.c) $(LIBGATEWAY) $(LIBPARLEY)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(MALLOC_LIB) $(LDLIBS)

$(BINDIR)/parleyctl: $(call obj,$(CTL_SRC)) $(LIBPARLEY)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproxy -Igateway $(LDFLAGS) -o $@ $< $(LIBS_ALL) $(LDLIBS) -lcmocka

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproxy -Igateway -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIBS_ALL) $(LDLIBS)

$(BUILD)/benchbin/%: tests/bench/%.c $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproxy -Igateway $(LDFLAGS) -o $@ $< $(LIBS_ALL) $(LDLIBS)

units: $(UNIT_BIN)

run-units: units
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS on its corpus.
fuzz:
	$(MAKE) FUZZ=1 BUILD=build/fuzz BINDIR=build/fuzz/bin fuzz-bins
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); c=tests/fuzz/corpus/$${n#fuzz_}; \
	  mkdir -p build/fuzz/work/$$n; echo "== fuzz $$n ($(FUZZ_SECONDS)s)"; \
	  build/fuzz/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    -close_fd_mask=3 build/fuzz/work/$$n $$c || exit 1; done

fuzz-bins: $(FUZZ_BIN)

deps:
	@bash deploy/install-deps.sh

SANBUILD := BUILD=build/san BINDIR=build/san/bin SANITIZE=address,undefined OPT="-O1 -g"

# make test runs each fuzzer briefly (FUZZ_TEST_SECONDS); make fuzz is the longer run.
FUZZ_TEST_SECONDS ?= 10

test: deps
	$(MAKE) $(SANBUILD) all units build/san/benchbin/sip_harness
	$(MAKE) $(SANBUILD) run-units
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
	$(MAKE) $(SANBUILD) system

system:
	PARLEY_BIN=$(abspath $(BINDIR)) PARLEY_PY=$(abspath $(BUILD)/py) \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/system $(PYTEST_ARGS)

bench: all $(BENCH_BIN)
	PARLEY_BIN=$(abspath $(BINDIR)) PARLEY_PY=$(abspath $(BUILD)/py) PARLEY_BENCHBIN=$(abspath $(BUILD)/benchbin) \
	  $(PYTHON) tests/bench/run.py $(BENCH_ARGS)

demo: deps all
	PARLEY_BIN=$(abspath $(BINDIR)) PARLEY_PY=$(abspath $(BUILD)/py) $(PYTHON) deploy/demo.py

# make lab: Parley in three network namespaces behind deploy/nftables, and what that proves.
lab: deps all
	PARLEY_BIN=$(abspath $(BINDIR)) PARLEY_PY=$(abspath $(BUILD)/py) $(PYTHON) deploy/lab.py

# make install [PREFIX=/usr/local] [DESTDIR=]: FHS paths. Daemons in $(PREFIX)/sbin, parleyctl
# in $(PREFIX)/bin, configs in /etc/parley (samples always; a config only if there is none),
# systemd units in $(PREFIX)/lib/systemd/system, state in /var/lib/parley, docs, zone snippets
# and mkcerts.sh in $(PREFIX)/share. Creates the parley user (systemd-sysusers) when
# installing into / as root.
PREFIX      ?= /usr/local
DESTDIR     ?=
SBINDIR     ?= $(PREFIX)/sbin
USRBINDIR   ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc/parley
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR      ?= $(PREFIX)/share/doc/parley
DATADIR     ?= $(PREFIX)/share/parley
STATEDIR    ?= /var/lib/parley
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(DOCDIR)/dns $(DESTDIR)$(DATADIR) $(DESTDIR)$(SYSCONFDIR)/nftables
	install -d -m 750 $(DESTDIR)$(SYSCONFDIR)/certs $(DESTDIR)$(STATEDIR)
	install -m 755 $(BINDIR)/parley-proxy $(BINDIR)/parley-gateway $(DESTDIR)$(SBINDIR)/
	if [ -x $(BINDIR)/parleyctl ]; then install -d $(DESTDIR)$(USRBINDIR) && \
	  install -m 755 $(BINDIR)/parleyctl $(DESTDIR)$(USRBINDIR)/; fi
	for c in proxy gateway; do \
	  install -m 640 deploy/conf/$$c.conf $(DESTDIR)$(SYSCONFDIR)/$$c.conf.sample; \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/$$c.conf ] || \
	    install -m 640 deploy/conf/$$c.conf $(DESTDIR)$(SYSCONFDIR)/$$c.conf; done
	for r in edge internal; do \
	  install -m 644 deploy/nftables/$$r.nft deploy/nftables/$$r-load.nft \
	    $(DESTDIR)$(SYSCONFDIR)/nftables/; \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/nftables/$$r-vars.nft ] || \
	    install -m 644 deploy/nftables/$$r-vars.nft $(DESTDIR)$(SYSCONFDIR)/nftables/; done
	for u in parley-proxy.service parley-proxy.socket parley-gateway.service; do \
	  sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' deploy/systemd/$$u \
	    > $(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 644 deploy/systemd/parley.sysusers $(DESTDIR)$(SYSUSERSDIR)/parley.conf
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 644 deploy/dns/*.zone $(DESTDIR)$(DOCDIR)/dns/
	install -m 755 deploy/mkcerts.sh $(DESTDIR)$(DATADIR)/
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers $(SYSUSERSDIR)/parley.conf && \
	  chown -R root:parley $(SYSCONFDIR) && chown parley:parley $(STATEDIR); fi
	@echo "installed; next: certificates in $(SYSCONFDIR)/certs (root:parley, keys 0640), edit"
	@echo "$(SYSCONFDIR)/*.conf and nftables/*-vars.nft, then: systemctl daemon-reload &&"
	@echo "systemctl enable --now parley-proxy.socket parley-proxy (or parley-gateway)"

.PHONY: lab install

format:
	clang-format -i $(wildcard common/*.[ch] proxy/*.[ch] gateway/*.[ch] tests/unit/*/*.c tests/fuzz/*.c tests/bench/*.c)

clean:
	rm -rf build bin

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
