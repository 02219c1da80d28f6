// Unwinding the stack of a thread of another process while it is stopped under ptrace, with libunwind's remote
// API. libunwind-ptrace finds the unwind tables in the ELF files the target maps; the registers come from one
// PTRACE_GETREGS and memory from process_vm_readv a page at a time, instead of one ptrace(PEEK*) syscall per
// word, because the time spent here is the time the thread stays stopped.
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

  // `tid` must be in a ptrace-stop of the calling thread. pcs[0] is the exact pc where the thread stopped, the
  // rest are return addresses, at most max_frames in all. Not thread-safe: one unwinder per tracing thread.
  Result<std::vector<uint64_t>> unwind(pid_t tid, size_t max_frames);

 private:
  struct Impl;
  explicit RemoteUnwinder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cppops::stack
