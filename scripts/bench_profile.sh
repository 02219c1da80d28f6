#!/usr/bin/env bash
# Profiling overhead on a CPU-bound target, in one run: throughput with no profile, with `cppops profile` at
# 100 Hz and at 1000 Hz and with `cppops profile --ptrace` at 100 Hz (same process, alternating windows), and under
# gperftools' CPU profiler for comparison.
# Usage: scripts/bench_profile.sh [--rounds N] [--window-ms MS] [--threads N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
scripts/build.sh build >/dev/null
exec build/tests/profile_bench build/cmd/cppops build/agent/libcppops_agent.so build/tests/targets/cpu_burner "$@"
