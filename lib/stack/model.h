// The stack dump, from raw facts to meaning.
//
// RawDump is what a capture source delivers (the agent over the protocol, or ptrace without one): thread ids,
// program counters and kernel wait facts, nothing interpreted. StackDump is what lib/ makes of it: symbolized
// frames, a state per thread, lock owners, deadlocks and groups of identical stacks. Renderers only read
// StackDump.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proc/task.h"
#include "symbolize/symbolizer.h"

namespace cppops::stack {

// How a thread's stack capture went.
enum class CaptureStatus {
  kCaptured,     // the thread unwound itself (or was unwound) and frames are present
  kNoAnswer,     // did not answer in time (signals blocked, uninterruptible sleep, stopped, vfork parent)
  kExited,       // ended during the capture: reported only if it was listed, with no frames
  kNotRequested, // the dump was taken without signals (--no-signal): kernel facts only
};

struct RawThread {
  pid_t tid = 0;
  std::string name;                      // when the source learnt it (the agent's handler); "" otherwise
  CaptureStatus status = CaptureStatus::kCaptured;
  std::vector<uint64_t> pcs;             // pcs[0] exact (interrupted pc), the rest return addresses
  std::string syscall_line;              // /proc/PID/task/TID/syscall as read before the thread was interrupted
  uint64_t lock_window_address = 0;      // start of lock_window in the target's address space
  std::vector<uint8_t> lock_window;      // bytes around a futex address, from which lock owners are read
  uint64_t handler_ns = 0;               // time the thread was held: in its handler (agent), stopped (ptrace)
  std::string no_stack_reason;           // why there are no frames, when the source knows better than analyze()
};

struct RawDump {
  pid_t pid = 0;
  std::string source;                    // "agent" or "ptrace"
  std::vector<RawThread> threads;
  pid_t agent_tid = 0;                   // the agent's control thread, left out of the dump
  uint64_t total_ns = 0;                 // whole capture as measured by the source
  uint64_t max_pause_ns = 0;             // longest time any one thread was held (handler or ptrace stop)
  uint32_t read_asleep = 0;              // threads read where they slept, neither signalled nor stopped
  std::vector<std::string> notes;        // the source's own remarks (e.g. "signal 40 taken over by the host")
};

enum class ThreadState {
  kRunning,
  kMutex,          // pthread_mutex_lock / std::mutex, std::recursive_mutex, std::timed_mutex, PI mutexes
  kRwlockRead,     // waiting to read-lock a pthread_rwlock / std::shared_mutex
  kRwlockWrite,    // waiting to write-lock one
  kCondition,      // pthread_cond_wait / std::condition_variable
  kSemaphore,      // sem_wait
  kAtomicWait,     // std::atomic::wait, latch, barrier, raw futex
  kSleep,          // nanosleep, clock_nanosleep, pause
  kRead,           // read/recv family on an fd
  kWrite,          // write/send family on an fd
  kPoll,           // poll, select, epoll_wait
  kAccept,         // accept/accept4
  kConnect,
  kWaitChild,      // wait4/waitid
  kSignalWait,     // sigwait*, sigsuspend
  kDiskWait,       // D state
  kStopped,        // T or t
  kZombie,
  kSyscall,        // blocked in another syscall
  kUnknown,
};

// Stable lower-case names for JSON and filters: "running", "mutex", "rwlock_read", "rwlock_write", "condvar",
// "semaphore", "atomic_wait", "sleep", "read", "write", "poll", "accept", "connect", "wait_child",
// "signal_wait", "disk_wait", "stopped", "zombie", "syscall", "unknown".
const char* stateName(ThreadState state);
std::optional<ThreadState> stateFromName(const std::string& name);

// A thread's frames, innermost first, inlined frames expanded; read-only. Threads with the same stack share one
// list: a 1,000-thread dump has a few dozen distinct stacks, and copying every name and path into each thread
// cost more than classifying them.
class FrameList {
 public:
  FrameList() = default;
  explicit FrameList(std::vector<SourceFrame> frames)
      : frames_(std::make_shared<const std::vector<SourceFrame>>(std::move(frames))) {}

  const std::vector<SourceFrame>& all() const { return frames_ ? *frames_ : kNone; }
  std::vector<SourceFrame>::const_iterator begin() const { return all().begin(); }
  std::vector<SourceFrame>::const_iterator end() const { return all().end(); }
  size_t size() const { return all().size(); }
  bool empty() const { return all().empty(); }
  const SourceFrame& operator[](size_t i) const { return all()[i]; }
  const SourceFrame& front() const { return all().front(); }

 private:
  static inline const std::vector<SourceFrame> kNone;
  std::shared_ptr<const std::vector<SourceFrame>> frames_;
};

struct Thread {
  pid_t tid = 0;
  std::string name;
  char kernel_state = '?';               // R, S, D, T, t, Z, ...
  ThreadState state = ThreadState::kUnknown;
  std::optional<pid_t> owner_tid;        // who holds what this thread waits for, when known
  bool held_by_readers = false;          // rwlock write-wait blocked by readers (no single owner)
  std::string wait;                      // what is waited on: "mutex 0x7f..", "fd 5: pipe (inode 1234)", ...
  std::string syscall;                   // syscall name when blocked in one
  CaptureStatus capture = CaptureStatus::kCaptured;
  std::string no_stack_reason;           // why frames are missing, for humans
  FrameList frames;
  uint64_t handler_ns = 0;
};

struct Deadlock {
  std::vector<pid_t> tids;               // the cycle, each waiting for the next, the last for the first
};

struct Group {
  std::vector<size_t> members;           // indexes into StackDump::threads
  ThreadState state = ThreadState::kUnknown;
};

struct Cost {
  uint64_t total_ns = 0;                 // end to end in the CLI (request, capture, symbolization, analysis)
  uint64_t capture_ns = 0;               // inside the target (or the ptrace walk)
  uint64_t max_pause_ns = 0;             // longest time any single thread was held
  uint32_t read_asleep = 0;              // threads read where they slept, never held
};

struct StackDump {
  pid_t pid = 0;
  std::string source;                    // "agent" or "ptrace"
  std::vector<Thread> threads;           // ascending tid
  std::vector<Deadlock> deadlocks;
  std::vector<Group> groups;             // most populous first
  Cost cost;
  std::vector<std::string> notes;        // degraded symbolization, signal problems, ...
};

}  // namespace cppops::stack
