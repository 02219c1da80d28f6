#include "stack/ptrace_source.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "core/deferred_signals.h"
#include "proc/process.h"
#include "proc/ptrace_access.h"
#include "proc/syscalls.h"
#include "proc/task.h"
#include "protocol/lock_window.h"
#include "stack/dump_pipeline.h"
#include "stack/thread_reader.h"
#include "stack/thread_stop.h"

namespace cppops::stack {

namespace {

using Clock = DumpPipeline::Clock;

// The futex word a thread sleeps on, if it may be one. A futex wait with a timeout that an earlier stop
// interrupted is resumed through restart_syscall(2), whose first argument is still the futex address; which
// call it really is only the frames tell (analyze() does), so its window is copied on the chance.
std::optional<uint64_t> futexAddress(const std::string& syscall_line) {
  proc::SyscallInfo info = proc::parseSyscall(syscall_line);
  if (std::optional<proc::FutexCall> call = proc::decodeFutex(info)) return call->uaddr;
  if (info.kind == proc::SyscallInfo::Kind::kInSyscall && info.number == SYS_restart_syscall) return info.args[0];
  return std::nullopt;
}

// The bytes around the futex word the thread sleeps on, as the agent copies them (protocol/lock_window.h).
void readLockWindow(pid_t pid, RawThread& thread) {
  std::optional<uint64_t> uaddr = futexAddress(thread.syscall_line);
  if (!uaddr || *uaddr < protocol::kLockWindowBefore) return;
  for (uint64_t start : {*uaddr - protocol::kLockWindowBefore, *uaddr}) {
    std::vector<uint8_t> bytes(protocol::kLockWindowSize);
    iovec local{bytes.data(), bytes.size()};
    iovec remote{reinterpret_cast<void*>(start), bytes.size()};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n > 0) {
      bytes.resize(static_cast<size_t>(n));
      thread.lock_window_address = start;
      thread.lock_window = std::move(bytes);
      return;
    }
  }
}

std::string alreadyTracedReason(pid_t pid, pid_t tid) {
  pid_t tracer = proc::tracerOf(pid, tid);
  auto info = proc::readProcess(tracer);
  return "already traced by " + proc::describeProcess(tracer, info ? info->name : "") +
         " (a debugger?), so it could not be stopped";
}

// The threads of one dump and what became of each, walked one at a time: at most one thread of the target is
// stopped at any moment.
class Walk {
 public:
  Walk(pid_t pid, const DumpOptions& options, const std::map<pid_t, proc::TaskStat>& stats)
      : pid_(pid), options_(options), deadline_(Clock::now() + options.timeout) {
    for (const auto& [tid, stat] : stats) {
      RawThread thread;
      thread.tid = tid;
      threads_.push_back(std::move(thread));
      kernel_states_.push_back(stat.state);
    }
  }

  bool done() const { return failure_ || next_ >= threads_.size(); }
  const std::optional<Error>& failure() const { return failure_; }

  void finish(RawDump& raw) {
    raw.threads = std::move(threads_);
    raw.max_pause_ns = max_pause_ns_;
    raw.read_asleep = read_asleep_;
  }

  // Walks the threads not walked yet until all are done, one fails, or a held signal is pending. Runs on a thread
  // made for it (readWithSignalsHeld), again until done().
  void walk() {
    pthread_setname_np(pthread_self(), "cppops-ptrace");
    auto reader = ThreadReader::create(pid_, options_.use_signals);
    if (!reader) {
      failure_ = reader.error();
      return;
    }
    for (; next_ < threads_.size() && !DeferredSignals::pending(); ++next_) {
      RawThread& thread = threads_[next_];
      // Counted before the syscall line is read: reading the thread where it sleeps then needs no second read of
      // that line (ThreadReader::readAsleep).
      Result<proc::RunCount> runs = proc::readRunCount(pid_, thread.tid);
      thread.syscall_line = readSyscallLine(pid_, thread.tid);
      if (Clock::now() >= deadline_) {
        thread.status = CaptureStatus::kNoAnswer;
        thread.no_stack_reason =
            fmt::format("not reached within the {} ms deadline (--timeout)", options_.timeout.count());
      } else if (Status captured = capture(thread, kernel_states_[next_], **reader,
                                           runs ? std::optional(*runs) : std::nullopt);
                 !captured) {
        failure_ = captured.error();
        return;
      }
      readLockWindow(pid_, thread);
      // A thread that did not stop in time stays attached, to enter its stop when it gets there and be let go only
      // when this thread ends: so this thread ends now, and the walk goes on from a new one.
      if (timed_out_) {
        timed_out_ = false;
        ++next_;
        return;
      }
    }
  }

