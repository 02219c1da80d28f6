// The allocation entry points of the shared agent (never of the static one: a program that links the agent
// statically keeps its allocator to itself). Each forwards to the next definition in the process (glibc,
// jemalloc, tcmalloc: whatever comes after the agent in the search order). The hot three (malloc, calloc, free,
// and operator new and delete through them) jump through g_hot.routes: straight to the allocator while nothing is
// sampled, so that an idle agent costs one indirect jump a call; while sampling, to versions that count the bytes
// down towards the next sample (sampler.h).
//
// A sampled block is allocated a little larger, with a header just before the pointer the program gets: free must
// tell sampled blocks from the others, and the word before a pointer is one it reads in one load, from the cache
// line the allocator itself is about to read (glibc's chunk size lives there). Without the header, every free had
// to look its address up in a filter of sampled addresses: some 20 instructions against 12 (cachegrind), and a load
// from an array that grew with the live samples, out of the cache. Blocks never sampled are passed through unchanged. Any entry point's memory can still be
// released through any other (aligned memory through free, realloc of anything), and misuse such as a double free
// still reaches the real allocator, which detects it as it would have.
#include <dlfcn.h>
#include <gnu/libc-version.h>
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
using UsableSizeFn = size_t (*)(void*);

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
  std::atomic<UsableSizeFn> malloc_usable_size{nullptr};
};
// What every call reads, in one cache line: the routes, and where the counting versions forward to. Constant-
// initialized (constexpr constructors): libraries initialized before the agent allocate through it.
struct alignas(64) HotState {
  Routes routes{bootMalloc, bootCalloc, bootFree};
  // Which low bits of a pointer say whether the 16 bytes before it may be read: none with glibc, whose chunk
  // header is always there; with another allocator, the pointer's offset in its page, as a block at the start of
  // a page may follow an unmapped one.
  std::atomic<uintptr_t> readable_mask{4095};
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

// Whether the free the agent forwards to is glibc's: defined in the module that defines gnu_get_libc_version (a
// name no allocator takes over, where tcmalloc, for one, defines even __libc_free).
bool freeIsGlibcs() {
  Dl_info free_info{}, libc_info{};
  return dladdr(reinterpret_cast<void*>(g_hot.next.free.load(std::memory_order_relaxed)), &free_info) != 0 &&
         dladdr(reinterpret_cast<void*>(&gnu_get_libc_version), &libc_info) != 0 &&
         free_info.dli_fbase == libc_info.dli_fbase;
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
  g_hot.next.malloc_usable_size.store(lookUp<UsableSizeFn>("malloc_usable_size"), std::memory_order_relaxed);
  g_hot.readable_mask.store(freeIsGlibcs() ? ~uintptr_t{0} : 4095, std::memory_order_relaxed);
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

// Just before a sampled block's pointer. The tag is the pointer XOR the key while the block is live, and that XOR
// 1 once it is freed (glibc only, below); any other word there means the pointer carries no header.
struct Header {
  uint64_t size;    // as asked for
  uint64_t offset;  // from the allocator's block to the pointer
  uint64_t tag;
};
constexpr size_t kHeaderRoom = 32;  // a multiple of 16, so that malloc's alignment is kept
constexpr size_t kMinAlignment = 16;
constexpr uint64_t kTagLive = 0;
constexpr uint64_t kTagFreed = 1;

Header* headerOf(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - sizeof(Header)); }

// kTagLive, kTagFreed, or anything else when p carries no header (and always for a null pointer).
__attribute__((always_inline)) inline uint64_t tagOf(void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  if ((address & g_hot.readable_mask.load(std::memory_order_relaxed)) < sizeof(Header)) return ~uint64_t{0};
  return headerOf(p)->tag ^ address ^ g_hot.routes.tag_key.load(std::memory_order_relaxed);
}

// A sampled block of n bytes, aligned to `alignment` (a power of two), zeroed if asked; null when the allocator
// has no memory, or when the header cannot be told apart on free (page-aligned blocks from an allocator other than
// glibc, whose pointers may start a page).
CPPOPS_HOOK_PATH void* allocateWithHeader(size_t alignment, size_t n, bool zeroed) {
  // Pairs with the sampler's release of the routes that led here: the tag key set before them is seen.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uintptr_t readable_mask = g_hot.readable_mask.load(std::memory_order_relaxed);
  const size_t step = std::max(alignment, kMinAlignment);
  if (step > readable_mask) return nullptr;
  // Room for the header, and a whole step more in case the pointer must move past the start of a page (below).
  const size_t offset = std::max(step, kHeaderRoom);
  size_t need = 0;
  if (__builtin_add_overflow(n, 2 * offset, &need)) return nullptr;
  void* block = nullptr;
  if (step == kMinAlignment)
    block = zeroed ? g_hot.next.calloc.load(std::memory_order_relaxed)(1, need)
                   : g_hot.next.malloc.load(std::memory_order_relaxed)(need);
  else if (rare(g_hot.next.posix_memalign)(&block, step, need) != 0)
    block = nullptr;
  if (block == nullptr) return nullptr;
  auto address = reinterpret_cast<uintptr_t>(block) + offset;
  // The free check reads no header in the first bytes of a page (readable_mask): one offset further on. The pointer
  // is step-aligned and the offset a multiple of both the step and 32, so that lands at least 32 bytes into the page
  // (page-aligned steps are refused above for such an allocator).
  if ((address & readable_mask) < sizeof(Header)) address += offset;
  void* p = reinterpret_cast<void*>(address);
  *headerOf(p) = Header{n, address - reinterpret_cast<uintptr_t>(block),
                        address ^ g_hot.routes.tag_key.load(std::memory_order_relaxed) ^ kTagLive};
  return p;
}

// The allocation that is due is a sample: a block with a header, recorded. Null when that cannot be (see
// allocateWithHeader), for the caller to allocate as usual.
CPPOPS_HOOK_PATH void* allocateSample(size_t alignment, size_t n, bool zeroed) {
  void* p = allocateWithHeader(alignment, n, zeroed);
  if (p != nullptr) recordSample(p, n);
  return p;
}

// For the entry points that do not go through g_hot.routes: a sample of n bytes if one is due, else null.
CPPOPS_HOOK_PATH void* sampleIfDue(size_t alignment, size_t n) {
  if (!sampling() || notYetDue(n) || !takesSample(n)) return nullptr;
  return allocateSample(alignment, n, false);
}

// The rare allocation that is due: out of line, so that the common path needs no stack frame.
CPPOPS_HOOK_PATH void* allocateDue(size_t n) {
  if (takesSample(n))
    if (void* p = allocateSample(kMinAlignment, n, false)) return p;
  return g_hot.next.malloc.load(std::memory_order_relaxed)(n);
}

CPPOPS_HOOK_PATH void* callocDue(size_t count, size_t size, size_t n) {
  if (takesSample(n))
    if (void* p = allocateSample(kMinAlignment, n, true)) return p;
  return g_hot.next.calloc.load(std::memory_order_relaxed)(count, size);
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

// p carries a header (tag kTagLive or kTagFreed): its block goes back to the allocator. A second free of a block
// finds it marked freed and passes the allocator the same block again, which the allocator then reports as a
// double free, as it would have without the agent. Only with glibc, though, whose own chunk header takes the word
// before any pointer it hands out later: the mark can never be mistaken for that of a later block at the same address.
// With another allocator the tag is cleared instead.
CPPOPS_HOOK_PATH void freeWithHeader(void* p, uint64_t tag) noexcept {
  Header* header = headerOf(p);
  void* block = static_cast<char*>(p) - header->offset;
  if (tag == kTagLive) {
    forgetSampled(p);
    const bool glibc = g_hot.readable_mask.load(std::memory_order_relaxed) == ~uintptr_t{0};
    header->tag = glibc ? header->tag ^ kTagLive ^ kTagFreed : 0;
  }
  g_hot.next.free.load(std::memory_order_relaxed)(block);
}

// Whatever g_free_check asks for.
CPPOPS_HOOK_PATH void checkedFree(void* p) noexcept {
  const uint8_t check = g_free_check.load(std::memory_order_relaxed);
  if (p == nullptr || ((check & kCheckArena) != 0 && inArena(p))) return;
  if ((check & kCheckHeader) != 0) {
    const uint64_t tag = tagOf(p);
    if (tag <= kTagFreed) return freeWithHeader(p, tag);
  }
  g_hot.next.free.load(std::memory_order_relaxed)(p);
}

// Once sampling has started, with no bootstrap arena to mind: most frees are of blocks without a header, which the
// word before them says.
CPPOPS_HOOK_PATH void taggedFree(void* p) noexcept {
  FreeFn next = g_hot.next.free.load(std::memory_order_relaxed);
  const uint64_t tag = tagOf(p);
  if (__builtin_expect(tag > kTagFreed, 1)) return next(p);
  freeWithHeader(p, tag);
}

RouteChoices routeChoices() {
  RouteChoices c;
  c.malloc_direct = g_hot.next.malloc.load(std::memory_order_relaxed);
  c.malloc_counted = countedMalloc;
  c.calloc_direct = g_hot.next.calloc.load(std::memory_order_relaxed);
  c.calloc_counted = countedCalloc;
  c.free_direct = g_hot.next.free.load(std::memory_order_relaxed);
  c.free_tagged = taggedFree;
  c.free_checked = checkedFree;
  return c;
}

__attribute__((always_inline)) inline void* allocate(size_t n) {
  return g_hot.routes.malloc.load(std::memory_order_relaxed)(n);
}

__attribute__((always_inline)) inline void release(void* p) { g_hot.routes.free.load(std::memory_order_relaxed)(p); }

bool isPowerOfTwo(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

__attribute__((always_inline)) inline void* allocateAligned(size_t alignment, size_t n) {
  if (void* p = sampleIfDue(alignment, n)) return p;
  void* p = nullptr;
  if (rare(g_hot.next.posix_memalign)(&p, alignment, n) != 0) return nullptr;
  return p;
}

// What the program may use of a block: for a sampled one, what its allocator gives beyond the header.
size_t usableSize(void* p) {
  UsableSizeFn next = rare(g_hot.next.malloc_usable_size);
  if ((g_free_check.load(std::memory_order_relaxed) & kCheckHeader) == 0 || tagOf(p) != kTagLive) return next(p);
  const Header* header = headerOf(p);
  return next(static_cast<char*>(p) - header->offset) - header->offset;
}

// realloc of a sampled block: a new block (itself sampled or not, as any allocation of n bytes), the contents
// copied, the old one freed. realloc(p, 0) frees p and returns null, as glibc's does.
CPPOPS_HOOK_PATH void* reallocateSample(void* p, size_t n) {
  if (n == 0) {
    release(p);
    return nullptr;
  }
  void* q = allocate(n);
  if (q == nullptr) return nullptr;  // p stays the caller's, as it was
  std::memcpy(q, p, std::min(n, usableSize(p)));
  release(p);
  return q;
}

// The allocator's realloc gave q (n bytes) when a sample was due: it moves into a block with a header, unless that
// cannot be had.
CPPOPS_HOOK_PATH void* moveIntoSample(void* q, size_t n) {
  void* p = allocateSample(kMinAlignment, n, false);
  if (p == nullptr) return q;
  std::memcpy(p, q, n);
  g_hot.next.free.load(std::memory_order_relaxed)(q);
  return p;
}

CPPOPS_HOOK_PATH void* reallocate(void* p, size_t n) {
  ReallocFn next = g_hot.next.realloc.load(std::memory_order_relaxed);
  const uint8_t check = g_free_check.load(std::memory_order_relaxed);
  if (__builtin_expect(check == 0, 1)) return next(p, n);
  if (p != nullptr && (check & kCheckArena) != 0 && inArena(p)) {
    void* q = allocate(n);
    if (q != nullptr) std::memcpy(q, p, std::min(n, arenaBlockSize(p)));
    return q;
  }
  if ((check & kCheckHeader) != 0 && tagOf(p) == kTagLive) return reallocateSample(p, n);
  void* q = next(p, n);
  if (q != nullptr && sampling() && !notYetDue(n) && takesSample(n)) return moveIntoSample(q, n);
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

// The aligned entry points sample only alignments the allocator would take as they are (powers of two); the rest
// it rounds or refuses, as it decides.
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* memalign(size_t alignment, size_t n) {
  if (isPowerOfTwo(alignment))
    if (void* p = sampleIfDue(alignment, n)) return p;
  return rare(g_hot.next.memalign)(alignment, n);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* aligned_alloc(size_t alignment, size_t n) {
  if (isPowerOfTwo(alignment))
    if (void* p = sampleIfDue(alignment, n)) return p;
  return rare(g_hot.next.aligned_alloc)(alignment, n);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH int posix_memalign(void** out, size_t alignment, size_t n) {
  if (isPowerOfTwo(alignment) && alignment % sizeof(void*) == 0) {
    if (void* p = sampleIfDue(alignment, n)) {
      *out = p;
      return 0;
    }
  }
  return rare(g_hot.next.posix_memalign)(out, alignment, n);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* valloc(size_t n) {
  if (void* p = sampleIfDue(static_cast<size_t>(getpagesize()), n)) return p;
  return rare(g_hot.next.valloc)(n);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void* pvalloc(size_t n) {
  const auto page = static_cast<size_t>(getpagesize());
  // pvalloc's block is whole pages: that is what it allocates, and what is counted.
  size_t pages = 0;
  if (!__builtin_add_overflow(n, page - 1, &pages))
    if (void* p = sampleIfDue(page, pages & ~(page - 1))) return p;
  return rare(g_hot.next.pvalloc)(n);
}

CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH size_t malloc_usable_size(void* p) {
  if (p == nullptr) return 0;
  if ((g_free_check.load(std::memory_order_relaxed) & kCheckArena) != 0 && inArena(p)) return arenaBlockSize(p);
  return usableSize(p);
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
