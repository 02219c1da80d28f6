#include "stack/ptrace_source.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/deferred_signals.h"
#include "proc/process.h"
#include "proc/ptrace_access.h"
#include "proc/syscalls.h"
#include "proc/task.h"
#include "protocol/lock_window.h"
#include "stack/dump_pipeline.h"
#include "stack/remote_unwinder.h"
#include "stack/thread_stop.h"

namespace cppops::stack {

namespace {

using Clock = DumpPipeline::Clock;

// The agent's limit too (agent/sigsafe/capture.h), so both sources show stacks to the same depth.
constexpr size_t kMaxFrames = 128;
// The walking thread's nice value while it works, where it may not run real-time (see Walk::walk()).
constexpr int kWalkerNice = -10;

bool setRealtime(bool on) {
  sched_param param{};
  param.sched_priority = on ? sched_get_priority_min(SCHED_FIFO) : 0;
  return pthread_setschedparam(pthread_self(), on ? SCHED_FIFO : SCHED_OTHER, &param) == 0;
}

// The calling thread at the lowest real-time priority for the scope's duration, when `allowed`.
class RealtimeScope {
 public:
  explicit RealtimeScope(bool allowed) : on_(allowed && setRealtime(true)) {}
  ~RealtimeScope() {
    if (on_) setRealtime(false);
  }
  RealtimeScope(const RealtimeScope&) = delete;
  RealtimeScope& operator=(const RealtimeScope&) = delete;

 private:
  bool on_;
};

std::string taskFile(pid_t pid, pid_t tid, const char* name) {
  return "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + name;
}

// What the thread is blocked in, read before it is stopped: a stopped thread reads as not in a syscall.
std::string readSyscallLine(pid_t pid, pid_t tid) {
  std::string line = proc::readFile(taskFile(pid, tid, "syscall"), 256).value_or("");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\0')) line.pop_back();
  return line;
}

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

  // Walks the threads not walked yet until all are done, one fails, or a deferred signal is pending. Runs on a
  // thread of its own, made for the purpose, so that whatever happens on the way the kernel detaches what it
  // still has attached when that thread exits.
  void walkSome() {
    std::thread walker([this] { walk(); });
    walker.join();
  }

  bool done() const { return failure_ || next_ >= threads_.size(); }
  const std::optional<Error>& failure() const { return failure_; }

  void finish(RawDump& raw) {
    raw.threads = std::move(threads_);
    raw.max_pause_ns = max_pause_ns_;
    raw.read_asleep = read_asleep_;
  }

 private:
  void walk() {
    pthread_setname_np(pthread_self(), "cppops-ptrace");
    // Every moment this thread waits for a CPU while it holds a thread stopped adds to that thread's stop. An
    // ordinary thread can be kept waiting for a whole scheduler slice (milliseconds) by a CPU-bound thread of the
    // target, so while it holds a thread, and only then, it runs at the lowest real-time priority, which gets a
    // CPU at once: from the interrupt to the release, a few tens of microseconds, mostly asleep in waitpid().
    // That needs CAP_SYS_NICE or an RLIMIT_RTPRIO; without, it asks for a better nice value instead (also
    // CAP_SYS_NICE), or carries on as it is.
    realtime_ = setRealtime(true) && setRealtime(false);
    if (!realtime_) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kWalkerNice);
    auto unwinder = RemoteUnwinder::create(pid_);
    if (!unwinder) {
      failure_ = unwinder.error();
      return;
    }
    std::optional<ThreadStopper> stopper;
    if (options_.use_signals) stopper.emplace();
    for (; next_ < threads_.size() && !DeferredSignals::pending(); ++next_) {
      RawThread& thread = threads_[next_];
      thread.syscall_line = readSyscallLine(pid_, thread.tid);
      if (Clock::now() >= deadline_) {
        thread.status = CaptureStatus::kNoAnswer;
        thread.no_stack_reason =
            fmt::format("not reached within the {} ms deadline (--timeout)", options_.timeout.count());
      } else if (Status captured = capture(thread, kernel_states_[next_], stopper, **unwinder); !captured) {
        failure_ = captured.error();
        return;
      }
      readLockWindow(pid_, thread);
    }
  }

