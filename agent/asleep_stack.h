// Reading the stack of a thread of this process that sleeps in the kernel, where it sleeps, without a signal:
// nothing it waits in returns early with EINTR, and it is never held (cppops-agent(3), "Stack capture"). Stack
// dumps and wall-clock profiles use it before they fall back to the signal.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "task_directory.h"

namespace cppops::agent {

// How often thread `tid` was given a CPU (schedstat's third field), or -1 where the kernel keeps no such count (it
// reads 0) or the thread is gone. A thread that did not move it ran no instruction: whatever the kernel said of it
// when it was last off the CPU still holds.
long long arrivalCount(const TaskDirectory& tasks, pid_t tid);

// The CPU time thread `tid` of this process has used, in nanoseconds (its thread CPU clock: one system call, where
// a /proc file costs an open, a read and a close), or -1 when it is gone. Every run of a thread adds to it, so one
// that did not move makes it very likely the thread did not run; not certain, as for arrivalCount: a run so short
// that the scheduler's clock did not move adds nothing.
int64_t threadCpuNs(pid_t tid);

// One per thread that reads stacks: it keeps the pages of the stack being read.
class AsleepStacks {
 public:
  struct Read {
    size_t frames = 0;        // pcs written; 0 when there is no stack
    bool ran = false;         // no stack because the thread ran while it was read: another try may have one
    int64_t cpu_ns = -1;      // with a stack, the thread's threadCpuNs while it was read: while that stands, so
                              // (very likely) do the stack and the syscall line
  };
  // The stack of thread `tid`, asleep where `syscall_line` (its syscall file, just read) says, innermost first
  // and at most `max` pcs: none when the thread is not asleep, a frame needs the thread's rbp (which the kernel
  // does not report) and it cannot be found (cfiUnwindAsleep), or the thread ran while it was read.
  // `arrivals_before_line`: its arrivalCount read before that line (which saves reading the line again), or -1.
  Read read(const TaskDirectory& tasks, pid_t tid, const std::string& syscall_line, uint64_t* pcs, size_t max,
            long long arrivals_before_line = -1);

 private:
  static constexpr size_t kPages = 4;
  static constexpr uintptr_t kPageSize = 4096;

  static bool readWord(void* context, uintptr_t at, uintptr_t* word);
  bool readStack(uintptr_t at, uintptr_t* word);

  uintptr_t bases_[kPages] = {};
  size_t filled_ = 0;
  size_t next_ = 0;
  alignas(8) char pages_[kPages][kPageSize];
};

}  // namespace cppops::agent
