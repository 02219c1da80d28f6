// The state of a thread in a wall-clock sample, as `cppops stack` would name it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "symbolize/symbolizer.h"

namespace cppops::profile {

// stack::stateFromSyscall() of the kernel facts read with the sample, with the sample's frames for a futex wait
// (only those need them, so only those are symbolized here; the symbolizer caches, so buildProfile() pays nothing
// twice). `symbolizer` may be null: a futex wait is then an atomic_wait.
std::string wallState(const std::string& syscall_line, const std::vector<uint64_t>& pcs, Symbolizer* symbolizer);

}  // namespace cppops::profile
