#include "own_threads.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "heap/sampler.h"

namespace cppops::agent {
namespace {

// A few helpers at most live at once (the heap sampler's thread, one profile's); a thread beyond these slots is
// simply dumped like the host's.
constexpr int kSlots = 8;
std::atomic<pid_t> g_own[kSlots];

pid_t currentTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

}  // namespace

void noteOwnThread() {
  heap::neverSampleThisThread();
  const pid_t tid = currentTid();
  for (auto& slot : g_own) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, tid, std::memory_order_relaxed)) return;
  }
}

void forgetOwnThread() {
  const pid_t tid = currentTid();
  for (auto& slot : g_own) {
    pid_t mine = tid;
    if (slot.compare_exchange_strong(mine, 0, std::memory_order_relaxed)) return;
  }
}

bool isOwnThread(pid_t tid) {
  for (const auto& slot : g_own)
    if (slot.load(std::memory_order_relaxed) == tid) return true;
  return false;
}

void forgetOwnThreadsAfterFork() {
  for (auto& slot : g_own) slot.store(0, std::memory_order_relaxed);
}

}  // namespace cppops::agent