  // Without `stopper` (--no-signal), only threads that can be read asleep get a stack.
  Status capture(RawThread& thread, char kernel_state, std::optional<ThreadStopper>& stopper,
                 RemoteUnwinder& unwinder) {
    thread.status = CaptureStatus::kNoAnswer;
    if (kernel_state == 'Z' || kernel_state == 'X') {
      thread.no_stack_reason = "exited (a zombie until the process reaps it): nothing left to unwind";
      return {};
    }
    if (readAsleep(thread, unwinder)) return {};
    if (!stopper) {
      thread.status = CaptureStatus::kNotRequested;
      return {};
    }
    // It would not stop until the kernel lets go of it; analyze() names the sleep and where it is.
    if (kernel_state == 'D') return {};
    // A busy machine may take a while to schedule the thread into its stop; one in uninterruptible sleep is given
    // up on as soon as that shows, so the limit only matters for a thread that keeps running.
    std::optional<RealtimeScope> urgent(std::in_place, realtime_);  // declared first: ends after `stop` resumes
    ThreadStop stop = stopper->stop(pid_, thread.tid, options_.capture_timeout);
    switch (stop.outcome()) {
      case ThreadStop::Outcome::kStopped: {
        Status copied = unwinder.snapshot(thread.tid);
        thread.handler_ns = stop.resume();
        urgent.reset();  // the unwind works on the copy, at the ordinary priority
        max_pause_ns_ = std::max(max_pause_ns_, thread.handler_ns);
        ++stopped_;
        if (!copied) {
          thread.no_stack_reason = "stopped, but " + copied.error().message;
          return {};
        }
        thread.status = CaptureStatus::kCaptured;
        thread.pcs = unwinder.unwindSnapshot(kMaxFrames);
        return {};
      }
      case ThreadStop::Outcome::kExited:
        thread.status = CaptureStatus::kExited;
        return {};
      case ThreadStop::Outcome::kTimedOut:
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
        if (stopped_ == 0) return proc::explainPtraceDenied(proc::readPtraceFacts(pid_), stop.error());
        thread.no_stack_reason = std::string("could not be stopped: ") + std::strerror(stop.error());
        return {};
    }
    return {};
  }

  // A thread asleep in the kernel is read where it sleeps, never stopped: a ptrace stop makes some waits return
  // early (ptrace(2), BUGS: epoll_wait gives EINTR), and each stop is a pause. The kernel writes the syscall file
  // only with the thread off the CPU; had the thread run at any moment after the first count of its switches, it
  // would have been switched out again before the second syscall read, and the count would have moved. The same
  // line and the same count mean it ran no instruction, and its stack stood still, all along the walk.
  bool readAsleep(RawThread& thread, RemoteUnwinder& unwinder) {
    const proc::SyscallInfo where = proc::parseSyscall(thread.syscall_line);
    if (where.kind != proc::SyscallInfo::Kind::kInSyscall &&
        where.kind != proc::SyscallInfo::Kind::kBlockedNotInSyscall)
      return false;
    Result<uint64_t> switches = proc::readContextSwitches(pid_, thread.tid);
    if (!switches) return false;
    std::vector<uint64_t> pcs = unwinder.unwindAsleep(where.pc, where.sp, kMaxFrames);
    if (pcs.empty() || readSyscallLine(pid_, thread.tid) != thread.syscall_line) return false;
    Result<uint64_t> switches_after = proc::readContextSwitches(pid_, thread.tid);
    if (!switches_after || *switches_after != *switches) return false;
    thread.status = CaptureStatus::kCaptured;
    thread.pcs = std::move(pcs);
    ++read_asleep_;
    return true;
  }

  pid_t pid_;
  const DumpOptions& options_;
  const Clock::time_point deadline_;
  std::vector<RawThread> threads_;  // ascending tid, like the stats they come from
  std::vector<char> kernel_states_;
  size_t next_ = 0;                 // the walker's position; read by the caller only after it joined
  size_t stopped_ = 0;
  bool realtime_ = false;  // the walker may run real-time while it holds a thread
  uint64_t max_pause_ns_ = 0;
  uint32_t read_asleep_ = 0;
  std::optional<Error> failure_;
};

// The access ptrace needs is also what /proc/PID/syscall needs: checking it first turns a refusal into one
// explained error instead of a thousand threads without stacks.
Status checkAccess(pid_t pid) {
  if (proc::readFile("/proc/" + std::to_string(pid) + "/syscall", 256)) return {};
  const int error = errno;
  if (error == ENOENT || error == ESRCH)
    return makeError(ErrorKind::kNoProcess, "process " + std::to_string(pid) + " has exited");
  return proc::explainPtraceDenied(proc::readPtraceFacts(pid), error);
}

}  // namespace

Result<StackDump> dumpThroughPtrace(pid_t pid, const DumpOptions& options) {
  const auto start = Clock::now();
  if (!proc::readProcess(pid))
    return makeError(ErrorKind::kNoProcess,
                     "process " + std::to_string(pid) + " does not exist; find the process with `ps` or `cppops tree`");
  if (pid == getpid())
    return makeError(ErrorKind::kUsage, "cppops cannot dump its own stacks; give the PID of another process");
  if (Status access = checkAccess(pid); !access) return access.error();

  DumpPipeline pipeline(pid, start, options.exits_after);
  // Taken before any thread is stopped: a stopped thread reads as 't'.
  Walk walk(pid, options, pipeline.taskStats());
  const auto walk_start = Clock::now();
  {
    DeferredSignals signals;
    StopWaitSignal stop_wait;
    for (;;) {
      walk.walkSome();
      if (walk.done()) break;
      // A held signal: the walker has let go of its thread and exited, so it may take effect now. If the process
      // lives on (Ctrl-Z then fg), the walk carries on where it stopped.
      signals.deliverHeld();
    }
  }
  if (walk.failure()) return *walk.failure();

  RawDump raw;
  raw.pid = pid;
  raw.source = "ptrace";
  walk.finish(raw);
  raw.total_ns = elapsedNs(walk_start);
  return pipeline.finish(raw, 0);
}

}  // namespace cppops::stack
