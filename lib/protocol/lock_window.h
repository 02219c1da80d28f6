// The bytes copied around the futex word a thread sleeps on, from which the CLI reads lock owners. Shared by the
// agent (which copies them from inside the target) and the ptrace path (which copies them from outside), so
// both sources hand analyze() the same window.
#pragma once

#include <cstdint>

namespace cppops::protocol {

// The window starts this many bytes before the futex address: a writer waiting on pthread_rwlock_t's
// __writers_futex (offset 12) needs __readers at offset 0.
inline constexpr uint64_t kLockWindowBefore = 16;
// Enough for the owner fields of pthread_mutex_t and pthread_rwlock_t whichever of their words the thread
// sleeps on. When the window's start is unmapped, the window is taken from the futex address itself.
inline constexpr uint64_t kLockWindowSize = 64;

}  // namespace cppops::protocol
