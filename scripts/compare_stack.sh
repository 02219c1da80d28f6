#!/usr/bin/env bash
# Two cppops builds against each other on one 1,000-thread target with the agent, runs alternating so that the
# machine's load falls on both alike: the median wall time and CPU time of `cppops stack PID` for each, and the
# change. On a noisy machine this shows a few milliseconds that bench_stack.sh's run-to-run spread hides.
# --ptrace times the dumps through ptrace (`cppops stack --ptrace`) instead of through the agent.
# --frame-pointers dumps the target built with frame pointers (stack_scenarios_fp) instead.
# --agents BEFORE_SO AFTER_SO compares two builds of the agent too: each cppops dumps a target of its own, with its
# agent preloaded (a copy named libcppops_agent*.so: the preloaded agent starts only under that name), and the
# agent's own CPU time per dump (its control thread's, from /proc) is shown beside the CLI's.
# --wall-profile times a 2 s wall-clock profile (`cppops profile PID --mode wall -d 2s`) instead of a dump; the
# agent's CPU time is then that of all its threads (the target's, less that of its threads not named cppops-*).
# --naps MS: the quarter of the target's extra threads that sleep wake every MS milliseconds, and sleep again in
# the same call (by default they sleep for an hour).
# Usage: scripts/compare_stack.sh BEFORE_CPPOPS AFTER_CPPOPS [--runs N] [--threads N] [--ptrace] [--frame-pointers]
#          [--agents BEFORE_SO AFTER_SO] [--wall-profile] [--naps MS]
#   e.g. git stash; scripts/build.sh build; cp build/cmd/cppops /tmp/before; git stash pop; scripts/build.sh build
#        scripts/compare_stack.sh /tmp/before build/cmd/cppops
set -euo pipefail
export LC_ALL=C  # $EPOCHREALTIME with a decimal point
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
usage() {
  echo "usage: $0 BEFORE_CPPOPS AFTER_CPPOPS [--runs N] [--threads N] [--ptrace] [--frame-pointers]" \
    "[--agents BEFORE_SO AFTER_SO] [--wall-profile] [--naps MS]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
before=$1 after=$2
shift 2
runs=20
threads=1000
path=()
program=stack_scenarios
agents=()
command=(stack)
naps=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --ptrace) path=(--ptrace); shift ;;
    --frame-pointers) program=stack_scenarios_fp; shift ;;
    --agents) [ $# -ge 3 ] || usage; agents=("$(realpath -m "$2")" "$(realpath -m "$3")"); shift 3 ;;
    --wall-profile) command=(profile --mode wall -d 2s --format folded); shift ;;
    --naps) [ $# -ge 2 ] || usage; naps=(--extra-nap-ms "$2"); shift 2 ;;
    *) usage ;;
  esac
done
for tool in "$before" "$after"; do
  [ -x "$tool" ] || { echo "$tool is not an executable cppops" >&2; exit 2; }
done
scripts/build.sh build >/dev/null

