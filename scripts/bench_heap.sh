#!/usr/bin/env bash
# What the heap profiler costs a malloc-heavy program, in one run: three workloads (tests/bench/heap_bench.cpp: "mixed"
# and "small" malloc, fill and free, nothing else, blocks of 1 KiB on average or of 16-256 B; "objects" is C++
# containers, a string key, a hash-map node and a growing vector per entry), each on one thread and on two, and the
# small loop once more beside 2 GiB held in 64 KiB blocks (some 3,800 of them sampled and live, as in a server with a
# large heap), with no preload, with the agent preloaded and sampling off, with sampling on at 512 KiB (and at 64 KiB),
# and under heaptrack for comparison. Configurations alternate round by round so that load on the machine falls on all
# of them alike; each time is the median over the rounds, and each loss the median over the rounds of that round's ratio
# to no preload. Time is the workload's own CPU time per pair (heaptrack's separate interpreter process is not in it:
# its wall time per pair is shown too).
# Sampling costs per call (a countdown on malloc, a filter on free) and per sample (a stack walk): the mixed
# workload allocates ~1 KiB per pair, so it takes a sample every ~500 pairs; the small one every ~4000, objects
# (53 B a pair, by heaptrack's histogram) every ~10000. Sampling off, the entry points jump straight to the allocator.
# One thread against two: the agent's own thread makes a single-threaded program multi-threaded, and glibc's
# malloc then leaves its lock-free single-thread paths for good. On two threads the program is multi-threaded
# in every configuration, as servers are, and the difference is the agent's alone.
# Every round also runs "no preload" a second time: its "loss" is this machine's noise, measured the same way as
# the others' (a few percent on a shared VM, most on two threads), and each loss comes with the range of its
# middle half of rounds. heaptrack, 5-15 times slower than the rest, runs in the first rounds only.
# --against AGENT adds another build of the agent (a copy named libcppops_agent*.so: the preloaded agent starts only
# under that name), sampling at 512 KiB in the same rounds, and prints what this build saves or costs against it.
# --allocator LIB preloads another allocator (libjemalloc.so.2, libtcmalloc_minimal.so.4: a name in the library
# path, or a path) in every configuration, after the agent, and alone as "no preload": what the agent costs a
# program built on it.
# Usage: scripts/bench_heap.sh [--rounds N] [--pairs N] [--heaptrack-rounds N] [--against AGENT] [--allocator LIB]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=21
pairs=4000000
heaptrack_rounds=3
against=""
allocator=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --heaptrack-rounds) heaptrack_rounds=$2; shift 2 ;;
    --against) against=$(realpath -m "$2"); shift 2 ;;
    --allocator) allocator=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--pairs N] [--heaptrack-rounds N] [--against AGENT] [--allocator LIB]" >&2
      exit 2 ;;
  esac
done
. scripts/heap_bench_env.sh
bench=build/tests/heap_bench

# "interposition only" preloads the agent with CPPOPS_AGENT=0: no agent thread, so the process stays
# single-threaded and glibc's malloc keeps its lock-free single-thread paths; the difference to "sampling off" is
# what any second thread costs glibc's malloc, not the interposition.
configs=("no preload" "agent preloaded, sampling off" "sampling on, 512 KiB" "sampling on, 64 KiB" "heaptrack"
  "interposition only (CPPOPS_AGENT=0)" "no preload again (noise)")
if [ -n "$against" ]; then
  require_agent_name "$against"
  configs+=("--against, sampling on, 512 KiB")
fi
# workload:threads[:MiB held in 64 KiB blocks beside the loop, so that thousands of samples stay live]
workloads=(mixed:1 small:1 objects:1 mixed:2 small:2 objects:2 small:2:2048)
# Runs a command with LD_PRELOAD=$1 and the allocator, if any, after it (heaptrack puts its own first).
with() { LD_PRELOAD="$1${allocator:+ $allocator}" "${@:2}"; }
run() {  # configuration workload:threads[:resident]
  local w n r
  IFS=: read -r w n r <<<"$2"
  local args=("$pairs" "$w" "$n" "${r:-0}")
  case $1 in
    0) with "" "$bench" "${args[@]}" ;;
    1) with "$agent" "$bench" "${args[@]}" ;;
    2) CPPOPS_HEAP_PROFILE=524288 with "$agent" "$bench" "${args[@]}" ;;
    3) CPPOPS_HEAP_PROFILE=65536 with "$agent" "$bench" "${args[@]}" ;;
    4) with "" heaptrack -o "$work/heaptrack" "$bench" "${args[@]}" ;;
    5) CPPOPS_AGENT=0 with "$agent" "$bench" "${args[@]}" ;;
    6) with "" "$bench" "${args[@]}" ;;
    7) CPPOPS_HEAP_PROFILE=524288 with "$against" "$bench" "${args[@]}" ;;
  esac
}

