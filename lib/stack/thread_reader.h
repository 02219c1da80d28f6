// Reading the threads of another process one at a time, as gently as each allows: a thread asleep in the kernel
// is read where it sleeps, never touched; any other is stopped with ptrace for as long as it takes to copy its
// registers and stack (thread_stop.h), and its copy is unwound while it runs on. Stack dumps and profiles taken
// through ptrace read threads this way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "proc/task.h"
#include "stack/remote_unwinder.h"
#include "stack/thread_stop.h"

namespace cppops::stack {

// The deepest stack either way reads, as the agent's limit (agent/sigsafe/capture.h), so that every source shows
// stacks to the same depth.
constexpr size_t kMaxFrames = 128;

// /proc/PID/task/TID/syscall without its line end; "" when unreadable (the thread is gone).
std::string readSyscallLine(pid_t pid, pid_t tid);

// What reading the threads of `pid` through ptrace for cppops `command` ("stack") needs: that the process exists,
// is not this process (`doing` names the command's work for the message: "dump its own stacks"), and that ptrace
// is allowed. The access ptrace needs is
// also what /proc/PID/syscall needs: checking it first turns a refusal into one explained error (kNoProcess or
// kPermission, saying what to do) instead of a thousand threads without stacks.
Status checkPtraceTarget(pid_t pid, const char* command, const char* doing);

// Runs `read_some` on a thread made for it, again and again until `done()`: ptrace ties a stopped thread to the
// thread that stopped it, and the kernel lets it go when that thread ends, so nothing stays stopped whatever
// happens. Meanwhile Ctrl-C, SIGTERM, SIGHUP, SIGQUIT and Ctrl-Z are held back (DeferredSignals): `read_some`
// returns when one is pending, with no thread stopped, and it takes effect then; if cppops lives on (Ctrl-Z, then
// fg), reading carries on.
void readWithSignalsHeld(const std::function<void()>& read_some, const std::function<bool()>& done);

// Must be created, used and destroyed on one thread (ptrace ties a tracee to the thread that attached it), made
// for the purpose: if it ends with a thread still attached, the kernel detaches that thread and lets it run.
class ThreadReader {
 public:
  // `may_stop` false: threads are only ever read where they sleep (stack --no-signal).
  static Result<std::unique_ptr<ThreadReader>> create(pid_t pid, bool may_stop);
  ~ThreadReader();
  ThreadReader(const ThreadReader&) = delete;
  ThreadReader& operator=(const ThreadReader&) = delete;

  bool mayStop() const { return stopper_.has_value(); }

  struct Asleep {
    std::vector<uint64_t> pcs;  // empty when there is no stack
    bool ran = false;           // no stack because the thread ran while it was read: another try may have one
    // With a stack, and where the kernel counts how often a thread is given a CPU: that count once the stack was
    // read. While it stands, so do the stack and the syscall line.
    std::optional<uint64_t> arrivals;
  };
  // The stack of `tid` where it sleeps, as `syscall_line` (read just before) says, innermost first; none when it
  // is not asleep, its walk needs a register the kernel does not report and that cannot be found (rbp, below a
  // frame-pointer function that moves rsp after its prologue), or it ran while it was read. The kernel writes the
  // syscall file only with the thread off the CPU. With a count of the times the thread was given a CPU
  // (proc::readRunCount) read before that line (`runs_before_line`, or else read now and the line read again after
  // it): had the thread run at any moment from the line to the end of the walk, it would have been given a CPU
  // again. Where the kernel keeps no such count, its switches out: had the thread run at any moment from the first
  // count to a second read of the line after the walk, which must find it asleep in the same place, it would have
  // been switched out again by then. Either way, an unmoved count means it ran no instruction, and its stack stood
  // still, all along the walk.
  Asleep readAsleep(pid_t tid, const std::string& syscall_line, std::optional<proc::RunCount> runs_before_line = {});

  struct Stopped {
    ThreadStop::Outcome outcome = ThreadStop::Outcome::kDenied;
    int error = 0;                    // kDenied: the errno
    uint64_t pause_ns = 0;            // kStopped: how long it was held
    std::optional<Error> copy_error;  // kStopped, but its registers could not be read
    std::vector<uint64_t> pcs;        // kStopped: pcs[0] where it stopped, the rest return addresses
  };

  // Stops `tid`, waiting at most `limit` for the stop, copies its registers and stack, lets it go and unwinds the
  // copy. Needs mayStop().
  Stopped readStopped(pid_t tid, std::chrono::milliseconds limit);

 private:
  ThreadReader(pid_t pid, std::unique_ptr<RemoteUnwinder> unwinder, bool may_stop);

  pid_t pid_;
  std::unique_ptr<RemoteUnwinder> unwinder_;
  std::optional<ThreadStopper> stopper_;
  bool realtime_ = false;  // the reading thread may run real-time while it holds a thread
};

}  // namespace cppops::stack
