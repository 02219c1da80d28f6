#include "metrics/thread_counts.h"

#include <dirent.h>

#include <atomic>

namespace cppops::agent::metrics {

namespace {

std::atomic<uint64_t> g_created{0};
std::atomic<int64_t> g_live_at_start{-1};
std::atomic<uint64_t> g_exited_reported{0};

int64_t countLiveThreads() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int64_t n = 0;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

}  // namespace

void noteAgentStart() {
  int64_t expected = -1;
  // The first start counts; a stop and restart keeps counting from the first.
  g_live_at_start.compare_exchange_strong(expected, countLiveThreads());
}

void countThreadCreated() { g_created.fetch_add(1, std::memory_order_relaxed); }

uint64_t threadsCreated() { return g_created.load(std::memory_order_relaxed); }

void readThreadCounts(uint32_t live_threads, uint64_t& created, uint64_t& exited) {
  created = threadsCreated();
  const int64_t at_start = g_live_at_start.load(std::memory_order_relaxed);
  const int64_t computed = (at_start < 0 ? 0 : at_start) + static_cast<int64_t>(created) - live_threads;
  uint64_t previous = g_exited_reported.load(std::memory_order_relaxed);
  const uint64_t now = computed > static_cast<int64_t>(previous) ? static_cast<uint64_t>(computed) : previous;
  g_exited_reported.compare_exchange_strong(previous, now, std::memory_order_relaxed);
  exited = now;
}

}  // namespace cppops::agent::metrics
