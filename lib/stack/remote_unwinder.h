// Unwinding the stack of a thread of another process, with libunwind's remote API, from a copy taken while the
// thread was stopped under ptrace (as perf does with its stack samples): the thread stays stopped only for one
// PTRACE_GETREGS and one process_vm_readv of its live stack, and runs again while the unwind walks the copy.
// libunwind-ptrace finds the unwind tables in the ELF files the target maps; what lies outside the copy (unwind
// tables, a signal stack, a stack deeper than the copy) is read live with process_vm_readv a page at a time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/result.h"

namespace cppops::stack {

class RemoteUnwinder {
 public:
  // One unwinder serves every thread of one process: its libunwind address space caches unwind rules by pc
  // (UNW_CACHE_GLOBAL), so a thousand threads running the same code look each rule up once.
  static Result<std::unique_ptr<RemoteUnwinder>> create(pid_t pid);
  ~RemoteUnwinder();
  RemoteUnwinder(const RemoteUnwinder&) = delete;
  RemoteUnwinder& operator=(const RemoteUnwinder&) = delete;

  // Copies the registers and the live stack of `tid`, which must be in a ptrace-stop of the calling thread. The
  // copy replaces the previous one. Not thread-safe: one unwinder per tracing thread.
  Status snapshot(pid_t tid);

  // Unwinds the last snapshot; the thread need not be stopped any more. pcs[0] is the exact pc where the thread
  // stopped, the rest are return addresses, at most max_frames in all.
  std::vector<uint64_t> unwindSnapshot(size_t max_frames);

  // Unwinds a thread that sleeps in the kernel where it sleeps, at `pc` with stack pointer `sp` (its syscall
  // file), reading its stack live: the thread is never stopped. Empty when the walk needs a register other than
  // those two (the kernel reports no other) that cannot be found: rbp, at a frame-pointer function that moves
  // rsp after its prologue (unwind/frame_pointer.h), or when the walk fails on the way. The caller must make sure
  // the thread did not run meanwhile.
  std::vector<uint64_t> unwindAsleep(uint64_t pc, uint64_t sp, size_t max_frames);

 private:
  struct Impl;
  explicit RemoteUnwinder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cppops::stack