 private:
  // Without stops (--no-signal), only threads that can be read where they sleep get a stack. `runs_before_line`:
  // the thread's run count, read before its syscall line.
  Status capture(RawThread& thread, char kernel_state, ThreadReader& reader,
                 std::optional<proc::RunCount> runs_before_line) {
    thread.status = CaptureStatus::kNoAnswer;
    if (kernel_state == 'Z' || kernel_state == 'X') {
      thread.no_stack_reason = "exited (a zombie until the process reaps it): nothing left to unwind";
      return {};
    }
    // Never stopped: a ptrace stop makes some waits return early (ptrace(2), BUGS: epoll_wait gives EINTR).
    if (ThreadReader::Asleep asleep = reader.readAsleep(thread.tid, thread.syscall_line, runs_before_line);
        !asleep.pcs.empty()) {
      thread.status = CaptureStatus::kCaptured;
      thread.pcs = std::move(asleep.pcs);
      ++read_asleep_;
      return {};
    }
    if (!reader.mayStop()) {
      thread.status = CaptureStatus::kNotRequested;
      return {};
    }
    // It would not stop until the kernel lets go of it; analyze() names the sleep and where it is.
    if (kernel_state == 'D') return {};
    // A busy machine may take a while to schedule the thread into its stop; one in uninterruptible sleep is given
    // up on as soon as that shows, so the limit only matters for a thread that keeps running.
    ThreadReader::Stopped stopped = reader.readStopped(thread.tid, options_.capture_timeout);
    switch (stopped.outcome) {
      case ThreadStop::Outcome::kStopped:
        thread.handler_ns = stopped.pause_ns;
        max_pause_ns_ = std::max(max_pause_ns_, thread.handler_ns);
        ++stopped_;
        if (stopped.copy_error) {
          thread.no_stack_reason = "stopped, but " + stopped.copy_error->message;
          return {};
        }
        thread.status = CaptureStatus::kCaptured;
        thread.pcs = std::move(stopped.pcs);
        return {};
      case ThreadStop::Outcome::kExited:
        thread.status = CaptureStatus::kExited;
        return {};
      case ThreadStop::Outcome::kTimedOut:
        timed_out_ = true;
        thread.no_stack_reason =
            fmt::format("did not stop within {} ms (--capture-timeout)", options_.capture_timeout.count());
        if (auto now = proc::readTaskStat(pid_, thread.tid); now && now->state == 'D')
          thread.no_stack_reason = "";  // analyze() names the uninterruptible sleep and where it is
        return {};
      case ThreadStop::Outcome::kAlreadyTraced:
        thread.no_stack_reason = alreadyTracedReason(pid_, thread.tid);
        return {};
      case ThreadStop::Outcome::kDenied:
        // Refused for the whole process (no thread could be stopped yet), or for this thread alone.
        if (stopped_ == 0) return proc::explainPtraceDenied(proc::readPtraceFacts(pid_), stopped.error, "stack");
        thread.no_stack_reason = std::string("could not be stopped: ") + std::strerror(stopped.error);
        return {};
    }
    return {};
  }

  pid_t pid_;
  const DumpOptions& options_;
  const Clock::time_point deadline_;
  std::vector<RawThread> threads_;  // ascending tid, like the stats they come from
  std::vector<char> kernel_states_;
  size_t next_ = 0;                 // the walker's position; read by the caller only after it joined
  size_t stopped_ = 0;
  uint64_t max_pause_ns_ = 0;
  uint32_t read_asleep_ = 0;
  bool timed_out_ = false;  // the thread being captured did not stop in time
  std::optional<Error> failure_;
};

}  // namespace

Result<StackDump> dumpThroughPtrace(pid_t pid, const DumpOptions& options) {
  const auto start = Clock::now();
  if (Status access = checkPtraceTarget(pid, "stack", "dump its own stacks"); !access) return access.error();

  DumpPipeline pipeline(pid, start, options.exits_after);
  // Taken before any thread is stopped: a stopped thread reads as 't'.
  Walk walk(pid, options, pipeline.taskStats());
  const auto walk_start = Clock::now();
  // The walk goes on where it stopped after a held signal.
  readWithSignalsHeld([&] { walk.walk(); }, [&] { return walk.done(); });
  if (walk.failure()) return *walk.failure();

  RawDump raw;
  raw.pid = pid;
  raw.source = "ptrace";
  walk.finish(raw);
  raw.total_ns = elapsedNs(walk_start);
  return pipeline.finish(raw, 0);
}

}  // namespace cppops::stack
