// A malloc-heavy workload for scripts/bench_heap.sh: one thread replaces blocks in a ring of 4096 live ones,
// mostly small (16 B to 1 KiB) with a few larger ones, and fills each block it gets, as a server's request
// handling does; it does nothing else. Knows nothing of
// cppops: the script runs it plain, with the agent preloaded (sampling off, then on) and under heaptrack.
// Prints one line: pairs, CPU and wall nanoseconds per malloc/free pair, and the bytes allocated.
// Usage: heap_bench [PAIRS [small]]   small: only 16-256 B blocks (nodes, strings), no larger ones
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

namespace {

double seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t pairs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000000;
  const bool small = argc > 2 && std::strcmp(argv[2], "small") == 0;
  constexpr size_t kRing = 4096;
  std::vector<void*> ring(kRing, nullptr);
  uint64_t x = 88172645463325252ull;
  uint64_t bytes = 0;
  const double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  const double wall0 = seconds(CLOCK_MONOTONIC);
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
  const double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  const double wall = seconds(CLOCK_MONOTONIC) - wall0;
  for (void* p : ring) std::free(p);
  std::printf("heap_bench pairs=%llu cpu_ns_per_pair=%.3f wall_ns_per_pair=%.3f bytes=%llu\n",
              static_cast<unsigned long long>(pairs), cpu * 1e9 / static_cast<double>(pairs),
              wall * 1e9 / static_cast<double>(pairs), static_cast<unsigned long long>(bytes));
  return 0;
}