for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    # Each round starts the cycle of configurations one further on, so that none always runs first, or always
    # just after heaptrack.
    for ((k = 0; k < ${#configs[@]}; k++)); do
      c=$(((k + r) % ${#configs[@]}))
      [ "$c" -eq 4 ] && [ "$r" -gt "$heaptrack_rounds" ] && continue
      line=$(run "$c" "$w" 2>/dev/null | grep '^heap_bench ')
      cpu=$(sed -n 's/.*cpu_ns_per_pair=\([0-9.]*\).*/\1/p' <<<"$line")
      wall=$(sed -n 's/.*wall_ns_per_pair=\([0-9.]*\).*/\1/p' <<<"$line")
      echo "$w $c $cpu $wall $r" >>"$work/results"
    done
    rm -f "$work"/heaptrack*
  done
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "heap_bench: $pairs malloc/free pairs per run, $rounds rounds ($heaptrack_rounds with heaptrack), $(nproc) CPUs," \
  "load $(cut -d' ' -f1 /proc/loadavg)${allocator:+, every run behind $allocator}"
for w in "${workloads[@]}"; do
  echo
  IFS=: read -r name threads resident <<<"$w"
  printf '%-32s %12s %10s %16s %12s %10s\n' "workload: $name, threads: $threads${resident:+, $resident MiB held}" \
    "cpu ns/pair" "loss(cpu)" \
    "middle half" "wall ns/pair" "loss(wall)"
  figure() { awk -v w="$w" -v c="$1" -v f="$2" '$1 == w && $2 == c {print $f}' "$work/results" | median; }
  # A configuration against no preload in the same round, then the median over rounds: a drift of the machine
  # between rounds (frequency, neighbours) falls on both sides of each pair.
  ratios() {  # configuration field percent|ns: one line per round
    awk -v w="$w" -v c="$1" -v f="$2" -v how="$3" '$1 == w && $2 == 0 {base[$5] = $f} $1 == w && $2 == c {v[$5] = $f}
      END {for (r in v) if (r in base) print how == "percent" ? (v[r] / base[r] - 1) * 100 : v[r] - base[r]}' \
      "$work/results"
  }
  versus() { ratios "$@" | median; }
  middle_half() { ratios "$1" 3 percent | sort -g | awk '{v[NR] = $1} END {
    printf "[%+.1f, %+.1f]", v[int((NR + 3) / 4)], v[int((3 * NR + 3) / 4)]}'; }
  for c in "${!configs[@]}"; do
    cpu=$(figure "$c" 3)
    wall=$(figure "$c" 4)
    if [ "$c" -eq 0 ]; then
      printf '%-32s %12.2f %10s %16s %12.2f %10s\n' "${configs[$c]}" "$cpu" - - "$wall" -
    else
      printf '%-32s %12.2f %9.2f%% %16s %12.2f %9.2f%%\n' "${configs[$c]}" "$cpu" "$(versus "$c" 3 percent)" \
        "$(middle_half "$c")" "$wall" "$(versus "$c" 4 percent)"
    fi
  done
  awk -v off="$(versus 1 3 percent)" -v on="$(versus 2 3 percent)" -v off_ns="$(versus 1 3 ns)" \
    -v on_ns="$(versus 2 3 ns)" -v bare_ns="$(versus 5 3 ns)" -v ht_ns="$(versus 4 3 ns)" \
    -v noise="$(versus 6 3 percent)" 'BEGIN {
    printf "interposition alone: %+.2f ns per pair; noise (no preload against itself): %+.2f%%\n", bare_ns, noise
    printf "sampling off: %+.2f ns per pair, %+.2f%% (target: <= 1%%: %s)\n", off_ns, off,
      (off <= 1) ? "met" : "NOT met"
    printf "sampling on at 512 KiB: %+.2f ns per pair, %+.2f%% (target: <= 3%%: %s)\n", on_ns, on,
      (on <= 3) ? "met" : "NOT met"
    if (on_ns >= 0.1) printf "heaptrack costs %.0fx what sampling at 512 KiB costs\n", ht_ns / on_ns
    else printf "heaptrack costs %+.1f ns per pair; sampling at 512 KiB is within the noise\n", ht_ns
  }'
  if [ -n "$against" ]; then
    # This build against the other, round by round.
    awk -v w="$w" '$1 == w && $2 == 2 {mine[$5] = $3} $1 == w && $2 == 7 {theirs[$5] = $3}
      END {for (r in mine) if (r in theirs) print mine[r] - theirs[r]}' "$work/results" | median |
      awk '{printf "sampling on at 512 KiB, this build against --against: %+.2f ns per pair (median over rounds)\n", $1}'
  fi
done
