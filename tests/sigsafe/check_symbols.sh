#!/usr/bin/env bash
# The signal-handler code (agent/sigsafe/) may call only what is on this list. Each entry is either on the
# signal-safety(7) list or argued safe where it is called (backtrace: see agent/sigsafe/unwind.cpp;
# _dl_find_object: glibc documents it async-signal-safe, see agent/sigsafe/cfi_unwind.h). __libc_stack_end is
# not a function but ld.so's word saying where the main thread's stack began, read as the walk's bound, through
# the _GLOBAL_OFFSET_TABLE_ (not a function either).
# Usage: check_symbols.sh OBJECT_FILE...
set -euo pipefail
allowed='^(backtrace|_dl_find_object|__libc_stack_end|_GLOBAL_OFFSET_TABLE_|clock_gettime|getpid|raise|sigaction|sigfillset|syscall|__errno_location|__stack_chk_fail|memcpy|memmove|memset)$'
# CMake hands $<TARGET_OBJECTS:...> over as one ';'-separated argument.
IFS=';' read -r -a objects <<< "$*"
# Calls from one object of agent/sigsafe/ into another are calls into the same checked code.
own=$(nm --defined-only "${objects[@]}" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u)
status=0
for obj in "${objects[@]}"; do
  while read -r symbol; do
    symbol=${symbol%%@*}
    if grep -qxF -- "$symbol" <<<"$own"; then continue; fi
    if ! [[ $symbol =~ $allowed ]]; then
      echo "$obj calls $symbol, which is not on the async-signal-safe allow-list"
      status=1
    fi
  done < <(nm -u "$obj" | awk '{print $NF}')
done
[ $status -eq 0 ] && echo "sigsafe: ${#objects[@]} object file(s) call only allow-listed functions"
exit $status