work=$(mktemp -d)
export CPPOPS_SOCKET_DIR=$work/sockets
mkdir -m 700 "$CPPOPS_SOCKET_DIR"
[ ${#agents[@]} -eq 0 ] && agents=("$PWD/build/agent/libcppops_agent.so")
for agent in "${agents[@]}"; do
  [[ $(basename "$agent") == libcppops_agent*.so* ]] || { echo "$agent: the agent must be named libcppops_agent*.so" >&2; exit 2; }
done
targets=()
trap '{ kill -9 "${targets[@]}"; wait "${targets[@]}"; } 2>/dev/null; rm -rf "$work"' EXIT
for i in "${!agents[@]}"; do
  CPPOPS_PROBE_FILE=$work/probe$i LD_PRELOAD=${agents[$i]} \
    "build/tests/targets/$program" --extra "$threads" "${naps[@]}" >/dev/null 2>&1 &
  targets+=($!)
  for _ in $(seq 100); do
    [ -e "$work/probe$i" ] && break
    sleep 0.1
  done
done
sleep 1
# The target each build dumps, and its agent's control thread (named cppops-agent), whose CPU time is the agent's.
target_before=${targets[0]} target_after=${targets[-1]}
agent_thread() {
  grep -l '^cppops-agent$' /proc/"$1"/task/*/comm | head -1 | xargs dirname
}
agent_before=$(agent_thread "$target_before") agent_after=$(agent_thread "$target_after")
# CPU time in milliseconds so far of the threads whose directories are given, to the nanosecond (the first field
# of their schedstat).
threads_ms() {
  for task in "$@"; do cat "$task/schedstat"; done | awk '{sum += $1} END {print sum / 1e6}'
}
# The agent's CPU time so far: its control thread's for a dump; for a profile, whose thread ends with it, the
# target's (utime + stime in clock ticks, fields 14 and 15 of its stat line, its ended threads included) less that
# of its live threads that are not the agent's (named cppops-*). One awk reads them all, within milliseconds: the
# target's spinner gains as much CPU time while they are read.
agent_ms() {  # control-thread-directory target-pid
  if [ "${command[0]}" = stack ]; then
    threads_ms "$1"
    return
  fi
  local files=(/proc/"$2"/stat) task
  for task in /proc/"$2"/task/*; do files+=("$task/comm" "$task/schedstat"); done
  awk -v hz="$(getconf CLK_TCK)" '
    NR == 1 { sub(/.*\) /, ""); total = ($12 + $13) * 1000 / hz; next }
    FILENAME ~ /comm$/ { agent = /^cppops-/; next }
    !agent { others += $1 / 1e6 }
    END { print total - others }' "${files[@]}" 2>/dev/null
}

# Children's CPU time in milliseconds, from the second line of bash's `times` (the children's user and system
# time) as saved in file $1. `times` itself must run in this shell (a $(...) subshell has no children), and
# nothing else may start a process between two readings: the clock is bash's own $EPOCHREALTIME.
cpu_ms() {
  sed -n 2p "$1" | awk '{
    total = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); total += p[1] * 60000 + p[2] * 1000 }
    print total
  }'
}

# A first run of each fills the debug-info caches, as on any machine after the first dump.
"$before" "${command[@]}" "$target_before" "${path[@]}" >/dev/null 2>&1 || true
"$after" "${command[@]}" "$target_after" "${path[@]}" >/dev/null 2>&1 || true
for ((r = 1; r <= runs; r++)); do
  for which in before after; do
    tool=$before target=$target_before agent=$agent_before
    [ $which = after ] && tool=$after target=$target_after agent=$agent_after
    a0=$(agent_ms "$agent" "$target")
    times >"$work/times0"
    t0=$EPOCHREALTIME
    # exit 7: the scenario target's deadlocks, found
    "$tool" "${command[@]}" "$target" "${path[@]}" >/dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    times >"$work/times1"
    echo "$which $t0 $t1 $(cpu_ms "$work/times0") $(cpu_ms "$work/times1") $a0 $(agent_ms "$agent" "$target")" \
      >>"$work/results"
  done
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# figure BEFORE|AFTER 2: the median wall time in ms; 3: the median CPU time in ms; 4: the agent's mean CPU time
# in ms (a profile's is only as fine as the process's clock ticks).
figure() {
  if [ "$2" = 4 ]; then
    awk -v w="$1" '$1 == w {sum += $7 - $6; n++} END {print sum / n}' "$work/results"
  else
    awk -v w="$1" -v f="$2" '$1 == w {print (f == 2) ? ($3 - $2) * 1000 : $5 - $4}' "$work/results" | median
  fi
}
echo "cppops ${command[*]} ${path[*]:-(through the agent)} on $program with $threads threads${naps[*]:+ (${naps[*]})}," \
  "$runs alternating runs each, $(nproc) CPUs"
printf '%-8s %14s %14s %16s\n' "" "wall ms" "cpu ms" "agent cpu ms"
for which in before after; do
  printf '%-8s %14.1f %14.1f %16.1f\n' "$which" "$(figure $which 2)" "$(figure $which 3)" "$(figure $which 4)"
done
awk -v wb="$(figure before 2)" -v wa="$(figure after 2)" -v cb="$(figure before 3)" -v ca="$(figure after 3)" \
  -v ab="$(figure before 4)" -v aa="$(figure after 4)" \
  'BEGIN {printf "%-8s %+13.1f%% %+13.1f%% %+15.1f%%\n", "change", (wa / wb - 1) * 100, (ca / cb - 1) * 100,
          (ab > 0) ? (aa / ab - 1) * 100 : 0}'
