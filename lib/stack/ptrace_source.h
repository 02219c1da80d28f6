// Getting a RawDump from a process without asking it: the CLI reads each thread that sleeps in the kernel where it
// sleeps, and stops the others one at a time with ptrace, copies each one's stack while it is stopped, and lets it
// run again before the next one is touched; libunwind walks the stacks. For processes without an agent, and for
// those whose agent cannot answer.
#pragma once

#include <sys/types.h>

#include "core/result.h"
#include "stack/agent_source.h"
#include "stack/model.h"

namespace cppops::stack {

// Dumps every thread of `pid` through ptrace and analyses the result like the agent path. No thread is stopped
// for longer than its own unwind (RawDump::max_pause_ns says how long that was at most), and the process as a
// whole is never stopped. options.use_signals == false stops no thread at all: kernel facts, lock owners and the
// stacks of the threads read where they sleep.
// options.capture_timeout bounds the wait for one thread to stop, options.timeout the whole walk: threads not
// stopped or not reached in time are listed without a stack.
//
// While threads are being walked, SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGTSTP are held back and delivered
// between two threads, when none is stopped; a thread left attached but not stopped (uninterruptible sleep) is
// detached by the kernel when the walk's thread exits. Permission problems come back as kPermission errors that
// say why (another user, Yama's ptrace_scope, a missing CAP_SYS_PTRACE) and what to do.
Result<StackDump> dumpThroughPtrace(pid_t pid, const DumpOptions& options);

}  // namespace cppops::stack
