// What a thread that allocates feels of a heap profile being read, for scripts/bench_heap_read.sh. Knows nothing of
// cppops. Holds BLOCKS blocks of 1 KiB from 4,096 distinct stacks (twelve levels, each through one of two
// functions), then runs a bystander thread that frees and allocates 1 KiB blocks in a ring of 16, timing each
// pair. At a sampling rate of 1 KiB most of its calls take the profiler's lock, so a read that holds that lock
// shows up as its longest call. Each pair is timed twice: on the clock, and in the thread's CPU time, which
// grows while it spins for the lock but not while the scheduler has it wait for a CPU (as it does on a small
// machine while the CLI symbolizes a profile).
// On SIGUSR1 prints "heap_read_bench longest_us=L longest_cpu_us=C over_1ms=K calls=N": the longest pair on either
// clock, the pairs that took a millisecond or more (on the clock), and all pairs made since the last report. Exits
// on SIGTERM.
// Usage: heap_read_bench [BLOCKS]   (default 100000)
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBlock = 1024;
constexpr int kLevels = 12;

uint64_t nowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void* descend(unsigned path, int level);

// Two functions per level: a block's stack spells its path in binary.
__attribute__((noinline)) void* left(unsigned path, int level) {
  void* p = descend(path, level);
  asm volatile("" ::: "memory");  // no tail call: the frame stays on the stack
  return p;
}
__attribute__((noinline)) void* right(unsigned path, int level) {
  void* p = descend(path, level);
  asm volatile("" ::"r"(level) : "memory");
  return p;
}

void* descend(unsigned path, int level) {
  if (level == 0) return std::malloc(kBlock);
  return (path & 1) != 0 ? right(path >> 1, level - 1) : left(path >> 1, level - 1);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t blocks = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGUSR1);
  sigaddset(&wanted, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &wanted, nullptr);  // the bystander inherits the mask: main takes both with sigwait

  std::vector<void*> held;
  held.reserve(blocks);
  for (size_t i = 0; i < blocks; ++i) held.push_back(descend(static_cast<unsigned>(i), kLevels));

  std::atomic<uint64_t> longest_ns{0}, longest_cpu_ns{0}, over_1ms{0}, calls{0};
  auto raise = [](std::atomic<uint64_t>& longest, uint64_t ns) {
    if (ns > longest.load(std::memory_order_relaxed)) longest.store(ns, std::memory_order_relaxed);
  };
  std::atomic<bool> stop{false};
  std::thread bystander([&] {
    std::vector<void*> ring(16, nullptr);
    for (size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      void*& p = ring[i % ring.size()];
      const uint64_t cpu0 = nowNs(CLOCK_THREAD_CPUTIME_ID);
      const uint64_t t0 = nowNs(CLOCK_MONOTONIC);
      std::free(p);
      p = std::malloc(kBlock);
      const uint64_t took = nowNs(CLOCK_MONOTONIC) - t0;
      raise(longest_cpu_ns, nowNs(CLOCK_THREAD_CPUTIME_ID) - cpu0);
      static_cast<char*>(p)[0] = 1;
      raise(longest_ns, took);
      if (took >= 1000000) over_1ms.fetch_add(1, std::memory_order_relaxed);
      calls.fetch_add(1, std::memory_order_relaxed);
    }
    for (void* p : ring) std::free(p);
  });
  std::printf("ready\n");
  std::fflush(stdout);
  for (int signo = 0; sigwait(&wanted, &signo) == 0 && signo == SIGUSR1;) {
    // The bystander may store a larger figure between the two exchanges: it counts in the next report.
    const uint64_t longest = longest_ns.exchange(0, std::memory_order_relaxed);
    const uint64_t longest_cpu = longest_cpu_ns.exchange(0, std::memory_order_relaxed);
    std::printf("heap_read_bench longest_us=%.1f longest_cpu_us=%.1f over_1ms=%llu calls=%llu\n",
                static_cast<double>(longest) / 1e3, static_cast<double>(longest_cpu) / 1e3,
                static_cast<unsigned long long>(over_1ms.exchange(0, std::memory_order_relaxed)),
                static_cast<unsigned long long>(calls.exchange(0, std::memory_order_relaxed)));
    std::fflush(stdout);
  }
  stop.store(true, std::memory_order_relaxed);
  bystander.join();
  for (void* p : held) std::free(p);
  return 0;
}
