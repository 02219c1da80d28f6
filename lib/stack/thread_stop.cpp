#include "stack/thread_stop.h"

#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "proc/ptrace_access.h"
#include "proc/task.h"

namespace cppops::stack {

namespace {

using Clock = std::chrono::steady_clock;

// A slow stop is checked this often for uninterruptible sleep, which would make waiting on pointless.
constexpr std::chrono::milliseconds kStateCheckEvery{1};
// Without a timer (timer_create failed), the wait polls instead, at this interval.
constexpr timespec kPollInterval{0, 20'000};

// Runs only to make waitpid() return EINTR.
void onWake(int) {}

std::atomic<bool> g_wake_installed{false};

// /proc/PID/task/TID/schedstat: nanoseconds the thread ran and waited for a CPU, since it started.
class SchedStat {
 public:
  SchedStat(pid_t pid, pid_t tid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/schedstat";
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~SchedStat() {
    if (fd_ >= 0) ::close(fd_);
  }
  SchedStat(const SchedStat&) = delete;
  SchedStat& operator=(const SchedStat&) = delete;

  // Running plus waiting to run, or nullopt when the kernel does not say.
  std::optional<uint64_t> busyNs() const {
    if (fd_ < 0) return std::nullopt;
    char text[96];
    ssize_t n = ::pread(fd_, text, sizeof text - 1, 0);
    if (n <= 0) return std::nullopt;
    text[n] = '\0';
    char* end = nullptr;
    unsigned long long ran = std::strtoull(text, &end, 10);
    if (end == text) return std::nullopt;
    unsigned long long waited = std::strtoull(end, nullptr, 10);
    return ran + waited;
  }

 private:
  int fd_ = -1;
};

bool inUninterruptibleSleep(pid_t pid, pid_t tid) {
  auto stat = proc::readTaskStat(pid, tid);
  return stat.ok() && stat->state == 'D';
}

}  // namespace

// The highest real-time signal: nothing else in cppops uses it.
int StopWaitSignal::number() { return SIGRTMAX; }
bool StopWaitSignal::installed() { return g_wake_installed.load(std::memory_order_acquire); }

StopWaitSignal::StopWaitSignal() {
  struct sigaction action{};
  action.sa_handler = onWake;
  sigemptyset(&action.sa_mask);  // and no SA_RESTART: the point is to interrupt waitpid()
  g_wake_installed.store(sigaction(number(), &action, &previous_) == 0, std::memory_order_release);
}

StopWaitSignal::~StopWaitSignal() {
  // Every ThreadStopper is gone by now, and timer_delete() dropped any expiry still queued, so the previous
  // disposition never sees one.
  if (g_wake_installed.exchange(false)) sigaction(number(), &previous_, nullptr);
}

ThreadStopper::ThreadStopper() {
  if (!StopWaitSignal::installed()) return;
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = StopWaitSignal::number();
  event._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));  // glibc < 2.37 has no sigev_notify_thread_id
  have_timer_ = timer_create(CLOCK_MONOTONIC, &event, &timer_) == 0;
}

ThreadStopper::~ThreadStopper() {
  if (have_timer_) timer_delete(timer_);
}

bool ThreadStopper::setTimer(std::chrono::nanoseconds after) {
  if (!have_timer_) return false;
  itimerspec spec{};  // all zero disarms
  spec.it_value.tv_sec = static_cast<time_t>(after.count() / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(after.count() % 1'000'000'000);
  return timer_settime(timer_, 0, &spec, nullptr) == 0;
}

ThreadStop ThreadStopper::stop(pid_t pid, pid_t tid, std::chrono::milliseconds limit) {
  // No options: no PTRACE_O_EXITKILL (the target must outlive us) and no event tracing.
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    const int error = errno;
    if (error == ESRCH) return ThreadStop(tid, ThreadStop::Outcome::kExited);
    if (error == EPERM && proc::tracerOf(pid, tid) != 0) return ThreadStop(tid, ThreadStop::Outcome::kAlreadyTraced);
    ThreadStop denied(tid, ThreadStop::Outcome::kDenied);
    denied.error_ = error;
    return denied;
  }
  ThreadStop held(tid, ThreadStop::Outcome::kTimedOut);
  // Only a sleeping thread's figures are up to date: a running one's CPU time and a queued one's wait are added
  // up later, so for those the interrupt's time stands.
  const SchedStat sched(pid, tid);
  const auto state = proc::readTaskStat(pid, tid);
  const uint64_t kUnknown = UINT64_MAX;
  const uint64_t busy_before = state && state->state == 'S' ? sched.busyNs().value_or(kUnknown) : kUnknown;
  const auto interrupted_at = Clock::now();
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    held.outcome_ = ThreadStop::Outcome::kExited;  // only ESRCH is possible right after a successful seize
    return held;
  }

  const auto deadline = interrupted_at + limit;
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return held;
    const bool armed = setTimer(std::min<Clock::duration>(deadline - now, kStateCheckEvery));
    int status = 0;
    pid_t waited = waitpid(tid, &status, __WALL | (armed ? 0 : WNOHANG));
    const int error = errno;
    if (armed) setTimer(std::chrono::nanoseconds(0));
    if (waited == tid) {
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        held.outcome_ = ThreadStop::Outcome::kExited;
        return held;
      }
      if (WIFSTOPPED(status)) {
        // PTRACE_EVENT_STOP is our interrupt (or a group stop, which detaching leaves in place); any other stop
        // is a signal arriving meanwhile, to be delivered when we let go.
        if ((status >> 16) != PTRACE_EVENT_STOP) held.pending_signal_ = WSTOPSIG(status);
        held.outcome_ = ThreadStop::Outcome::kStopped;
        held.attached_ = true;
        held.stopped_at_ = interrupted_at;
        const uint64_t busy_after = busy_before == kUnknown ? kUnknown : sched.busyNs().value_or(kUnknown);
        if (busy_after != kUnknown && busy_after >= busy_before)
          held.stopped_at_ =
              std::min(interrupted_at + std::chrono::nanoseconds(busy_after - busy_before), Clock::now());
        return held;
      }
      continue;
    }
    if (waited < 0 && error != EINTR) {  // ECHILD: it has gone and been reaped
      held.outcome_ = ThreadStop::Outcome::kExited;
      return held;
    }
    if (inUninterruptibleSleep(pid, tid)) return held;
    if (!armed) nanosleep(&kPollInterval, nullptr);
  }
}

ThreadStop::ThreadStop(ThreadStop&& other) noexcept
    : tid_(other.tid_),
      outcome_(other.outcome_),
      error_(other.error_),
      pending_signal_(other.pending_signal_),
      attached_(std::exchange(other.attached_, false)),
      stopped_at_(other.stopped_at_),
      held_ns_(other.held_ns_) {}

ThreadStop::~ThreadStop() { resume(); }

uint64_t ThreadStop::resume() {
  if (!attached_) return held_ns_;
  attached_ = false;
  // ESRCH here means SIGKILL took it out of the stop: it is on its way out, nothing is left to undo.
  ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(pending_signal_)));
  held_ns_ = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - stopped_at_).count());
  return held_ns_;
}

}  // namespace cppops::stack
