// Stopping one thread of another process, and only that thread, for as long as it takes to read its stack.
//
// PTRACE_SEIZE attaches without stopping anything and PTRACE_INTERRUPT then stops that one thread (PTRACE_ATTACH
// would send SIGSTOP, which stops every thread of the process). The kernel restarts a blocking call the stop
// interrupted once the thread runs again, except the few that fail with EINTR after any stop (epoll_wait, semop,
// sigtimedwait...: see signal(7)). Every stop ends in PTRACE_DETACH, which also hands back a signal that arrived
// during the stop. If the tracing thread exits (or cppops is killed) with a thread still attached, the kernel
// detaches it and lets it run: a thread is never left stopped.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <time.h>

#include <chrono>
#include <cstdint>

namespace cppops::stack {

class ThreadStop {
 public:
  enum class Outcome {
    kStopped,        // stopped: read it, then resume()
    kExited,         // ended before it could be stopped
    kTimedOut,       // did not stop in time (uninterruptible sleep); it stays attached, not stopped, until the
                     // tracing thread exits
    kAlreadyTraced,  // another tracer (a debugger) holds it
    kDenied,         // the kernel refused the attach; error() has the errno
  };

  ThreadStop(ThreadStop&& other) noexcept;
  ThreadStop& operator=(ThreadStop&&) = delete;
  ThreadStop(const ThreadStop&) = delete;
  ThreadStop& operator=(const ThreadStop&) = delete;
  ~ThreadStop();  // resume()

  Outcome outcome() const { return outcome_; }
  int error() const { return error_; }

  // Lets the thread run again (detaching it). Returns how long it was stopped: from its entry into the stop to
  // the detach. Idempotent.
  uint64_t resume();

 private:
  friend class ThreadStopper;
  ThreadStop(pid_t tid, Outcome outcome) : tid_(tid), outcome_(outcome) {}

  pid_t tid_ = 0;
  Outcome outcome_ = Outcome::kDenied;
  int error_ = 0;
  int pending_signal_ = 0;  // a signal that arrived during the stop, delivered on detach
  bool attached_ = false;   // seized and in a ptrace-stop: PTRACE_DETACH is still owed
  // When the thread entered its stop. Woken from a sleep by the interrupt, it may wait for a CPU and run (in the
  // kernel) before it gets there, which is not time it is stopped: the kernel's schedstat accounting tells how
  // long that took. For a thread that was not sleeping, the interrupt's time: an upper bound.
  std::chrono::steady_clock::time_point stopped_at_{};
  uint64_t held_ns_ = 0;
};

// The signal that ends a wait for a stop that takes too long: its handler does nothing, and is installed without
// SA_RESTART so that the wait (waitpid) returns. Create one, on any thread, before any ThreadStopper and keep it
// until the last is gone; one at a time per process.
class StopWaitSignal {
 public:
  StopWaitSignal();
  ~StopWaitSignal();  // restores the previous disposition
  StopWaitSignal(const StopWaitSignal&) = delete;
  StopWaitSignal& operator=(const StopWaitSignal&) = delete;

  static int number();
  static bool installed();

 private:
  struct sigaction previous_{};
};

// Stops threads for the thread that creates it. Must be created, used and destroyed on that one thread: ptrace
// ties a tracee to the thread that attached it. Several may work at once, one per tracing thread.
class ThreadStopper {
 public:
  ThreadStopper();
  ~ThreadStopper();
  ThreadStopper(const ThreadStopper&) = delete;
  ThreadStopper& operator=(const ThreadStopper&) = delete;

  // Attaches to `tid` of process `pid` and stops it, waiting at most `limit` for the stop.
  ThreadStop stop(pid_t pid, pid_t tid, std::chrono::milliseconds limit);

 private:
  // The wait for a stop sleeps in waitpid(), so the CPU is free for the tracee to reach its stop on; a timer
  // aimed at this thread (StopWaitSignal) ends a wait that takes too long. 0 disarms; false without a timer,
  // in which case the wait polls.
  bool setTimer(std::chrono::nanoseconds after);

  timer_t timer_{};
  bool have_timer_ = false;
};

}  // namespace cppops::stack
