#include "stack/dump_pipeline.h"

#include <utility>

#include "stack/analyze.h"

namespace cppops::stack {

namespace {

std::map<pid_t, proc::TaskStat> readTaskStats(pid_t pid) {
  std::map<pid_t, proc::TaskStat> stats;
  for (pid_t tid : proc::listTasks(pid))
    if (auto s = proc::readTaskStat(pid, tid)) stats.emplace(tid, std::move(*s));
  return stats;
}

Result<std::unique_ptr<Symbolizer>> loadSymbolizer(pid_t pid) {
  auto symbolizer = Symbolizer::forProcess(pid);
  if (symbolizer) (*symbolizer)->loadDebugInfo();
  return symbolizer;
}

}  // namespace

uint64_t elapsedNs(DumpPipeline::Clock::time_point since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(DumpPipeline::Clock::now() - since).count());
}

DumpPipeline::DumpPipeline(pid_t pid, Clock::time_point start)
    : pid_(pid),
      start_(start),
      stats_future_(std::async(std::launch::async, readTaskStats, pid)),
      symbolizer_future_(std::async(std::launch::async, loadSymbolizer, pid)) {}

// The futures' destructors wait for their work: an early return of a source never leaves a thread behind.
DumpPipeline::~DumpPipeline() = default;

const std::map<pid_t, proc::TaskStat>& DumpPipeline::taskStats() {
  if (!have_stats_) {
    stats_ = stats_future_.get();
    have_stats_ = true;
  }
  return stats_;
}

StackDump DumpPipeline::finish(const RawDump& raw, int stack_signal) {
  const std::map<pid_t, proc::TaskStat>& stats = taskStats();
  auto symbolizer = symbolizer_future_.get();
  StackDump dump;
  if (symbolizer) {
    dump = analyze(raw, stats, symbolizer->get(), stack_signal);
  } else {
    RawDump unsymbolized = raw;
    unsymbolized.notes.push_back("frames are not symbolized: " + symbolizer.error().message);
    dump = analyze(unsymbolized, stats, static_cast<Symbolizer*>(nullptr), stack_signal);
  }
  dump.cost.total_ns = elapsedNs(start_);
  return dump;
}

}  // namespace cppops::stack
