#!/usr/bin/env bash
# Stack dump speed and intrusiveness: cppops vs eu-stack vs gdb on one ~1,000-thread target, same run.
# Usage: scripts/bench_stack.sh [--threads N] [--runs N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build >/dev/null
exec build/tests/stack_bench build/cmd/cppops build/agent/libcppops_agent.so build/tests/targets/stack_scenarios "$@"
