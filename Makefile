# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# Thin wrapper: CMake does the building, ctest the testing.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build run test asan valgrind fuzz fuzz-build fuzz-smoke clean \
	patched-broker mosquitto-tests

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	@scripts/deps.sh
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	scripts/run.sh

# mosquitto 2.0.11 from Debian's source with broker-patches/ applied, in
# $(BUILD)/mosquitto-patched/ (~10 s; rebuilt when a patch changes). The
# integration tests labelled "patched" run against it (docs/BROKER-PATCHES.md).
PATCHED_DEPS := broker-patches/build.sh broker-patches/series $(wildcard broker-patches/*.patch broker-patches/test-suite/*.patch)

%/mosquitto-patched/mosquitto: $(PATCHED_DEPS)
	@scripts/deps.sh
	broker-patches/build.sh $*

patched-broker: $(BUILD)/mosquitto-patched/mosquitto

# The patched broker itself under ASan+UBSan (make asan runs test_ack_defer,
# the test of 0004's code in the broker, against it).
%/mosquitto-asan/mosquitto: $(PATCHED_DEPS)
	@scripts/deps.sh
	broker-patches/build.sh --asan $*

# mosquitto's own test/broker suite (~3 min) against the stock and the
# patched build of the same source: the two summaries must agree.
mosquitto-tests:
	@scripts/deps.sh mosquitto-tests
	broker-patches/run-mosquitto-tests.sh --stock $(BUILD)
	broker-patches/run-mosquitto-tests.sh $(BUILD)

test: build patched-broker
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE valgrind

# The unit tests, and integration tests with the broker (plugin and store)
# in it, under valgrind's memcheck.
valgrind: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L valgrind

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	@scripts/deps.sh
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCHAT_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	$(MAKE) --no-print-directory build-asan/mosquitto-patched/mosquitto
	cd build-asan && ctest --output-on-failure -j $(JOBS) -LE patched
	cd build-asan && ctest --output-on-failure -j $(JOBS) -L patched -R '$(ASAN_PATCHED)'
	$(MAKE) --no-print-directory build-asan/mosquitto-asan/mosquitto
	CHAT_BUILD_DIR=$(CURDIR)/build-asan CHAT_BROKER=$(CURDIR)/build-asan/mosquitto-asan/mosquitto \
	  CHAT_EXPECT_PATCHED=1 ASAN_OPTIONS=detect_leaks=1 /usr/bin/python3 -u tests/integration/test_ack_defer.py

# Of the reruns against the patched broker, ASan takes those that reach the
# plugin's handling of its extra events (the rest run in make test).
ASAN_PATCHED := integration-patched\.test_(broker_events|offline|receipts|dm|groups|group_commit)$$

# libFuzzer targets (clang, ASan+UBSan) in build-fuzz/, each run FUZZ_SECONDS
# from a copy of its seed corpus; fuzz-smoke replays the committed corpora and
# regressions, then runs each target a few seconds (docs/FUZZING.md).
FUZZ_SECONDS ?= 60

fuzz-build:
	@scripts/deps.sh fuzz
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCHAT_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run

fuzz-smoke: fuzz-build
	FUZZ_SECONDS=5 scripts/fuzz.sh smoke

clean:
	rm -rf $(BUILD) build-asan
