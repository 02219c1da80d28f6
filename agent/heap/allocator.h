// Which allocator the process calls, what it says about itself, and how it gives memory back. Runs on the
// control thread; it may allocate (the allocator's own reports do).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace cppops::agent::heap {

enum class AllocatorKind { kGlibc, kJemalloc, kTcmalloc, kUnknown };

struct Allocator {
  AllocatorKind kind = AllocatorKind::kUnknown;
  std::string name;     // "glibc", "jemalloc", "tcmalloc", "unknown"
  std::string module;   // the object that defines the malloc the process calls
  std::string version;  // "" when the allocator does not say
};

// Detected, not guessed: the malloc the process calls (the one the agent's own entry points forward to when they
// are the ones bound) is looked up, and the object that defines it decides; jemalloc and tcmalloc are recognised by
// their control functions (mallctl, MallocExtension_*) being defined in that same object. Async-signal-safe: no.
Allocator detectAllocator();

// The allocator's figures: mallinfo2(3) fields for glibc, mallctl stats.* for jemalloc, MallocExtension numeric
// properties for tcmalloc; empty for an unknown allocator. Async-signal-safe: no.
std::vector<protocol::AllocatorFigure> allocatorFigures(const Allocator& allocator);

// glibc's malloc_info(3) XML, with per-arena figures; "" for other allocators. Async-signal-safe: no.
std::string allocatorReport(const Allocator& allocator);

struct Release {
  std::string method;  // what was called
  int64_t result = 0;
  bool supported = false;
};

// Gives free memory back to the OS the allocator's own way: malloc_trim(0), mallctl("arena.<all>.purge"),
// MallocExtension_ReleaseFreeMemory(). Async-signal-safe: no.
Release releaseFreeMemory(const Allocator& allocator);

}  // namespace cppops::agent::heap
