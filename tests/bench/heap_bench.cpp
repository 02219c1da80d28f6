// A malloc-heavy workload for scripts/bench_heap.sh: each worker thread replaces blocks in a ring of 4096 live
// ones, mostly small (16 B to 1 KiB) with a few larger ones, and fills each block it gets, as a server's request
// handling does; it does nothing else. Knows nothing of cppops: the script runs it plain, with the agent preloaded
// (sampling off, then on) and under heaptrack.
// Prints one line: pairs, CPU and wall nanoseconds per malloc/free pair, and the bytes allocated.
// Usage: heap_bench [PAIRS [mixed|small|objects [THREADS [RESIDENT_MIB]]]]
//   small: only 16-256 B blocks (nodes, strings), no larger ones
//   objects: what C++ code allocates through its containers instead of malloc and a fill: a string key, a
//     hash-map node and a vector grown by push_back per entry, replacing the oldest of 4096 (the pairs are the
//     containers' own allocations, counted, so a run makes at least PAIRS of them)
//   THREADS: workers sharing the PAIRS (default 1). With 2 or more the process is multi-threaded without the
//   agent too, as servers are, so glibc's malloc takes its locking paths in every configuration.
//   RESIDENT_MIB: first allocate and fill that much in 64 KiB blocks, kept to the end, as a server's caches are:
//     a profiler's cost may grow with the blocks it has sampled and still holds (not timed)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
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

// The containers' allocations go through ::operator new like any other, and are counted here.
thread_local uint64_t t_allocations = 0;

template <typename T>
struct Counted {
  using value_type = T;
  Counted() = default;
  template <typename U>
  Counted(const Counted<U>&) {}
  T* allocate(size_t n) {
    ++t_allocations;
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p); }
  template <typename U>
  bool operator==(const Counted<U>&) const { return true; }
  template <typename U>
  bool operator!=(const Counted<U>&) const { return false; }
};

using Key = std::basic_string<char, std::char_traits<char>, Counted<char>>;
struct KeyHash {
  size_t operator()(const Key& k) const { return std::hash<std::string_view>{}(std::string_view(k.data(), k.size())); }
};
using Values = std::vector<uint32_t, Counted<uint32_t>>;
using Table = std::unordered_map<Key, Values, KeyHash, std::equal_to<Key>, Counted<std::pair<const Key, Values>>>;

// Returns the bytes the entries asked for (keys and values, not the containers' own overhead).
uint64_t objects(uint64_t pairs, uint64_t seed) {
  constexpr size_t kLive = 4096;
  uint64_t x = seed;
  uint64_t bytes = 0;
  Table table;
  std::vector<Key> order(kLive);
  t_allocations = 0;
  for (uint64_t i = 0; t_allocations < pairs; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Keys of 16-200 characters (never in the string's own buffer), unique by their first 16.
    Key key(16 + (x >> 8) % 185, static_cast<char>('a' + i % 26));
    std::memcpy(&key[0], &i, sizeof i);
    std::memcpy(&key[8], &x, sizeof x);
    Values values;
    const size_t count = 1 + (x >> 24) % 32;
    for (size_t v = 0; v < count; ++v) values.push_back(static_cast<uint32_t>(x >> v));
    bytes += key.size() + count * sizeof(uint32_t);
    Key& oldest = order[i % kLive];
    if (!oldest.empty()) table.erase(oldest);
    oldest = key;
    table.emplace(std::move(key), std::move(values));
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t pairs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000000;
  const char* workload = argc > 2 ? argv[2] : "mixed";
  const bool small = std::strcmp(workload, "small") == 0;
  const bool containers = std::strcmp(workload, "objects") == 0;
  if (!small && !containers && std::strcmp(workload, "mixed") != 0) {
    std::fprintf(stderr, "heap_bench: the workload is mixed, small or objects\n");
    return 2;
  }
  const unsigned threads = argc > 3 ? static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)) : 1;
  if (threads == 0) {
    std::fprintf(stderr, "heap_bench: THREADS must be at least 1\n");
    return 2;
  }
  struct Done {
    uint64_t pairs = 0;
    uint64_t bytes = 0;
  };
  const uint64_t resident_mib = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 0;
  std::vector<void*> resident(resident_mib * 16);
  for (void*& block : resident) {
    block = std::malloc(64 * 1024);
    std::memset(block, 1, 64 * 1024);
  }
  std::vector<Done> done(threads);
  auto run = [&](unsigned t, uint64_t share) {
    const uint64_t seed = 88172645463325252ull + t;
    if (containers) {
      done[t].bytes = objects(share, seed);
      done[t].pairs = t_allocations;
    } else {
      done[t].bytes = work(share, small, seed);
      done[t].pairs = share;
    }
  };
  const double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  const double wall0 = seconds(CLOCK_MONOTONIC);
  if (threads == 1) {
    run(0, pairs);
  } else {
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) workers.emplace_back(run, t, pairs / threads);
    for (auto& w : workers) w.join();
  }
  const double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  const double wall = seconds(CLOCK_MONOTONIC) - wall0;
  uint64_t pairs_done = 0;
  uint64_t total = 0;
  for (const Done& d : done) {
    pairs_done += d.pairs;
    total += d.bytes;
  }
  for (void* block : resident) std::free(block);
  std::printf("heap_bench pairs=%llu cpu_ns_per_pair=%.3f wall_ns_per_pair=%.3f bytes=%llu\n",
              static_cast<unsigned long long>(pairs_done), cpu * 1e9 / static_cast<double>(pairs_done),
              wall * 1e9 / static_cast<double>(pairs_done), static_cast<unsigned long long>(total));
  return 0;
}
