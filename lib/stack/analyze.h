// From a RawDump to a StackDump: symbolized frames, what each thread waits for and who holds it, deadlocks, and
// groups of threads with identical stacks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string_view>
#include <vector>

#include "proc/task.h"
#include "stack/model.h"
#include "symbolize/symbolizer.h"

namespace cppops::stack {

// One captured pc -> its frames, innermost first (several when calls were inlined); an empty result keeps the pc
// as a bare address. is_return_address is false only for the interrupted pc of frame 0.
using FrameSource = std::function<std::vector<SourceFrame>(uint64_t pc, bool is_return_address)>;

// stats: /proc/PID/task/TID/stat of the dumped threads, as read by the caller (a missing thread reads as '?').
// frames: a Symbolizer's, or any other source (tests inject their own); empty leaves every pc a bare address.
// stack_signal: the real-time signal the agent unwinds threads with, 0 when none was used (ptrace, --no-signal).
// Cost::total_ns is left for the caller to fill in, and the symbolizer's notes for the caller to add.
StackDump analyze(const RawDump& raw, const std::map<pid_t, proc::TaskStat>& stats, const FrameSource& frames,
                  int stack_signal);

// One thread's state from its kernel facts alone (the text of /proc/PID/task/TID/syscall) and its frames, with no
// lock owner, fd description or scheduler state: how a wall-clock profile labels each sample. A futex wait is told
// apart (mutex, rwlock, condition variable, semaphore) by the functions on the stack, as in analyze().
ThreadState stateFromSyscall(std::string_view syscall_line, const std::vector<SourceFrame>& frames);

}  // namespace cppops::stack
