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
// costs malloc and free one indirect jump each. While sampling, malloc and calloc go to versions that count the
// bytes down on the calling thread (countdown below), and free to a version that recognises sampled blocks by their
// tag (hooks.cpp). The sampler switches them, under its lock, as sampling starts and stops (and the free check too
// while the bootstrap arena is in use).
using MallocFn = void* (*)(size_t);
using CallocFn = void* (*)(size_t, size_t);
using FreeFn = void (*)(void*) noexcept;
struct Routes {
  constexpr Routes(MallocFn m, CallocFn c, FreeFn f) : malloc(m), calloc(c), free(f) {}
  std::atomic<MallocFn> malloc;
  std::atomic<CallocFn> calloc;
  std::atomic<FreeFn> free;
  // What sampled blocks' tags are made with: random, nonzero, set before the first sample and never changed. In
  // the same cache line as the routes, which every free reads anyway.
  std::atomic<uint64_t> tag_key{0};
  // A pointer with any of these bits set is no block sampled in the current session, which all start at a multiple
  // of g_sample_alignment: a free of it passes by on its address alone. Set as each session starts, before the
  // routes that lead to sampling.
  std::atomic<uintptr_t> sample_mask{0};
};
struct RouteChoices {
  MallocFn malloc_direct = nullptr, malloc_counted = nullptr;
  CallocFn calloc_direct = nullptr, calloc_counted = nullptr;
  FreeFn free_direct = nullptr;
  FreeFn free_tagged = nullptr;   // the tag check alone: no bootstrap arena
  FreeFn free_checked = nullptr;  // whatever g_free_check says
  // The most that sampled blocks are aligned to (sampleAlignment). 16 behind glibc: its free check reads the word
  // before the block, which glibc's free reads next anyway, so passing blocks by on their address would save little,
  // and a small block asked for at a page's alignment becomes a large request to glibc, which first consolidates
  // its fast bins (0.8 us a sample, measured on a loop of small blocks). A page behind another allocator, whose
  // check is a call of its malloc_usable_size on every free.
  uint64_t most_sample_alignment = 16;
  const char* (*cannot_tag)() = nullptr;  // why sampled blocks cannot be tagged in this process, or null
};

extern std::atomic<bool> g_sampling;  // the slow path records samples
// What the current session's sampled blocks are aligned to (sampleAlignment), set with Routes::sample_mask.
extern std::atomic<uint64_t> g_sample_alignment;

// What sampled blocks are aligned to at `rate_bytes` between samples, given the most the allocator's routes take
// (RouteChoices): that most, so that few other blocks pass the free filter, but at most 1/64 of the rate, so that
// the space alignment skips (which the allocator keeps for other blocks) stays under 1/64 of the bytes sampled
// even when samples are dense; and at least 16.
uint64_t sampleAlignment(uint64_t rate_bytes, uint64_t most);

// What frees must check: 0 (nothing) or these bits.
inline constexpr uint8_t kCheckTag = 1;    // sampling is on: a block may carry a sample's tag
inline constexpr uint8_t kCheckArena = 2;  // the bootstrap arena handed memory out, which no allocator owns
extern std::atomic<uint8_t> g_free_check;

struct ThreadState {
  int64_t countdown;    // bytes left before this thread's next sample
  uint64_t rng;         // xorshift state, seeded on first use
  uint64_t drawn_rate;  // the rate the countdown was drawn for, 0 before the first
  uint32_t busy;        // inside the sampler: what it allocates itself (backtrace's first use) passes through
};
// Initial-exec: the general-dynamic model's first access can call malloc, which would land back here.
extern __thread ThreadState t_heap_state __attribute__((tls_model("initial-exec")));

// --- The slow paths. Async-signal-safe: no. They never allocate from the heap and never throw.

// The countdown of the calling thread ran out on an allocation of n bytes: sets the next one, and says whether this
// allocation is a sample (the first countdown of a thread, or of a new rate, is no sample point; nor is anything
// the sampler allocates itself, or what comes after sampling stopped).
bool takesSample(size_t n);
// Records the sample at p (n bytes, as asked for) with the calling thread's stack.
void recordSample(void* p, size_t n);
// p, a tagged block, is being freed (or reallocated): the sampler forgets it, so it counts as freed (if it was
// sampled in this session at all). Must be called before the real free, so that no other thread can be handed the
// same address meanwhile.
void forgetSampled(void* p);

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

// The calling thread is one of the agent's own (the control thread, a profile's, the sampler's): what it allocates
// is never sampled, because a heap profile shows the program's allocations, not the agent's answering for them.
inline void neverSampleThisThread() { t_heap_state.busy = 1; }

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
// memory for the tables, already on, blocks cannot be tagged).
std::string startSampling(uint64_t rate_bytes);
// What sampling has recorded so far.
Snapshot readSampling();
// Whether sampling is on, and its rate when it is (0 when off), without copying any records.
uint64_t samplingRate();
// The final records, and sampling off with the tables emptied.
Snapshot stopSampling();

}  // namespace cppops::agent::heap
