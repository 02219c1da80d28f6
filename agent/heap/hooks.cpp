// The allocation entry points of the shared agent (never of the static one: a program that links the agent
// statically keeps its allocator to itself). Each forwards to the next definition in the process (glibc,
// jemalloc, tcmalloc: whatever comes after the agent in the search order). The hot three (malloc, calloc, free,
// and operator new and delete through them) jump through g_hot.routes: straight to the allocator while nothing is
// sampled, so that an idle agent costs one indirect jump a call; while sampling, to versions that count the bytes
// down towards the next sample and check frees against the filter of sampled blocks (sampler.h).
//
// Pointers are never changed and no header is added, so memory from any entry point can be released through any
// other (aligned memory through free, realloc of anything), exactly as with the allocator alone; misuse such as a
// double free reaches the real allocator unchanged, which detects it as it would have.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>

#include "heap/sampler.h"

#define CPPOPS_ALLOC_EXPORT __attribute__((visibility("default")))

// The agent's own malloc, by a hidden alias: &malloc would give whichever malloc the process binds.
extern "C" void* cppops_heap_own_malloc(size_t n)
    __attribute__((visibility("hidden"), malloc, alloc_size(1), nothrow, leaf));

namespace cppops::agent::heap {
namespace {

using ReallocFn = void* (*)(void*, size_t);
using MemalignFn = void* (*)(size_t, size_t);
using PosixMemalignFn = int (*)(void**, size_t, size_t);

// dlsym may allocate while it looks the real allocator up (calloc for its error state); those allocations come
// from here. Never reused, so it is zeroed as calloc needs; frees of it are ignored.
constexpr size_t kArenaSize = 64 * 1024;
constexpr size_t kArenaHeader = 16;  // the block's size, so realloc can copy it out
alignas(64) char g_arena[kArenaSize];
std::atomic<size_t> g_arena_top{0};
__thread bool t_resolving __attribute__((tls_model("initial-exec")));

void* arenaAllocate(size_t n) {
  if (n > kArenaSize) return nullptr;
  const size_t need = (n + kArenaHeader + 15) & ~size_t{15};
  size_t top = g_arena_top.fetch_add(need, std::memory_order_relaxed);
  if (top + need > kArenaSize) return nullptr;
  noteBootstrapArenaUsed();
  std::memcpy(g_arena + top, &n, sizeof n);
  return g_arena + top + kArenaHeader;
}

bool inArena(const void* p) {
  auto* c = static_cast<const char*>(p);
  return c >= g_arena && c < g_arena + kArenaSize;
}

size_t arenaBlockSize(const void* p) {
  size_t n = 0;
  std::memcpy(&n, static_cast<const char*>(p) - kArenaHeader, sizeof n);
  return n;
}

void* bootMalloc(size_t n);
void bootFree(void* p) noexcept;
void* bootCalloc(size_t count, size_t size);
void* bootRealloc(void* p, size_t n);
RouteChoices routeChoices();

// The next definitions. Until resolved, the hot four point at their bootstrap versions (so the hot path needs no
// "resolved?" check); the rest are resolved before any of them can be reached through resolve().
struct Next {
  std::atomic<MallocFn> malloc{bootMalloc};
  std::atomic<FreeFn> free{bootFree};
  std::atomic<CallocFn> calloc{bootCalloc};
  std::atomic<ReallocFn> realloc{bootRealloc};
  std::atomic<MemalignFn> memalign{nullptr};
  std::atomic<MemalignFn> aligned_alloc{nullptr};
  std::atomic<PosixMemalignFn> posix_memalign{nullptr};
  std::atomic<MallocFn> valloc{nullptr};
  std::atomic<MallocFn> pvalloc{nullptr};
};
// What every call reads, in one cache line: the routes, and where the counting versions forward to. Constant-
// initialized (constexpr constructors): libraries initialized before the agent allocate through it.
struct alignas(64) HotState {
  Routes routes{bootMalloc, bootCalloc, bootFree};
  Next next;
};
HotState g_hot;

[[noreturn]] void cannotResolve(const char* name) {
  static const char prefix[] = "cppops agent: cannot find the process's ";
  static const char suffix[] = " after the agent (dlsym RTLD_NEXT); remove libcppops_agent.so from LD_PRELOAD\n";
  (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
  (void)!write(STDERR_FILENO, name, std::strlen(name));
  (void)!write(STDERR_FILENO, suffix, sizeof suffix - 1);
  _exit(127);
}

template <typename Fn>
Fn lookUp(const char* name) {
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  if (fn == nullptr) cannotResolve(name);
  return fn;
}

// Idempotent, and safe to run in several threads at once (they all store the same addresses): a thread that finds
// another resolving must not wait for it, because that one may be waiting for a lock the first holds (the
// loader's, when malloc is called from dlopen).
void resolve() {
  if (t_resolving) return;
  t_resolving = true;
  auto next_malloc = lookUp<MallocFn>("malloc");
  g_hot.next.memalign.store(lookUp<MemalignFn>("memalign"), std::memory_order_relaxed);
  g_hot.next.aligned_alloc.store(lookUp<MemalignFn>("aligned_alloc"), std::memory_order_relaxed);
  g_hot.next.posix_memalign.store(lookUp<PosixMemalignFn>("posix_memalign"), std::memory_order_relaxed);
  g_hot.next.valloc.store(lookUp<MallocFn>("valloc"), std::memory_order_relaxed);
  g_hot.next.pvalloc.store(lookUp<MallocFn>("pvalloc"), std::memory_order_relaxed);
  g_hot.next.free.store(lookUp<FreeFn>("free"), std::memory_order_relaxed);
  g_hot.next.calloc.store(lookUp<CallocFn>("calloc"), std::memory_order_relaxed);
  g_hot.next.realloc.store(lookUp<ReallocFn>("realloc"), std::memory_order_relaxed);
  g_hot.next.malloc.store(next_malloc, std::memory_order_release);
  registerHooks(reinterpret_cast<void*>(&cppops_heap_own_malloc), &g_hot.routes, routeChoices());
  t_resolving = false;
}

void* bootMalloc(size_t n) {
  if (t_resolving) return arenaAllocate(n);
  resolve();
  return g_hot.next.malloc.load(std::memory_order_acquire)(n);
}

void bootFree(void* p) noexcept {
  if (p == nullptr || inArena(p)) return;
  resolve();
  g_hot.next.free.load(std::memory_order_acquire)(p);
}

void* bootCalloc(size_t count, size_t size) {
  size_t n = 0;
  if (t_resolving) return __builtin_mul_overflow(count, size, &n) ? nullptr : arenaAllocate(n);
  resolve();
  return g_hot.next.calloc.load(std::memory_order_acquire)(count, size);
}

void* bootRealloc(void* p, size_t n) {
  if (t_resolving) {
    void* q = arenaAllocate(n);
    if (q != nullptr && p != nullptr && inArena(p)) std::memcpy(q, p, std::min(n, arenaBlockSize(p)));
    return q;
  }
  resolve();
  return g_hot.next.realloc.load(std::memory_order_acquire)(p, n);
}

// The calls below the entry points; the rare ones resolve on their first use.
template <typename Fn>
Fn rare(std::atomic<Fn>& slot) {
  Fn fn = slot.load(std::memory_order_acquire);
  if (__builtin_expect(fn == nullptr, 0)) {
    resolve();
    fn = slot.load(std::memory_order_acquire);
  }
  return fn;
}

inline bool sampling() { return g_sampling.load(std::memory_order_relaxed); }

// Counts n bytes down on this thread: true while its next sample lies beyond them, so that the counting malloc
// can still tail-call the allocator.
__attribute__((always_inline)) inline bool notYetDue(size_t n) {
  return (t_heap_state.countdown -= static_cast<int64_t>(n)) > 0;
}

// After the allocation, for the rare entry points, which do not go through g_hot.routes.
__attribute__((always_inline)) inline void noteAllocation(void* p, size_t n) {
  if (p != nullptr && sampling() && !notYetDue(n)) sampleAllocation(p, n);
}

// The rare allocation that is due: out of line, so that the common path needs no stack frame.
CPPOPS_HOOK_PATH void* allocateDue(size_t n) {
  void* p = g_hot.next.malloc.load(std::memory_order_relaxed)(n);
  if (p != nullptr) sampleAllocation(p, n);
  return p;
}

CPPOPS_HOOK_PATH void* callocDue(size_t count, size_t size, size_t n) {
  void* p = g_hot.next.calloc.load(std::memory_order_relaxed)(count, size);
  if (p != nullptr) sampleAllocation(p, n);
  return p;
}

// The routes while sampling.
CPPOPS_HOOK_PATH void* countedMalloc(size_t n) {
  MallocFn next = g_hot.next.malloc.load(std::memory_order_relaxed);
  if (__builtin_expect(notYetDue(n), 1)) return next(n);
  return allocateDue(n);
}

CPPOPS_HOOK_PATH void* countedCalloc(size_t count, size_t size) {
  CallocFn next = g_hot.next.calloc.load(std::memory_order_relaxed);
  size_t n = 0;
  // An overflowing request fails in the allocator (ENOMEM) and there is nothing to count.
  if (__builtin_mul_overflow(count, size, &n) || __builtin_expect(notYetDue(n), 1)) return next(count, size);
  return callocDue(count, size, n);
}

// Whatever g_free_check asks for.
CPPOPS_HOOK_PATH void checkedFree(void* p) noexcept {
  const uint8_t check = g_free_check.load(std::memory_order_relaxed);
  if (p == nullptr || ((check & kCheckArena) != 0 && inArena(p))) return;
  if ((check & kCheckSampled) != 0 && maybeSampled(p)) forgetSampled(p, nullptr);
  g_hot.next.free.load(std::memory_order_relaxed)(p);
}

// Sampling on, with no bootstrap arena to mind: most frees are of blocks never sampled, which the filter says in
// one load (a null pointer goes through it too, to whatever its bit says, rather than cost every free a test).
CPPOPS_HOOK_PATH void filteredFree(void* p) noexcept {
  FreeFn next = g_hot.next.free.load(std::memory_order_relaxed);
  if (__builtin_expect(!maybeSampled(p), 1)) return next(p);
  checkedFree(p);
}

RouteChoices routeChoices() {
  RouteChoices c;
  c.malloc_direct = g_hot.next.malloc.load(std::memory_order_relaxed);
  c.malloc_counted = countedMalloc;
  c.calloc_direct = g_hot.next.calloc.load(std::memory_order_relaxed);
  c.calloc_counted = countedCalloc;
  c.free_direct = g_hot.next.free.load(std::memory_order_relaxed);
  c.free_filtered = filteredFree;
  c.free_checked = checkedFree;
  return c;
}

__attribute__((always_inline)) inline void* allocate(size_t n) {
  return g_hot.routes.malloc.load(std::memory_order_relaxed)(n);
}

__attribute__((always_inline)) inline void release(void* p) { g_hot.routes.free.load(std::memory_order_relaxed)(p); }

__attribute__((always_inline)) inline void* allocateAligned(size_t alignment, size_t n) {
  void* p = nullptr;
  if (rare(g_hot.next.posix_memalign)(&p, alignment, n) != 0) return nullptr;
  noteAllocation(p, n);
  return p;
}

CPPOPS_HOOK_PATH void* reallocate(void* p, size_t n) {
  ReallocFn next = g_hot.next.realloc.load(std::memory_order_relaxed);
  if (__builtin_expect(g_free_check.load(std::memory_order_relaxed) == 0, 1)) return next(p, n);
  if (p != nullptr && inArena(p)) {
    void* q = allocate(n);
    if (q != nullptr) std::memcpy(q, p, std::min(n, arenaBlockSize(p)));
    return q;
  }
  SampledBlock block;
  const bool was_sampled = p != nullptr && maybeSampled(p) && forgetSampled(p, &block);
  void* q = next(p, n);
  // realloc(p, 0) frees p; any other failure leaves p allocated and still sampled.
  if (q == nullptr && n != 0 && was_sampled) restoreSampled(p, block);
  noteAllocation(q, n);
  return q;
}

// operator new: allocate, and when that fails, the new-handler loop of [new.delete.single].
CPPOPS_HOOK_PATH void* newFailed(size_t n, size_t alignment) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
    void* p = alignment == 0 ? allocate(n) : allocateAligned(alignment, n);
    if (p != nullptr) return p;
  }
}

CPPOPS_HOOK_PATH void* newObject(size_t n) {
  if (n == 0) n = 1;  // distinct non-null pointers for zero-sized objects
  void* p = allocate(n);
  return p != nullptr ? p : newFailed(n, 0);
}

CPPOPS_HOOK_PATH void* newAligned(size_t n, std::align_val_t al) {
  if (n == 0) n = 1;
  size_t alignment = static_cast<size_t>(al);
  if (alignment < sizeof(void*)) alignment = sizeof(void*);  // posix_memalign's minimum
  void* p = allocateAligned(alignment, n);
  return p != nullptr ? p : newFailed(n, alignment);
}

CPPOPS_HOOK_PATH void* newObjectNothrow(size_t n) noexcept {
  try {
    return newObject(n);
  } catch (...) {
    return nullptr;
  }
}

CPPOPS_HOOK_PATH void* newAlignedNothrow(size_t n, std::align_val_t al) noexcept {
  try {
    return newAligned(n, al);
  } catch (...) {
    return nullptr;
  }
}

// Resolve before main, while the process has one thread, rather than in the middle of some thread's first malloc.
__attribute__((constructor(101))) void resolveEarly() { resolve(); }

}  // namespace
}  // namespace cppops::agent::heap

