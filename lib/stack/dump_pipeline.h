// What every capture source (agent, ptrace) does around its capture: set up the symbolizer with its debug info,
// learn each thread's name and scheduler state, then analyse the RawDump and account for the cost. Started before
// the capture so the slow part (compressed DWARF takes tens of milliseconds) overlaps with it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>

#include "core/result.h"
#include "proc/task.h"
#include "stack/analyze.h"
#include "stack/model.h"
#include "symbolize/symbolizer.h"

namespace cppops::stack {

// Frames from a second source for the pcs the symbolizer could not name (the agent's own tables, when the CLI
// cannot read the target's binaries): given the dump and the symbolizer's frames, the frames to use instead, and
// a note for the dump when it named any ("" otherwise).
struct FallbackNames {
  FrameSource frames;
  std::string note;
};
using NameFallback = std::function<FallbackNames(const RawDump& raw, FrameSource symbolized)>;

class DumpPipeline {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts loading the symbolizer in the background. `start` is when the dump began for the user:
  // Cost::total_ns is measured from it. With `exits_after`, the symbolizer is buried (core/bury.h) rather than
  // torn down: tearing down libdwfl's tables costs milliseconds on the way to the answer.
  DumpPipeline(pid_t pid, Clock::time_point start, bool exits_after = false);
  ~DumpPipeline();
  DumpPipeline(const DumpPipeline&) = delete;
  DumpPipeline& operator=(const DumpPipeline&) = delete;

  // Every thread's stat line, read now. A source that changes what the kernel reports (ptrace stops show as 't')
  // must take these before it touches any thread.
  const std::map<pid_t, proc::TaskStat>& taskStats();

  // Symbolizes and analyses `raw` (see analyze()); stack_signal is 0 when no signal was used. Without taskStats(),
  // only the threads that did not name themselves in the capture have their stat read: at 1,000 threads the
  // reads cost more than the capture. `fallback`, when given, names what the symbolizer could not.
  StackDump finish(const RawDump& raw, int stack_signal, const NameFallback& fallback = nullptr);

 private:
  void completeStats(const RawDump& raw);

  pid_t pid_;
  Clock::time_point start_;
  bool exits_after_;
  std::future<Result<std::unique_ptr<Symbolizer>>> symbolizer_future_;
  std::map<pid_t, proc::TaskStat> stats_;
  bool have_stats_ = false;
};

// Nanoseconds since `since` on the steady clock.
uint64_t elapsedNs(DumpPipeline::Clock::time_point since);

}  // namespace cppops::stack
