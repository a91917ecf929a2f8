# cgpt - plain Makefile. Sources are found by wildcard: a new module is a new
# src/<layer>/<name>.c (+ .h), a new test is tests/<layer>/test_<name>.c.
#
#   make            build build/cgpt and build/libcgpt.a (says what is missing, if anything)
#   make deps       install the Debian packages building and running need
#   make run        install what running needs, build, run the main job (cgpt serve)
#   make test       install what the tests need, build, run every test (plain and ASan+UBSan)
#   make unit       build and run the unit tests only (no installs)
#   make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS

CC       ?= cc
BUILD    := build
CI       ?=
OPT      ?= -O2
WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(CI),true)
WARN     += -Werror
endif
PKGS     := jansson libpcre2-8 libedit openblas ompi-c libmicrohttpd libsodium sqlite3 icu-uc icu-i18n libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g $(WARN) -Isrc $(PKG_CFLAGS) -pthread -MMD -MP -fno-strict-aliasing
CFLAGS   ?=
CFLAGS   += $(OPT) $(CFLAGS_COMMON)
LDLIBS   := $(PKG_LIBS) -lm -lpthread
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path 'src/cli/*'))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(shell find tests -name 'test_*.c'))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))

# The page (web/): bundled by node at build time into a C table of files
# that only the binary links (scripts/build-web.sh, web/build.mjs).
WEB_SRC  := $(sort $(wildcard web/src/*)) web/build.mjs web/package.json web/package-lock.json
WEB_C    := $(BUILD)/gen/web_assets.c

# The moderation data (data/safety/): compiled into the library
# (scripts/build-safety-data.sh, src/safety/data.h).
SAFETY_SRC := data/safety/policy.txt data/safety/lexicon.txt data/safety/words.mjs \
              data/safety/package.json data/safety/package-lock.json
SAFETY_C   := $(BUILD)/gen/safety_data.c

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/safety_data.o
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/web_assets.o
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
TOOLS    := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

ALIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/gen/safety_data.o
ACLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/gen/web_assets.o
ATEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/asan/%.o)

.PHONY: bench-serve all run test unit unit-asan integration deps deps-test deps-fuzz fuzz fuzz-run \
        fuzz-smoke clean asan tools build-deps-missing

all: $(BUILD)/cgpt $(BUILD)/libcgpt.a

# Without the libraries the compiler would stop on a raw "mpi.h: No such
# file": say instead which packages are missing and how to get them. (The
# check runs only when pkg-config cannot find PKGS.)
ifneq ($(shell pkg-config --exists $(PKGS) 2>/dev/null && echo ok),ok)
DEPS_CHECK := build-deps-missing
endif
build-deps-missing:
	@scripts/install-deps.sh check; exit 1

$(BUILD)/obj/%.o: %.c | $(DEPS_CHECK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(WEB_C): $(WEB_SRC) scripts/build-web.sh
	scripts/build-web.sh $(BUILD)/web $@

$(SAFETY_C): $(SAFETY_SRC) scripts/build-safety-data.sh scripts/embed.sh
	scripts/build-safety-data.sh $@

$(BUILD)/obj/gen/safety_data.o: $(SAFETY_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/asan/gen/safety_data.o: $(SAFETY_C)
	@mkdir -p $(dir $@)
	$(CC) -O1 $(CFLAGS_COMMON) $(SAN) -c $< -o $@

$(BUILD)/obj/gen/web_assets.o: $(WEB_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/asan/gen/web_assets.o: $(WEB_C)
	@mkdir -p $(dir $@)
	$(CC) -O1 $(CFLAGS_COMMON) $(SAN) -c $< -o $@

$(BUILD)/asan/%.o: %.c | $(DEPS_CHECK)
	@mkdir -p $(dir $@)
	$(CC) -O1 $(CFLAGS_COMMON) $(SAN) -c $< -o $@

$(BUILD)/libcgpt.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/cgpt: $(CLI_OBJ) $(BUILD)/libcgpt.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libcgpt.a $(LDLIBS)

$(BUILD)/unit: $(TEST_OBJ) $(BUILD)/libcgpt.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libcgpt.a -lcriterion $(LDLIBS)

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libcgpt.a | $(DEPS_CHECK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libcgpt.a $(LDLIBS)

# The ASan+UBSan build: its own objects, library, binary and unit tests.
$(BUILD)/asan/libcgpt.a: $(ALIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/asan/cgpt: $(ACLI_OBJ) $(BUILD)/asan/libcgpt.a
	$(CC) -O1 $(CFLAGS_COMMON) $(SAN) -o $@ $(ACLI_OBJ) $(BUILD)/asan/libcgpt.a $(LDLIBS)

$(BUILD)/asan/unit: $(ATEST_OBJ) $(BUILD)/asan/libcgpt.a
	$(CC) -O1 $(CFLAGS_COMMON) $(SAN) -o $@ $(ATEST_OBJ) $(BUILD)/asan/libcgpt.a -lcriterion $(LDLIBS)

tools: $(TOOLS)
asan: $(BUILD)/asan/cgpt $(BUILD)/asan/unit

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

deps-fuzz:
	@scripts/install-deps.sh fuzz

# Criterion runs tests in parallel processes; -j2 matches the machine.
unit: $(BUILD)/unit
	$(BUILD)/unit -j2 --timeout 300

unit-asan: $(BUILD)/asan/unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/asan/unit -j2 --timeout 600

integration: all tools asan
	tests/run_integration.sh

test: deps-test deps-fuzz
	$(MAKE) -j2 all tools asan $(BUILD)/unit
	$(MAKE) unit
	$(MAKE) unit-asan
	/usr/bin/python3 scripts/corpus/build.py --tiny --out $(BUILD)/corpus-tiny
	$(MAKE) integration
	$(MAKE) -j2 fuzz-smoke
	@echo "make test: all suites passed"

# deps first, then a fresh make: pkg-config flags are read when a make starts,
# so the build must start after the packages are installed.
run: deps
	$(MAKE) all
	scripts/run.sh

# libFuzzer targets: fuzz/fuzz_<name>.c, linked with the library compiled
# once by clang with coverage instrumentation (fuzzer-no-link) and ASan+UBSan.
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -Isrc $(PKG_CFLAGS) -pthread \
                -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o) $(BUILD)/fuzz/obj/gen/safety_data.o

$(BUILD)/fuzz/obj/gen/safety_data.o: $(SAFETY_C)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@

$(BUILD)/fuzz/obj/%.o: %.c | $(DEPS_CHECK)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(BUILD)/fuzz/libcgpt.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(BUILD)/fuzz/libcgpt.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/fuzz/libcgpt.a $(LDLIBS)

fuzz: deps-test deps-fuzz
	$(MAKE) fuzz-run

fuzz-run: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  n=$$(basename $$f | sed 's/^fuzz_//'); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -artifact_prefix=fuzz/ \
	      $(BUILD)/fuzz/corpus-$$n fuzz/corpus/$$n || exit 1; \
	done

# Every fuzz target builds (clang) and runs its seed corpus once: keeps the
# targets and the clang build of the library from rotting between fuzz runs.
fuzz-smoke: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  n=$$(basename $$f | sed 's/^fuzz_//'); \
	  $$f -runs=0 fuzz/corpus/$$n >/dev/null 2>&1 || { echo "fuzz-smoke: $$n failed on its seeds"; exit 1; }; \
	done; echo "fuzz-smoke: $(words $(FUZZ_BIN)) targets ran their seed corpora"

clean:
	rm -rf $(BUILD)

-include $(FUZZ_LIB_OBJ:.o=.d) $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(ALIB_OBJ:.o=.d) $(ATEST_OBJ:.o=.d) $(ACLI_OBJ:.o=.d)

# Speed as ratios to limits measured in the same run (never a timed test):
# scripts/bench.py runs `cgpt bench` over the SmolLM-135M and ~1B Llama shapes
# in F16 ... Q4_0 and writes build/bench/bench.{json,md,svg}; PASS/FAIL per target.
.PHONY: bench
bench: deps-test
	$(MAKE) all tools
	/usr/bin/python3 scripts/bench.py

# ---- training data and the built-in model (issue 4) ----
# make corpus       the pretraining text + chat set from Debian packages (build/corpus)
# make corpus-tiny  a few-MB variant used by the tests (build/corpus-tiny)
# make model        corpus -> tokenizer -> pretrain -> sft -> models/cgpt-mini.gguf (resumable)
# make bench-train  training tokens/s and MFU vs PyTorch on the same shape, side by side
# make guard-model  the moderation classifier: cgpt-mini chat-tuned on a labelled
#                   set -> models/cgpt-guard.gguf (resumable; docs/SAFETY.md)
.PHONY: corpus corpus-tiny model bench-train guard-model
corpus: deps-test
	/usr/bin/python3 scripts/corpus/build.py --out $(BUILD)/corpus

corpus-tiny: deps-test
	/usr/bin/python3 scripts/corpus/build.py --tiny --out $(BUILD)/corpus-tiny

model: deps-test
	$(MAKE) all
	scripts/make_model.sh

guard-model: deps-test
	$(MAKE) all
	scripts/make_guard.sh

# The server under load (issue 5): scripts/bench_serve.sh drives `cgpt serve`
# on a 135M-shaped Q8_0 model with 1, 4, 16 and 64 streaming clients.
bench-serve: deps-test
	$(MAKE) all tools
	scripts/bench_serve.sh

bench-train: deps-test
	$(MAKE) all tools
	scripts/bench_train.sh