using namespace cppops::agent::heap;

extern "C" {

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* malloc(size_t n) { return allocate(n); }
void* cppops_heap_own_malloc(size_t n) __attribute__((alias("malloc")));

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void free(void* p) { release(p); }

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* calloc(size_t count, size_t size) {
  return g_hot.routes.calloc.load(std::memory_order_relaxed)(count, size);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* realloc(void* p, size_t n) { return reallocate(p, n); }

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* reallocarray(void* p, size_t count, size_t size) {
  size_t n = 0;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;  // as glibc: p is left untouched
    return nullptr;
  }
  return reallocate(p, n);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* memalign(size_t alignment, size_t n) {
  void* p = rare(g_hot.next.memalign)(alignment, n);
  noteAllocation(p, n);
  return p;
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* aligned_alloc(size_t alignment, size_t n) {
  void* p = rare(g_hot.next.aligned_alloc)(alignment, n);
  noteAllocation(p, n);
  return p;
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH int posix_memalign(void** out, size_t alignment, size_t n) {
  int rc = rare(g_hot.next.posix_memalign)(out, alignment, n);
  if (rc == 0) noteAllocation(*out, n);
  return rc;
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* valloc(size_t n) {
  void* p = rare(g_hot.next.valloc)(n);
  noteAllocation(p, n);
  return p;
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* pvalloc(size_t n) {
  void* p = rare(g_hot.next.pvalloc)(n);
  noteAllocation(p, n);
  return p;
}

}  // extern "C"

// Every replaceable global allocation and deallocation function ([new.delete]); they reach the allocator through
// the same paths as malloc and free, so each allocation is seen once.
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new(size_t n) { return newObject(n); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new[](size_t n) { return newObject(n); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return newObjectNothrow(n);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return newObjectNothrow(n);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new(size_t n, std::align_val_t al) { return newAligned(n, al); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new[](size_t n, std::align_val_t al) { return newAligned(n, al); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new(size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return newAlignedNothrow(n, al);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* operator new[](size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return newAlignedNothrow(n, al);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete(void* p) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete[](void* p) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete(void* p, size_t) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete[](void* p, size_t) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete(void* p, std::align_val_t) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete(void* p, size_t, std::align_val_t) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete[](void* p, size_t, std::align_val_t) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
