#!/usr/bin/env bash
# Stack dump speed and intrusiveness: cppops vs eu-stack vs gdb on one ~1,000-thread target, same run.
# --agent AGENT times another build of the agent in place of this tree's (a copy named libcppops_agent*.so: the
# preloaded agent starts only under that name), so that two builds can be compared run after run.
# --frame-pointers dumps the same target built with frame pointers, whose sleeping threads need their rbp found
# from their code (lib/unwind/frame_pointer.h) to be read where they sleep.
# Usage: scripts/bench_stack.sh [--threads N] [--runs N] [--agent AGENT] [--frame-pointers]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
agent=""
target=build/tests/targets/stack_scenarios
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --agent) agent=$(realpath -m "$2"); shift 2 ;;
    --threads|--runs) args+=("$1" "$2"); shift 2 ;;
    --frame-pointers) target=build/tests/targets/stack_scenarios_fp; shift ;;
    *) echo "usage: $0 [--threads N] [--runs N] [--agent AGENT] [--frame-pointers]" >&2; exit 2 ;;
  esac
done
if [ -n "$agent" ]; then
  . scripts/agent_name.sh
  require_agent_name "$agent"
fi
scripts/setup.sh
scripts/build.sh build >/dev/null
exec build/tests/stack_bench build/cmd/cppops "${agent:-build/agent/libcppops_agent.so}" "$target" "${args[@]}"
