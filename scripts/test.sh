#!/usr/bin/env bash
# The whole test suite: set up, then build and test three trees:
#   build        RelWithDebInfo, warnings as errors (plus docs and install checks)
#   build-asan   lib/, cmd/, tests and linked targets under AddressSanitizer + UndefinedBehaviorSanitizer
#   build-tsan   the same under ThreadSanitizer
# and runs scripts/demo.sh on the plain tree. Prints one closing line "N passed, M failed" over all of it.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh || exit 1

passed=0
failed=0
status=0
run_tree() {
  local dir=$1
  shift
  echo "== $dir: build"
  if ! scripts/build.sh "$dir" "$@"; then
    echo "== $dir: BUILD FAILED"
    status=1
    failed=$((failed + 1))
    return
  fi
  echo "== $dir: test"
  local log=$dir/ctest.log
  (cd "$dir" && ctest -j "$(nproc)" --output-on-failure --timeout 300) 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  local total fails
  total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log" | tail -1)
  fails=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  passed=$((passed + ${total:-0} - ${fails:-0}))
  failed=$((failed + ${fails:-0}))
}

# The README's other command, run on the plain tree it shares: it must keep exiting 0 and writing its flame graph.
run_demo() {
  echo "== demo: scripts/demo.sh"
  rm -f build/demo-flame.svg
  if scripts/demo.sh > build/demo.log 2>&1 && [ -s build/demo-flame.svg ]; then
    echo "demo: passed (output in build/demo.log)"
    passed=$((passed + 1))
  else
    tail -n 40 build/demo.log
    echo "demo: FAILED (output in build/demo.log)"
    failed=$((failed + 1))
    status=1
  fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

run_tree build
run_demo
run_tree build-asan -DCPPOPS_SANITIZE=address
run_tree build-tsan -DCPPOPS_SANITIZE=thread

echo
echo "$passed passed, $failed failed"
exit $status
