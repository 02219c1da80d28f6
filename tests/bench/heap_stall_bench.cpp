// The longest single malloc and free while a large heap is built up and given back, for
// scripts/bench_heap_stall.sh: what a latency-sensitive thread feels of a heap profiler's bookkeeping, whose
// tables grow with the blocks it has sampled and still holds. Knows nothing of cppops.
// The builder thread allocates HEAP_MIB in blocks of BLOCK_KIB, touching each block's pages as a program would, then
// frees them all, ROUNDS times; only its malloc and free calls are timed. The first round is where a profiler's
// tables grow; later rounds show the same work with the tables at size. Meanwhile a bystander thread frees and
// allocates blocks of the same size in a ring of 16, memory it already has: it takes no page faults and never
// grows the heap, so what it waits for is the profiler (a lock the builder holds), not the kernel. Its calls are
// timed on the clock and in its own CPU time: on a small machine the clock also counts waiting for a CPU, while the
// CPU time counts only what the call ran, spinning for a lock included.
// glibc's trimming is switched off (M_TRIM_THRESHOLD): otherwise the free that leaves the top of a 2 GiB heap free
// gives it all back to the kernel, in one call of a hundred milliseconds and more, and hides any other figure.
// Prints one line per phase: calls, median, 99.9th percentile and longest, in microseconds.
// Usage: heap_stall_bench [HEAP_MIB [BLOCK_KIB [ROUNDS]]]
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

namespace {

uint64_t nowNs(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void report(const char* phase, std::vector<uint64_t>& ns) {
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    return static_cast<double>(ns[static_cast<size_t>(q * static_cast<double>(ns.size() - 1))]) / 1e3;
  };
  std::printf("heap_stall_bench phase=%s calls=%zu median_us=%.2f p999_us=%.2f max_us=%.2f\n", phase, ns.size(),
              at(0.5), at(0.999), at(1.0));
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t heap_mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2048;
  const uint64_t block_kib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  if (heap_mib == 0 || block_kib == 0 || rounds < 1) {
    std::fprintf(stderr, "usage: heap_stall_bench [HEAP_MIB [BLOCK_KIB [ROUNDS]]], all at least 1\n");
    return 2;
  }
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  const size_t block = block_kib * 1024;
  std::vector<void*> blocks(heap_mib * 1024 / block_kib);
  std::vector<uint64_t> first_fill, fill, release, bystander_ns, bystander_cpu_ns;
  std::atomic<bool> built{false};
  std::thread bystander([&] {
    std::vector<void*> ring(16, nullptr);
    for (size_t i = 0; !built.load(std::memory_order_relaxed); ++i) {
      void*& p = ring[i % ring.size()];
      const uint64_t t0 = nowNs();
      const uint64_t cpu0 = nowNs(CLOCK_THREAD_CPUTIME_ID);
      std::free(p);
      p = std::malloc(block);
      bystander_cpu_ns.push_back(nowNs(CLOCK_THREAD_CPUTIME_ID) - cpu0);
      bystander_ns.push_back(nowNs() - t0);
      static_cast<char*>(p)[0] = 1;
    }
    for (void* p : ring) std::free(p);
  });
  for (int round = 0; round < rounds; ++round) {
    std::vector<uint64_t>& fill_ns = round == 0 ? first_fill : fill;
    for (void*& p : blocks) {
      const uint64_t t0 = nowNs();
      p = std::malloc(block);
      fill_ns.push_back(nowNs() - t0);
      if (p == nullptr) {
        std::fprintf(stderr, "heap_stall_bench: out of memory\n");
        std::exit(1);
      }
      for (size_t off = 0; off < block; off += 4096) static_cast<char*>(p)[off] = 1;
    }
    for (void* p : blocks) {
      const uint64_t t0 = nowNs();
      std::free(p);
      release.push_back(nowNs() - t0);
    }
  }
  built.store(true, std::memory_order_relaxed);
  bystander.join();
  report("first_fill", first_fill);
  if (!fill.empty()) report("fill", fill);
  report("free", release);
  report("bystander", bystander_ns);
  report("bystander_cpu", bystander_cpu_ns);
  return 0;
}
