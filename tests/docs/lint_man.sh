#!/usr/bin/env bash
# Every man page must be lint-clean: mandoc -Tlint prints nothing for it.
set -euo pipefail
status=0
# From inside the folder, so that .Xr links between our own pages resolve before they are installed.
cd "$1"
for page in *.[1-9]; do
  out=$(mandoc -Tlint "$page" 2>&1 || true)
  if [ -n "$out" ]; then
    echo "$out"
    status=1
  fi
done
exit $status
