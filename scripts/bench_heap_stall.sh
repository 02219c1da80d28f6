#!/usr/bin/env bash
# The longest a single malloc or free waits on the heap profiler, in one run: tests/bench/heap_stall_bench.cpp
# builds a heap of 2 GiB in 64 KiB blocks and gives it back, three times, timing every call, while a bystander thread
# frees and allocates 64 KiB blocks it already has (no page faults: what it waits for is the profiler's lock). At
# 16 KiB nearly every block is sampled, so some 32,000 samples are live at the peak and the sampler's tables grow to
# their larger sizes (in the first round: the later rounds find them grown); at 512 KiB, about 4,000. The same with
# no preload shows the allocator's own longest calls (glibc's trimming off, so that no single free gives the whole heap back), and
# heaptrack is measured alongside for comparison. Configurations alternate run by run; each figure is the median over
# the runs. Longest calls are the noisiest figures there are: run it on a quiet machine.
# --block-kib 1 builds the heap of 1 KiB blocks instead: 2 million blocks, some 131,000 of them sampled at 16 KiB,
# so the table of sampled addresses doubles up to its largest sizes as the heap grows, and every sampled free finds
# records still to move.
# The bystander's calls are also timed in its own CPU time ("bystander_cpu"): on the clock a call also waits for a
# CPU, which on 2 CPUs it shares with the builder and the sampler's thread; in CPU time it counts what it ran,
# spinning for the sampler's lock included.
# --against AGENT adds another build of the agent (a copy named libcppops_agent*.so: the preloaded agent starts only
# under that name), sampling at 16 KiB in the same runs.
# Usage: scripts/bench_heap_stall.sh [--runs N] [--heap-mib N] [--block-kib N] [--against AGENT]
#   (defaults: 5 runs, 2048 MiB in 64 KiB blocks)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=5
heap_mib=2048
block_kib=64
against=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --heap-mib) heap_mib=$2; shift 2 ;;
    --block-kib) block_kib=$2; shift 2 ;;
    --against) against=$(realpath -m "$2"); shift 2 ;;
    *) echo "usage: $0 [--runs N] [--heap-mib N] [--block-kib N] [--against AGENT]" >&2; exit 2 ;;
  esac
done
. scripts/heap_bench_env.sh
bench=build/tests/heap_stall_bench

configs=("no preload" "sampling on, 512 KiB" "sampling on, 16 KiB" "heaptrack")
if [ -n "$against" ]; then
  require_agent_name "$against"
  configs+=("--against, 16 KiB")
fi
run() {
  local args=("$heap_mib" "$block_kib" 3)
  case $1 in
    0) "$bench" "${args[@]}" ;;
    1) LD_PRELOAD=$agent CPPOPS_HEAP_PROFILE=524288 "$bench" "${args[@]}" ;;
    2) LD_PRELOAD=$agent CPPOPS_HEAP_PROFILE=16384 "$bench" "${args[@]}" ;;
    3) heaptrack -o "$work/heaptrack" "$bench" "${args[@]}" ;;
    4) LD_PRELOAD=$against CPPOPS_HEAP_PROFILE=16384 "$bench" "${args[@]}" ;;
  esac
}
for ((r = 1; r <= runs; r++)); do
  for ((k = 0; k < ${#configs[@]}; k++)); do
    c=$(((k + r) % ${#configs[@]}))
    run "$c" 2>/dev/null | grep '^heap_stall_bench ' | sed "s/^/$c $r /" >>"$work/results"
    rm -f "$work"/heaptrack*
  done
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
figure() {  # configuration phase field
  awk -v c="$1" -v p="phase=$2" -v f="$3" '$1 == c && $4 == p {for (i = 5; i <= NF; i++) if ($i ~ "^" f "=") {
    sub("^" f "=", "", $i); print $i}}' "$work/results" | median
}
echo "heap_stall_bench: $heap_mib MiB in $block_kib KiB blocks, 3 rounds a run, $runs runs, $(nproc) CPUs," \
  "load $(cut -d' ' -f1 /proc/loadavg)"
for phase in first_fill fill free bystander bystander_cpu; do
  echo
  printf '%-24s %12s %12s %12s\n' "$phase" "median us" "p99.9 us" "longest us"
  for c in "${!configs[@]}"; do
    printf '%-24s %12.2f %12.2f %12.1f\n' "${configs[$c]}" "$(figure "$c" "$phase" median_us)" \
      "$(figure "$c" "$phase" p999_us)" "$(figure "$c" "$phase" max_us)"
  done
done
