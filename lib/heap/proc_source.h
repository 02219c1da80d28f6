// The memory of a process without an agent, as far as the kernel shows it from outside: what `cppops heap` prints
// for a process that has no agent to ask.
#pragma once

#include <sys/types.h>

#include "core/result.h"
#include "protocol/messages.h"

namespace cppops::heap {

// A HEAP reply read from /proc/PID as the agent reads /proc/self (smaps_rollup, smaps, each thread's stack pointer
// from its syscall file), with the allocator "unknown": only code inside the process can tell which allocator it
// calls, and ask it for its figures. Reading another process's smaps needs the access ptrace needs; a refusal
// comes back as a kPermission error that says why and what to do.
Result<protocol::HeapReply> readKernelView(pid_t pid);

}  // namespace cppops::heap
