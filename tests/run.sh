#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, build with warnings as
# errors, run the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, fuzz the
# decoders and the filter language for a bounded time, then run every test (unit and integration, real binaries on
# loopback) in a normal build.
#
# Environment: FLOWGATE_TESTDATA (default: ../shared/testdata beside the checkout),
# FLOWGATE_JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${FLOWGATE_JOBS:-$(nproc)}
testdata=${FLOWGATE_TESTDATA:-$root/../shared/testdata}

deploy/install-deps.sh

echo "== sanitizer build (ASan + UBSan): unit tests"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFLOWGATE_SANITIZE=ON \
  -DFLOWGATE_UNIT_TESTS_ONLY=ON -DFLOWGATE_WERROR=ON -DFLOWGATE_TESTDATA="$testdata" >/dev/null
cmake --build build-sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize -L unit --output-on-failure -j "$jobs"

echo "== fuzz: decoder + flow table (libFuzzer under ASan+UBSan, 30 s)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DFLOWGATE_FUZZ=ON \
  -DFLOWGATE_UNIT_TESTS_ONLY=ON -DFLOWGATE_WERROR=OFF -DFLOWGATE_TESTDATA="$testdata" >/dev/null
cmake --build build-fuzz -j "$jobs" --target flowgate_fuzz_decoder
mkdir -p build-fuzz/corpus  # new inputs go here, not into the seed corpus in the tree
build-fuzz/bin/flowgate_fuzz_decoder -max_total_time=30 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 build-fuzz/corpus tests/fuzz/corpus

echo "== fuzz: gateway envelope decoder (libFuzzer under ASan+UBSan, 20 s)"
cmake --build build-fuzz -j "$jobs" --target flowgate_fuzz_envelope
mkdir -p build-fuzz/envelope_corpus
build-fuzz/bin/flowgate_fuzz_envelope -max_total_time=20 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 build-fuzz/envelope_corpus tests/fuzz/envelope_corpus

echo "== fuzz: filter language (libFuzzer under ASan+UBSan, 20 s)"
cmake --build build-fuzz -j "$jobs" --target flowgate_fuzz_filter
mkdir -p build-fuzz/filter_corpus
build-fuzz/bin/flowgate_fuzz_filter -max_total_time=20 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 build-fuzz/filter_corpus tests/fuzz/filter_corpus

# Last, so that the suite's closing line is ctest's summary of every test.
echo "== release build: every test"
cmake -S . -B build -G Ninja -DFLOWGATE_WERROR=ON -DFLOWGATE_TESTDATA="$testdata" >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
