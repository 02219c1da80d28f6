// Getting a RawDump from a process's agent, and turning it into a StackDump with everything the CLI reads
// from /proc and the binaries alongside.
#pragma once

#include <sys/types.h>

#include <chrono>

#include "core/result.h"
#include "stack/model.h"

namespace cppops::stack {

struct DumpOptions {
  std::chrono::milliseconds timeout{5000};          // for the whole request
  std::chrono::milliseconds capture_timeout{1000};  // how long the agent waits for threads to answer (ptrace:
                                                    // how long one thread may take to stop)
  bool use_signals = true;
  bool exits_after = false;  // the process ends after this one dump: its symbolizer is left to the exit
};

// Asks the agent of `pid` for a dump and analyses it. The /proc reads and the symbolizer set-up run while the
// agent captures, since neither depends on the other.
Result<StackDump> dumpThroughAgent(pid_t pid, const DumpOptions& options);

}  // namespace cppops::stack
