// A malloc-heavy workload for scripts/bench_heap.sh: each worker thread replaces blocks in a ring of 4096 live
// ones, mostly small (16 B to 1 KiB) with a few larger ones, and fills each block it gets, as a server's request
// handling does; it does nothing else. Knows nothing of cppops: the script runs it plain, with the agent preloaded
// (sampling off, then on) and under heaptrack.
// Prints one line: pairs, CPU and wall nanoseconds per malloc/free pair, and the bytes allocated.
// Usage: heap_bench [PAIRS [mixed|small [THREADS]]]
//   small: only 16-256 B blocks (nodes, strings), no larger ones
//   THREADS: workers sharing the PAIRS (default 1). With 2 or more the process is multi-threaded without the
//   agent too, as servers are, so glibc's malloc takes its locking paths in every configuration.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

namespace {

double seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

uint64_t work(uint64_t pairs, bool small, uint64_t seed) {
  constexpr size_t kRing = 4096;
  std::vector<void*> ring(kRing, nullptr);
  uint64_t x = seed;
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < pairs; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Mixed: 1 in 64 blocks is 1-64 KiB, the rest 16 B-1 KiB (about 1 KiB per pair). Small: 16-256 B.
    const size_t size = small ? 16 + (x >> 8) % 241
                              : (x & 63) == 0 ? 1024 + (x >> 8) % (63 * 1024) : 16 + (x >> 8) % 1009;
    void*& slot = ring[i % kRing];
    std::free(slot);
    slot = std::malloc(size);
    // Used, as a program uses what it allocates (and so the pair cannot be optimised away).
    std::memset(slot, static_cast<int>(i), size);
    bytes += size;
  }
  for (void* p : ring) std::free(p);
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t pairs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000000;
  const bool small = argc > 2 && std::strcmp(argv[2], "small") == 0;
  const unsigned threads = argc > 3 ? static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)) : 1;
  if (threads == 0) {
    std::fprintf(stderr, "heap_bench: THREADS must be at least 1\n");
    return 2;
  }
  std::vector<uint64_t> bytes(threads, 0);
  const double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  const double wall0 = seconds(CLOCK_MONOTONIC);
  if (threads == 1) {
    bytes[0] = work(pairs, small, 88172645463325252ull);
  } else {
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t)
      workers.emplace_back([&, t] { bytes[t] = work(pairs / threads, small, 88172645463325252ull + t); });
    for (auto& w : workers) w.join();
  }
  const double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  const double wall = seconds(CLOCK_MONOTONIC) - wall0;
  uint64_t total = 0;
  for (uint64_t b : bytes) total += b;
  const uint64_t done = threads == 1 ? pairs : pairs / threads * threads;
  std::printf("heap_bench pairs=%llu cpu_ns_per_pair=%.3f wall_ns_per_pair=%.3f bytes=%llu\n",
              static_cast<unsigned long long>(done), cpu * 1e9 / static_cast<double>(done),
              wall * 1e9 / static_cast<double>(done), static_cast<unsigned long long>(total));
  return 0;
}
