#!/usr/bin/env bash
# What reading a heap profile costs a thread that allocates meanwhile. tests/bench/heap_read_bench.cpp holds
# 100,000 blocks of 1 KiB from 4,096 distinct stacks, sampled at 1 KiB (some 63,000 live samples), while a bystander
# thread frees and allocates 1 KiB blocks, most of which take the sampler's lock. Each run reads the profile READS
# times with `cppops profile --heap`, then lets the bystander run alone as long again, and reports the bystander's
# longest call in each period, on the clock and in its own CPU time. On the clock, a call also waits for a CPU: on
# 2 CPUs the bystander shares them with the reads (the agent's thread, the CLI symbolizing). In CPU time, a call
# counts only what it ran, spinning for the sampler's lock included: that figure is what a read's hold of the
# lock costs the bystander. Longest calls are the noisiest figures there are: run it on a quiet machine. Figures
# are medians over the runs; configurations alternate run by run.
# --against AGENT adds another build of the agent (a copy named libcppops_agent*.so: the preloaded agent starts only
# under that name), measured in the same runs.
# Usage: scripts/bench_heap_read.sh [--runs N] [--reads N] [--against AGENT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=5
reads=10
against=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --reads) reads=$2; shift 2 ;;
    --against) against=$(realpath -m "$2"); shift 2 ;;
    *) echo "usage: $0 [--runs N] [--reads N] [--against AGENT]" >&2; exit 2 ;;
  esac
done
. scripts/heap_bench_env.sh
bench=build/tests/heap_read_bench
cli=build/cmd/cppops
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT  # its bystander would spin on

agents=("$agent")
names=("this build")
if [ -n "$against" ]; then
  require_agent_name "$against"
  agents+=("$against")
  names+=("--against")
fi

# Waits for the bench's next report line beyond the first $2 lines of $1 and prints "LONGEST_US LONGEST_CPU_US".
next_report() {
  local out=$1 seen=$2
  for _ in $(seq 1 500); do
    local line
    line=$(grep '^heap_read_bench ' "$out" | sed -n "$((seen + 1))p")
    if [ -n "$line" ]; then
      sed 's/.*longest_us=\([0-9.]*\) longest_cpu_us=\([0-9.]*\).*/\1 \2/' <<<"$line"
      return
    fi
    sleep 0.01
  done
  echo "bench_heap_read.sh: heap_read_bench did not report" >&2
  exit 1
}

run() {  # agent index, run number: appends "index run read_ms reading_us reading_cpu_us quiet_us quiet_cpu_us"
  local out=$work/out-$1-$2  # a file of its own: a previous run's "ready" must not count
  LD_PRELOAD=${agents[$1]} CPPOPS_HEAP_PROFILE=1024 "$bench" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do grep -q '^ready' "$out" && break; sleep 0.01; done
  grep -q '^ready' "$out" || { echo "bench_heap_read.sh: heap_read_bench did not start" >&2; exit 1; }
  kill -USR1 "$pid"  # the set-up's own calls are not part of either period
  next_report "$out" 0 >/dev/null
  local t0 t1
  t0=$(date +%s%N)
  for ((i = 0; i < reads; i++)); do
    "$cli" profile "$pid" --heap --format folded -o "$work/profile.folded" >/dev/null
  done
  t1=$(date +%s%N)
  kill -USR1 "$pid"
  local reading quiet
  reading=$(next_report "$out" 1)
  sleep "$(awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.3f", ns / 1e9}')"
  kill -USR1 "$pid"
  quiet=$(next_report "$out" 2)
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  echo "$1 $2 $(((t1 - t0) / reads / 1000000)) $reading $quiet" >>"$work/results"
}
for ((r = 1; r <= runs; r++)); do
  for ((k = 0; k < ${#agents[@]}; k++)); do run $(((k + r) % ${#agents[@]})) "$r"; done
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
figure() { awk -v a="$1" -v f="$2" '$1 == a {print $f}' "$work/results" | median; }
echo "heap_read_bench: 100000 blocks of 1 KiB from 4096 stacks, sampled at 1 KiB; $reads reads a run, $runs runs," \
  "$(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "the bystander's longest call, in $reads reads and in as long again without (medians over the runs):"
printf '%-12s %12s %18s %18s %18s %18s\n' "agent" "ms per read" "clock, reading" "clock, quiet" "CPU, reading" \
  "CPU, quiet"
for a in "${!agents[@]}"; do
  printf '%-12s %12s %15.1f us %15.1f us %15.1f us %15.1f us\n' "${names[$a]}" "$(figure "$a" 3)" \
    "$(figure "$a" 4)" "$(figure "$a" 6)" "$(figure "$a" 5)" "$(figure "$a" 7)"
done
