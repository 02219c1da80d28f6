#!/usr/bin/env bash
# The longest a single malloc or free waits on the heap profiler, in one run: tests/bench/heap_stall_bench.cpp
# builds a heap of 2 GiB in 64 KiB blocks and gives it back, three times, timing every call, while a bystander thread
# frees and allocates 64 KiB blocks it already has (no page faults: what it waits for is the profiler's lock). At
# 16 KiB nearly every block is sampled, so some 32,000 samples are live at the peak and the sampler's tables grow to
# their larger sizes (in the first round: the later rounds find them grown); at 512 KiB, about 4,000. The same with
# no preload shows
# the allocator's own longest calls (glibc's trimming off, so that no single free gives the whole heap back), and
# heaptrack is measured alongside for comparison. Configurations alternate run by run; each figure is the median over
# the runs. Longest calls are the noisiest figures there are: run it on a quiet machine.
# Usage: scripts/bench_heap_stall.sh [RUNS [HEAP_MIB]]   (defaults: 5 runs of 2048 MiB)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-5}
heap_mib=${2:-2048}
. scripts/heap_bench_env.sh
bench=build/tests/heap_stall_bench

configs=("no preload" "sampling on, 512 KiB" "sampling on, 16 KiB" "heaptrack")
run() {
  case $1 in
    0) "$bench" "$heap_mib" 64 3 ;;
    1) LD_PRELOAD=$agent CPPOPS_HEAP_PROFILE=524288 "$bench" "$heap_mib" 64 3 ;;
    2) LD_PRELOAD=$agent CPPOPS_HEAP_PROFILE=16384 "$bench" "$heap_mib" 64 3 ;;
    3) heaptrack -o "$work/heaptrack" "$bench" "$heap_mib" 64 3 ;;
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
echo "heap_stall_bench: $heap_mib MiB in 64 KiB blocks, 3 rounds a run, $runs runs, $(nproc) CPUs," \
  "load $(cut -d' ' -f1 /proc/loadavg)"
for phase in first_fill fill free bystander; do
  echo
  printf '%-24s %12s %12s %12s\n' "$phase" "median us" "p99.9 us" "longest us"
  for c in "${!configs[@]}"; do
    printf '%-24s %12.2f %12.2f %12.1f\n' "${configs[$c]}" "$(figure "$c" "$phase" median_us)" \
      "$(figure "$c" "$phase" p999_us)" "$(figure "$c" "$phase" max_us)"
  done
done
