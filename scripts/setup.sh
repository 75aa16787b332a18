#!/usr/bin/env bash
# Installs every Debian 12 package RedCloud needs to build, run and test.
# Safe to run again: packages already installed are skipped. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # toolchain (clang-14 for the sanitizer and fuzzing build)
  build-essential cmake ninja-build ccache pkg-config git
  clang-14 libclang-rt-14-dev llvm-14
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcli11-dev libsodium-dev libssl-dev libedit-dev libgtest-dev libgmock-dev
  libbenchmark-dev libboost-dev libboost-system-dev
  libgoogle-perftools-dev  # tcmalloc, the daemons' allocator
  # tests and benchmarks
  python3 python3-pytest python3-requests python3-grpcio curl procps openssl
  iproute2 dnsmasq-base nftables iptables
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
