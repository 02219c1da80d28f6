#!/usr/bin/env bash
# Installs the Debian packages cppops needs to build, test and benchmark. Idempotent: installs only what is
# missing, so the demo and test commands can call it every time.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libcli11-dev libfmt-dev nlohmann-json3-dev libdw-dev libelf-dev zlib1g-dev libunwind-dev catch2
  mandoc elfutils binutils gdb procps util-linux
  golang-go libxml2-utils
  libgoogle-perftools-dev
  prometheus tmux
  libjemalloc2 libtcmalloc-minimal4 heaptrack valgrind
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
