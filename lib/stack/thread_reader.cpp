#include "stack/thread_reader.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "core/deferred_signals.h"
#include "proc/process.h"
#include "proc/ptrace_access.h"
#include "proc/syscalls.h"
#include "proc/task.h"

namespace cppops::stack {

namespace {

// The reading thread's nice value, where it may not run real-time (see ThreadReader::create()).
constexpr int kReaderNice = -10;

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

}  // namespace

std::string readSyscallLine(pid_t pid, pid_t tid) {
  std::string line =
      proc::readFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall", 256).value_or("");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\0')) line.pop_back();
  return line;
}

Status checkPtraceTarget(pid_t pid, const char* command, const char* doing) {
  if (!proc::readProcess(pid))
    return makeError(ErrorKind::kNoProcess,
                     "process " + std::to_string(pid) + " does not exist; find the process with `ps` or `cppops tree`");
  if (pid == getpid())
    return makeError(ErrorKind::kUsage,
                     std::string("cppops cannot ") + doing + "; give the PID of another process");
  if (proc::readFile("/proc/" + std::to_string(pid) + "/syscall", 256)) return {};
  const int error = errno;
  if (error == ENOENT || error == ESRCH)
    return makeError(ErrorKind::kNoProcess, "process " + std::to_string(pid) + " has exited");
  return proc::explainPtraceDenied(proc::readPtraceFacts(pid), error, command);
}

void readWithSignalsHeld(const std::function<void()>& read_some, const std::function<bool()>& done) {
  DeferredSignals signals;
  StopWaitSignal stop_wait;
  for (;;) {
    std::thread reader(read_some);
    reader.join();
    if (done()) return;
    signals.deliverHeld();
  }
}

Result<std::unique_ptr<ThreadReader>> ThreadReader::create(pid_t pid, bool may_stop) {
  auto unwinder = RemoteUnwinder::create(pid);
  if (!unwinder) return unwinder.error();
  return std::unique_ptr<ThreadReader>(new ThreadReader(pid, std::move(*unwinder), may_stop));
}

ThreadReader::ThreadReader(pid_t pid, std::unique_ptr<RemoteUnwinder> unwinder, bool may_stop)
    : pid_(pid), unwinder_(std::move(unwinder)) {
  if (!may_stop) return;
  stopper_.emplace();
  // Every moment this thread waits for a CPU while it holds a thread stopped adds to that thread's stop. An
  // ordinary thread can be kept waiting for a whole scheduler slice (milliseconds) by a CPU-bound thread of the
  // target, so while it holds a thread, and only then, it runs at the lowest real-time priority, which gets a CPU
  // at once: from the interrupt to the release, a few tens of microseconds, mostly asleep in waitpid(). That
  // needs CAP_SYS_NICE or an RLIMIT_RTPRIO; without, it asks for a better nice value instead (also CAP_SYS_NICE),
  // or carries on as it is.
  realtime_ = setRealtime(true) && setRealtime(false);
  if (!realtime_) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kReaderNice);
}

ThreadReader::~ThreadReader() = default;

ThreadReader::Asleep ThreadReader::readAsleep(pid_t tid, const std::string& syscall_line,
                                              std::optional<proc::RunCount> runs_before_line) {
  Asleep result;
  const proc::SyscallInfo where = proc::parseSyscall(syscall_line);
  if (where.kind != proc::SyscallInfo::Kind::kInSyscall && where.kind != proc::SyscallInfo::Kind::kBlockedNotInSyscall)
    return result;
  const bool counted_before = runs_before_line && runs_before_line->arrivals;
  Result<proc::RunCount> runs = counted_before ? *runs_before_line : proc::readRunCount(pid_, tid);
  if (!runs) return result;
  // A count of arrivals must come before a line that finds the thread asleep where syscall_line says.
  if (!counted_before && runs->arrivals && readSyscallLine(pid_, tid) != syscall_line) {
    result.ran = true;
    return result;
  }
  std::vector<uint64_t> pcs = unwinder_->unwindAsleep(where.pc, where.sp, kMaxFrames);
  // A walk that failed because the stack changed under it is no reason not to try again.
  Result<proc::RunCount> runs_after = proc::readRunCount(pid_, tid);
  result.ran = (!runs->arrivals && !pcs.empty() && readSyscallLine(pid_, tid) != syscall_line) ||
               (runs_after && *runs_after != *runs);
  if (pcs.empty() || result.ran || !runs_after) return result;
  result.pcs = std::move(pcs);
  if (runs->arrivals) result.arrivals = runs->count;
  return result;
}

ThreadReader::Stopped ThreadReader::readStopped(pid_t tid, std::chrono::milliseconds limit) {
  Stopped result;
  std::optional<RealtimeScope> urgent(std::in_place, realtime_);  // declared first: ends after `stop` resumes
  ThreadStop stop = stopper_->stop(pid_, tid, limit);
  result.outcome = stop.outcome();
  result.error = stop.error();
  if (result.outcome != ThreadStop::Outcome::kStopped) return result;
  Status copied = unwinder_->snapshot(tid);
  result.pause_ns = stop.resume();
  urgent.reset();  // the unwind works on the copy, at the ordinary priority
  if (!copied) {
    result.copy_error = copied.error();
    return result;
  }
  result.pcs = unwinder_->unwindSnapshot(kMaxFrames);
  return result;
}

}  // namespace cppops::stack
