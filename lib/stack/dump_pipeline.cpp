#include "stack/dump_pipeline.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include "core/bury.h"
#include "stack/analyze.h"

namespace cppops::stack {

namespace {

constexpr int kLoaderNice = 10;

std::map<pid_t, proc::TaskStat> readTaskStats(pid_t pid) {
  std::map<pid_t, proc::TaskStat> stats;
  for (pid_t tid : proc::listTasks(pid))
    if (auto s = proc::readTaskStat(pid, tid)) stats.emplace(tid, std::move(*s));
  return stats;
}

Result<std::unique_ptr<Symbolizer>> loadSymbolizer(pid_t pid) {
  // Below the thread that captures: on a busy machine this work must not preempt it while a target thread is
  // stopped for ptrace, nor compete with the target's own threads answering the agent. It is done long before
  // the capture anyway.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kLoaderNice);
  auto symbolizer = Symbolizer::forProcess(pid);
  if (symbolizer) (*symbolizer)->loadDebugInfo();
  return symbolizer;
}

}  // namespace

uint64_t elapsedNs(DumpPipeline::Clock::time_point since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(DumpPipeline::Clock::now() - since).count());
}

DumpPipeline::DumpPipeline(pid_t pid, Clock::time_point start, bool exits_after)
    : pid_(pid),
      start_(start),
      exits_after_(exits_after),
      symbolizer_future_(std::async(std::launch::async, loadSymbolizer, pid)) {}

// The future's destructor waits for its work: an early return of a source never leaves a thread behind.
DumpPipeline::~DumpPipeline() = default;

const std::map<pid_t, proc::TaskStat>& DumpPipeline::taskStats() {
  if (!have_stats_) {
    stats_ = readTaskStats(pid_);
    have_stats_ = true;
  }
  return stats_;
}

// A thread that answered the signal was in an interruptible state (S) or running (R) when its syscall file was
// read, which is all analyze() asks of the scheduler state.
void DumpPipeline::completeStats(const RawDump& raw) {
  for (const RawThread& thread : raw.threads) {
    if (stats_.count(thread.tid) != 0 || thread.status == CaptureStatus::kExited) continue;
    if (!thread.name.empty() && thread.status == CaptureStatus::kCaptured) {
      proc::TaskStat stat;
      stat.tid = thread.tid;
      stat.name = thread.name;
      stat.state = proc::parseSyscall(thread.syscall_line).kind == proc::SyscallInfo::Kind::kRunning ? 'R' : 'S';
      stats_.emplace(thread.tid, std::move(stat));
    } else if (auto stat = proc::readTaskStat(pid_, thread.tid)) {
      stats_.emplace(thread.tid, std::move(*stat));
    }
  }
}

StackDump DumpPipeline::finish(const RawDump& raw, int stack_signal, const NameFallback& fallback) {
  if (!have_stats_) completeStats(raw);
  auto symbolizer = symbolizer_future_.get();
  Symbolizer* loaded = symbolizer ? symbolizer->get() : nullptr;
  FrameSource frames = [loaded](uint64_t pc, bool is_return_address) {
    return loaded != nullptr ? loaded->symbolize(pc, is_return_address) : std::vector<SourceFrame>{};
  };
  std::string fallback_note;
  if (fallback) {
    FallbackNames named = fallback(raw, frames);
    frames = std::move(named.frames);
    fallback_note = std::move(named.note);
  }
  StackDump dump = analyze(raw, stats_, frames, stack_signal);
  if (loaded != nullptr) loaded->saveResolved();
  // The symbolizer's notes come from the modules it opened, so they are complete only now.
  if (!symbolizer) dump.notes.push_back("frames are not symbolized: " + symbolizer.error().message);
  else dump.notes.insert(dump.notes.end(), loaded->notes().begin(), loaded->notes().end());
  if (!fallback_note.empty()) dump.notes.push_back(std::move(fallback_note));
  if (exits_after_ && symbolizer) buryUntilExit(std::move(*symbolizer));
  dump.cost.total_ns = elapsedNs(start_);
  return dump;
}

}  // namespace cppops::stack
