// What every capture source (agent, ptrace) does around its capture: read each thread's /proc stat, set up the
// symbolizer with its debug info, then analyse the RawDump and account for the cost. Started before the capture
// so the slow parts (compressed DWARF takes tens of milliseconds) overlap with it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>

#include "core/result.h"
#include "proc/task.h"
#include "stack/model.h"
#include "symbolize/symbolizer.h"

namespace cppops::stack {

class DumpPipeline {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts reading /proc/PID/task/*/stat and loading the symbolizer in the background. `start` is when the
  // dump began for the user: Cost::total_ns is measured from it.
  DumpPipeline(pid_t pid, Clock::time_point start);
  ~DumpPipeline();
  DumpPipeline(const DumpPipeline&) = delete;
  DumpPipeline& operator=(const DumpPipeline&) = delete;

  // The threads' stat lines, waiting for them if they are still being read. A source that changes what the
  // kernel reports (ptrace stops show as 't') must take these before it touches any thread.
  const std::map<pid_t, proc::TaskStat>& taskStats();

  // Symbolizes and analyses `raw` (see analyze()); stack_signal is 0 when no signal was used.
  StackDump finish(const RawDump& raw, int stack_signal);

 private:
  pid_t pid_;
  Clock::time_point start_;
  std::future<std::map<pid_t, proc::TaskStat>> stats_future_;
  std::future<Result<std::unique_ptr<Symbolizer>>> symbolizer_future_;
  std::map<pid_t, proc::TaskStat> stats_;
  bool have_stats_ = false;
};

// Nanoseconds since `since` on the steady clock.
uint64_t elapsedNs(DumpPipeline::Clock::time_point since);

}  // namespace cppops::stack
