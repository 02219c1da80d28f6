// Allocation sampling. The interposed entry points (hooks.cpp, in the shared agent only) read the state below on
// every call; once every `rate` bytes on average (a Poisson process over allocated bytes, as in Go and tcmalloc)
// an allocation takes the slow path and is recorded with its stack. The HEAP_PROFILE command switches sampling on
// and off and reads the records.
//
// Nothing here allocates from the heap on the allocation path, throws, or waits on anything but a short spin
// lock that no holder ever keeps across a call that could allocate.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// Functions on the allocation path live in this section, so a sample's stack can be cut exactly where the
// agent's own frames end, whatever the compiler inlined.
#define CPPOPS_HOOK_PATH __attribute__((section("cppops_hooks"), noinline))

namespace cppops::agent::heap {

inline constexpr uint64_t kDefaultRateBytes = 512 * 1024;
inline constexpr size_t kMaxDepth = 64;

// --- State read on the allocation path (relaxed loads: a thread that sees a switch late only samples or checks a
// few calls late).

// Where the hot entry points jump (hooks.cpp). While nothing is sampled, to the allocator itself: an idle agent
// costs malloc and free one indirect jump each. While sampling, to versions that count the bytes down on the
// calling thread (countdown below) and check frees against the filter of sampled blocks. The sampler switches
// them, under its lock, as sampling starts and stops (and the free check too while the bootstrap arena is in use).
using MallocFn = void* (*)(size_t);
using CallocFn = void* (*)(size_t, size_t);
using FreeFn = void (*)(void*) noexcept;
struct Routes {
  constexpr Routes(MallocFn m, CallocFn c, FreeFn f) : malloc(m), calloc(c), free(f) {}
  std::atomic<MallocFn> malloc;
  std::atomic<CallocFn> calloc;
  std::atomic<FreeFn> free;
};
struct RouteChoices {
  MallocFn malloc_direct = nullptr, malloc_counted = nullptr;
  CallocFn calloc_direct = nullptr, calloc_counted = nullptr;
  FreeFn free_direct = nullptr;
  FreeFn free_filtered = nullptr;  // the filter alone: sampling, no bootstrap arena
  FreeFn free_checked = nullptr;   // whatever g_free_check says
};

extern std::atomic<bool> g_sampling;  // the slow path records samples

// What frees must check: 0 (nothing) or these bits.
inline constexpr uint8_t kCheckSampled = 1;  // sampling is on: the filter below
inline constexpr uint8_t kCheckArena = 2;    // the bootstrap arena handed memory out, which no allocator owns
extern std::atomic<uint8_t> g_free_check;

struct ThreadState {
  int64_t countdown;    // bytes left before this thread's next sample
  uint64_t rng;         // xorshift state, seeded on first use
  uint64_t drawn_rate;  // the rate the countdown was drawn for, 0 before the first
  uint32_t busy;        // inside the sampler: what it allocates itself (backtrace's first use) passes through
};
// Initial-exec: the general-dynamic model's first access can call malloc, which would land back here.
extern __thread ThreadState t_heap_state __attribute__((tls_model("initial-exec")));

// A filter in front of the table of sampled blocks, read on every free while kCheckSampled is set: a clear bit
// means the block was never sampled, and the free costs one load. A bit is set while a live sampled block hashes
// to it (counts under the sampler's lock say when to clear it). The filter keeps at least 256 bits per live
// sample, so that fewer than 1 free in 256 takes the lock for nothing: 8 KiB up to 256 live samples, then it
// doubles with them, up to 4 MiB for 131,072, each size faulted in ahead by the sampler's thread (sampler.cpp).
// (Next to 2 GiB held in 64 KiB blocks, a fixed 8 KiB filter sent 1 free in 15 of a small-block loop through the
// lock; this one, 1 in 160, counting the sampled ones.)
//
// g_filter points into the bit array (4 KiB-aligned) at the word whose number is the shift that turns the hash
// of an address into an index: one load gives both, so a reader never pairs one size with another's array. An array
// the filter has outgrown is left as it was (it still has every bit a block sampled before the change needs), so
// a free that read the old value moments before is still right.
inline constexpr int kFilterFirstBits = 16;
inline constexpr int kFilterMaxBits = 25;
extern std::atomic<const std::atomic<uint64_t>*> g_filter;

// Address bits rather than a hash: blocks freed one after the other often lie near each other (size classes, tcache, a
// container's nodes), so their bits share cache lines, which matters once the filter outgrows the L1 cache (next to
// 2 GiB, cachegrind counts half the L1 misses of a multiplicative hash). Blocks are at least 16-byte aligned, so the
// low 4 bits carry nothing; higher bits are folded in because page-aligned blocks (mmap'd, valloc) would otherwise
// share a few bits, and large blocks are the ones most often sampled. `shift` is 64 minus the filter's size in bits,
// log2.
inline size_t filterIndex(uintptr_t address, unsigned shift) {
  return static_cast<size_t>(((address >> 4) ^ (address >> 20)) & (~uint64_t{0} >> shift));
}

inline bool maybeSampled(const void* p) {
  const auto filter = reinterpret_cast<uintptr_t>(g_filter.load(std::memory_order_acquire));
  const auto* words = reinterpret_cast<const std::atomic<uint64_t>*>(filter & ~uintptr_t{4095});
  const size_t index = filterIndex(reinterpret_cast<uintptr_t>(p), (filter >> 3) & 63);
  return ((words[index / 64].load(std::memory_order_relaxed) >> (index % 64)) & 1) != 0;
}

// --- The slow paths. Async-signal-safe: no. They never allocate from the heap and never throw.

// The countdown of the calling thread ran out on an allocation of n bytes at p: sets the next one and, if p is a
// sample, records it with its stack.
void sampleAllocation(void* p, size_t n);

struct SampledBlock {
  uint64_t size = 0;
  double scale = 0;
  uint32_t stack = 0;
};

// p is being freed while kCheckSampled is set and maybeSampled(p): if it was sampled, forgets it (so it counts as
// freed). Must be called before the real free, so that no other thread can be handed the same address meanwhile.
bool forgetSampled(void* p, SampledBlock* block);
// realloc failed after forgetSampled(): p is still the caller's, so it is sampled again.
void restoreSampled(void* p, const SampledBlock& block);

// hooks.cpp marks that it handed out memory from its bootstrap arena (while dlsym was resolving the real
// allocator): from then on frees must check where a pointer comes from (kCheckArena).
void noteBootstrapArenaUsed();

// --- Registration by hooks.cpp (absent from the static agent, whose host keeps its allocator to itself): the
// routes are set for the current state at once.
void registerHooks(void* own_malloc, Routes* routes, const RouteChoices& choices);
void* ownMallocEntry();  // the agent's malloc, nullptr in the static agent
void* nextMalloc();      // the malloc it forwards to
// The process calls the agent's entry points: they are registered, and malloc as the process binds it is ours.
bool hooksBound();

// --- Control, from the control thread. Async-signal-safe: no.
struct StackRecord {
  double alloc_objects = 0;
  double alloc_bytes = 0;
  double free_objects = 0;
  double free_bytes = 0;
  uint32_t depth = 0;
  uint64_t pcs[kMaxDepth] = {};
};

struct Snapshot {
  bool sampling = false;
  uint64_t rate_bytes = 0;
  uint64_t sampled_ns = 0;
  uint64_t dropped = 0;
  std::vector<StackRecord> stacks;
};

// While one lives, the calling thread's allocations are not sampled: the agent reading its own tables would
// otherwise show up in them.
class NotSampled {
 public:
  NotSampled() : saved_(t_heap_state.busy) { t_heap_state.busy = 1; }
  ~NotSampled() { t_heap_state.busy = saved_; }
  NotSampled(const NotSampled&) = delete;
  NotSampled& operator=(const NotSampled&) = delete;

 private:
  uint32_t saved_;
};

// Switches sampling on at `rate_bytes`, from empty tables. Returns "" or why it cannot (not interposed, out of
// memory for the tables, already on).
std::string startSampling(uint64_t rate_bytes);
// What sampling has recorded so far.
Snapshot readSampling();
// Whether sampling is on, and its rate when it is (0 when off), without copying any records.
uint64_t samplingRate();
// The final records, and sampling off with the tables emptied.
Snapshot stopSampling();

}  // namespace cppops::agent::heap
