#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs a consumer against it twice: once through
# find_package(cppops) with CMake, once through pkg-config with a plain compiler call.
set -euo pipefail
build_dir=$1
consumer=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
for f in bin/cppops include/cppops/agent.h share/man/man1/cppops.1 share/man/man3/cppops-agent.3 \
         share/man/man7/cppops-protocol.7; do
  [ -e "$prefix/$f" ] || { echo "missing from the install: $f"; exit 1; }
done
ls "$prefix"/lib*/libcppops_agent.so "$prefix"/lib*/libcppops_agent.a >/dev/null

cmake -S "$consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer-build" >/dev/null
socket_dir=$work/sockets
mkdir -m 0700 "$socket_dir"
out=$(CPPOPS_SOCKET_DIR=$socket_dir LD_LIBRARY_PATH=$(echo "$prefix"/lib*) "$work/consumer-build/consumer")
echo "find_package consumer: $out"
case "$out" in *"started 0"*"$socket_dir/"*) ;; *) echo "the CMake consumer did not start the agent"; exit 1;; esac

pcdir=$(echo "$prefix"/lib*/pkgconfig)
cc -o "$work/pc-consumer" "$consumer/main.c" $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs cppops-agent)
out=$(CPPOPS_SOCKET_DIR=$socket_dir LD_LIBRARY_PATH=$(echo "$prefix"/lib*) "$work/pc-consumer")
echo "pkg-config consumer: $out"
case "$out" in *"started 0"*) ;; *) echo "the pkg-config consumer did not start the agent"; exit 1;; esac
