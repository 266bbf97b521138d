#!/usr/bin/env bash
# Installs every Debian 12 package that flowgate's build, tests and demo need
# (with --build-only: just what building the binaries needs).
# Idempotent: packages already present are left alone, and apt-get update runs only when
# something is missing. Nothing is downloaded any other way.
set -euo pipefail

# What building the binaries needs (CMake's configure step also wants GoogleTest).
BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libndpi-dev libpcap-dev librocksdb-dev libzmq3-dev cppzmq-dev
  nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev
  # zstd compression of agent batches (issue 4)
  libzstd-dev
  # daemon config files (--config, TOML)
  libtomlplusplus-dev
  # the --metrics endpoint (Prometheus over HTTP)
  libmicrohttpd-dev
  # the ClickHouse store talks to ClickHouse's HTTP interface
  libcurl4-openssl-dev
  # the gateway's allocator (FLOWGATE_JEMALLOC in CMakeLists.txt)
  libjemalloc-dev
)
# What the tests, the fuzzers, the demo and development add.
TEST_PACKAGES=(
  git clang-format
  # the libFuzzer target (tests/fuzz)
  clang-14 libclang-rt-14-dev
  # tests and demo: real clients of the JSON socket, live-capture tools
  netcat-openbsd jq tcpreplay iproute2 libndpi-bin
  # the systemd units are checked with systemd-analyze verify
  systemd
  # the ClickHouse store's tests and benchmark start local ClickHouse servers
  clickhouse-server clickhouse-client
)
PACKAGES=("${BUILD_PACKAGES[@]}")
# --build-only: what a container image's build stage needs, nothing for tests.
if [ "${1:-}" != "--build-only" ]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (run as root to install): ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
