// Signals one thread of this process with a value (rt_tgsigqueueinfo), as the stack capture and the profiler do
// to ask a thread for its own stack.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace cppops::agent {

// Queues `signo` to thread `tid` with si_code SI_QUEUE and `value` in si_value; 0 or -1 with errno, like the call.
int queueSignal(pid_t tid, int signo, uint64_t value);

}  // namespace cppops::agent
