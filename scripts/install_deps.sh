#!/usr/bin/env bash
# Installs the Debian 12 packages Ferry builds and tests with. Idempotent; run as root
# (or with sudo available). Skips apt entirely when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git curl clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libcpp-httplib-dev
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libopenblas-dev libpcre2-dev libunistring-dev libxxhash-dev prometheus-cpp-dev libssl-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libre2-dev
  etcd-server etcd-client iperf3 fio iproute2 jq
  libucx-dev ucx-utils
  python3 python3-numpy python3-regex python3-pytest python3-dev pybind11-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install_deps: missing packages ${missing[*]}; run as root (no sudo here)" >&2
    exit 1
  fi
  SUDO="sudo"
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
