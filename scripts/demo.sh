#!/usr/bin/env bash
# The main job: set up, build, start a demo C++ service with the agent preloaded, and inspect it with cppops.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build >/dev/null

export PATH=$root/build/cmd:$PATH
export CPPOPS_SOCKET_DIR=${CPPOPS_SOCKET_DIR:-$(mktemp -d /tmp/cppopsdemo-XXXXXX)}
LD_PRELOAD=$root/build/agent/libcppops_agent.so build/tests/targets/demo_service > /dev/null &
pid=$!
# The service dies of the SIGTERM (status 143), which must not become the demo's own exit status.
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$CPPOPS_SOCKET_DIR"' EXIT
for _ in $(seq 100); do
  ls "$CPPOPS_SOCKET_DIR"/"$pid"-*.sock >/dev/null 2>&1 && break
  sleep 0.05
done
sleep 1  # let the workers run a little, so the figures mean something

run() {
  echo
  echo "\$ $*"
  "$@"
}
echo "demo_service (pid $pid) runs with the cppops agent preloaded; sockets in $CPPOPS_SOCKET_DIR"
run cppops
run cppops tree
run cppops stats "$pid"
run cppops version "$pid"
run cppops "$pid"
run cppops stack "$pid"
run cppops profile "$pid" --duration 3s --mode wall --top 8
run cppops profile "$pid" --duration 3s --mode wall --threads -o build/demo-flame.svg
echo "(open build/demo-flame.svg in a browser: hover, click to zoom, Search)"
