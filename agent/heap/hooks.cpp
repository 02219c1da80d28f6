// The allocation entry points of the shared agent (never of the static one: a program that links the agent
// statically keeps its allocator to itself). Each forwards to the next definition in the process (glibc,
// jemalloc, tcmalloc: whatever comes after the agent in the search order). The hot three (malloc, calloc, free,
// and operator new and delete through them) jump through g_hot.routes: straight to the allocator while nothing is
// sampled, so that an idle agent costs one indirect jump a call; while sampling, to versions that count the bytes
// down towards the next sample (sampler.h).
//
// A sampled block is allocated 8 bytes larger and its last usable word tagged (allocateSample): free must tell
// sampled blocks from the others, and with glibc the block's end is found from the word before the pointer, which
// glibc's free reads next anyway. Pointers are never changed: every block the program holds is one its allocator
// handed out, so code that reaches the allocator without these entry points (a library loaded with RTLD_DEEPBIND,
// a call of __libc_free) still hands it a block it knows. Any entry point's memory can be released through any
// other (aligned memory through free, realloc of anything), and misuse such as a double free still reaches the real
// allocator, which detects it as it would have.
#include <dlfcn.h>
#include <link.h>
#include <gnu/libc-version.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>

#include "heap/glibc_chunk.h"
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
using SdallocxFn = void (*)(void*, size_t, int);             // jemalloc's sized free
using FreeSizedFn = void (*)(void*, size_t);                 // C23's, and tcmalloc's tc_free_sized and the like
using FreeAlignedSizedFn = void (*)(void*, size_t, size_t);  // C23's, and tcmalloc's aligned ones
using MallocxFn = void* (*)(size_t, int);                    // jemalloc's, which takes an alignment and zeroes
using RallocxFn = void* (*)(void*, size_t, int);             // jemalloc's realloc, which takes an alignment

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
// For an allocator without such a sized free (glibc has no sdallocx, and before 2.39 or so no free_sized): free.
template <typename... Size>
void releaseWithoutSize(void* p, Size...) noexcept;
constexpr SdallocxFn kSdallocxAbsent = releaseWithoutSize<size_t, int>;
constexpr FreeSizedFn kFreeSizedAbsent = releaseWithoutSize<size_t>;
constexpr FreeAlignedSizedFn kFreeAlignedSizedAbsent = releaseWithoutSize<size_t, size_t>;

// The next definitions. Until resolved, the hot four point at their bootstrap versions (so the hot path needs no
// "resolved?" check); the rest are resolved before any of them can be reached through resolve(), the sized frees
// last (releaseSized).
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
  std::atomic<SdallocxFn> sdallocx{nullptr};
  std::atomic<FreeSizedFn> free_sized{nullptr};
  std::atomic<FreeAlignedSizedFn> free_aligned_sized{nullptr};
  std::atomic<FreeSizedFn> tc_free_sized{nullptr};
  std::atomic<FreeSizedFn> tc_delete_sized{nullptr};
  std::atomic<FreeSizedFn> tc_deletearray_sized{nullptr};
  std::atomic<FreeAlignedSizedFn> tc_delete_sized_aligned{nullptr};
  std::atomic<FreeAlignedSizedFn> tc_deletearray_sized_aligned{nullptr};
  std::atomic<MallocxFn> mallocx{nullptr};  // the allocator's own mallocx and rallocx, when it has them
  std::atomic<RallocxFn> rallocx{nullptr};
};
// What every call reads, in one cache line: the routes, and where the counting versions forward to. Constant-
// initialized (constexpr constructors): libraries initialized before the agent allocate through it.
struct alignas(64) HotState {
  Routes routes{bootMalloc, bootCalloc, bootFree};
  Next next;
  // The allocator is glibc's: a block's usable size can be read from its chunk header (allocatorUsableSize).
  std::atomic<bool> glibc_chunks{false};
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

template <typename Fn>
Fn lookUpOr(const char* name, Fn absent) {
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  return fn != nullptr ? fn : absent;
}

// The module that defines fn, or null.
const void* moduleOf(const void* fn) {
  Dl_info info{};
  return dladdr(fn, &info) != 0 ? info.dli_fbase : nullptr;
}

// Whether the free the agent forwards to is glibc's: defined in the module that defines gnu_get_libc_version (a
// name no allocator takes over, where tcmalloc, for one, defines even __libc_free).
bool freeIsGlibcs() {
  const void* free_module = moduleOf(reinterpret_cast<const void*>(g_hot.next.free.load(std::memory_order_relaxed)));
  return free_module != nullptr && free_module == moduleOf(reinterpret_cast<const void*>(&gnu_get_libc_version));
}

int findValgrindTool(dl_phdr_info* info, size_t, void* found) {
  const char* name = std::strstr(info->dlpi_name, "/vgpreload_");
  if (name != nullptr && std::strncmp(name, "/vgpreload_core", 15) != 0) *static_cast<bool*>(found) = true;
  return 0;
}

// Why sampled blocks cannot be tagged in this process, or null when they can: the last word of a block is found
// with the allocator's malloc_usable_size (glibc's read in line), which must be the allocator's own. Called by the
// sampler as each session starts, outside any allocation.
const char* cannotTag() {
  bool valgrind_tool = false;
  dl_iterate_phdr(findValgrindTool, &valgrind_tool);
  // A valgrind tool such as memcheck serves glibc's entry points from its own allocator, whose blocks have no
  // glibc chunk header.
  if (valgrind_tool)
    return "the process runs under a valgrind tool that replaces the allocator; valgrind's --tool=massif or "
           "--tool=dhat profiles the heap there";
  if (g_hot.glibc_chunks.load(std::memory_order_relaxed)) return nullptr;
  const void* free_module = moduleOf(reinterpret_cast<const void*>(g_hot.next.free.load(std::memory_order_relaxed)));
  const void* usable_module =
      moduleOf(reinterpret_cast<const void*>(g_hot.next.malloc_usable_size.load(std::memory_order_relaxed)));
  if (free_module == nullptr || free_module != usable_module)
    return "the process's allocator has no malloc_usable_size of its own, which the agent needs to mark sampled "
           "blocks; profile the heap with the allocator's own tools";
  return nullptr;
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
  g_hot.glibc_chunks.store(freeIsGlibcs(), std::memory_order_relaxed);
  g_hot.next.malloc.store(next_malloc, std::memory_order_release);
  registerHooks(reinterpret_cast<void*>(&cppops_heap_own_malloc), &g_hot.routes, routeChoices());
  t_resolving = false;
  // The sized frees last, with the routes set: on an allocator without them (glibc has none of tcmalloc's, and no
  // free_sized before 2.39) dlsym fails and allocates its error message, which now goes to the allocator. Under
  // t_resolving it would come from the bootstrap arena, and a bootstrap block makes every free of the process check
  // for one for good (kCheckArena): about 1 ns a free. Until they are stored, sized frees go through free.
  g_hot.next.sdallocx.store(lookUpOr("sdallocx", kSdallocxAbsent), std::memory_order_release);
  g_hot.next.free_sized.store(lookUpOr("free_sized", kFreeSizedAbsent), std::memory_order_release);
  g_hot.next.free_aligned_sized.store(lookUpOr("free_aligned_sized", kFreeAlignedSizedAbsent),
                                      std::memory_order_release);
  g_hot.next.tc_free_sized.store(lookUpOr("tc_free_sized", kFreeSizedAbsent), std::memory_order_release);
  g_hot.next.tc_delete_sized.store(lookUpOr("tc_delete_sized", kFreeSizedAbsent), std::memory_order_release);
  g_hot.next.tc_deletearray_sized.store(lookUpOr("tc_deletearray_sized", kFreeSizedAbsent),
                                        std::memory_order_release);
  g_hot.next.tc_delete_sized_aligned.store(lookUpOr("tc_delete_sized_aligned", kFreeAlignedSizedAbsent),
                                           std::memory_order_release);
  g_hot.next.tc_deletearray_sized_aligned.store(lookUpOr("tc_deletearray_sized_aligned", kFreeAlignedSizedAbsent),
                                                std::memory_order_release);
  const auto mallocx = lookUpOr<MallocxFn>("mallocx", nullptr);
  const auto rallocx = lookUpOr<RallocxFn>("rallocx", nullptr);
  const void* free_module = moduleOf(reinterpret_cast<const void*>(g_hot.next.free.load(std::memory_order_relaxed)));
  if (mallocx != nullptr && rallocx != nullptr && moduleOf(reinterpret_cast<const void*>(mallocx)) == free_module &&
      moduleOf(reinterpret_cast<const void*>(rallocx)) == free_module) {
    g_hot.next.rallocx.store(rallocx, std::memory_order_release);
    g_hot.next.mallocx.store(mallocx, std::memory_order_release);
  }
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

// A sampled block starts at a multiple of the session's sample alignment (g_sample_alignment), so that free can pass
// most blocks by on their address alone. It is asked of the allocator 8 bytes larger than the program asked for, and
// its last usable word holds a tag: the pointer XOR the key. The pointer itself is the allocator's own, so whatever
// frees it, even code that bypasses these entry points, hands the allocator a block it knows. A tag is only a hint: the
// sampler's table of sampled addresses has the last word, and a block that is freed behind the agent's back (its tag
// left in freed memory) costs at worst one visit to that table. malloc_usable_size is left to the allocator and answers
// the whole block, tag included: it cannot tell for sure which blocks are sampled (a tag may be left in memory freed
// where the agent could not see it, and handed out again), and answering less than the program asked for would break
// its promise. A program that writes into that slack may overwrite a tag: its sample then stays recorded until the
// session ends or its address is sampled again, an error in the profile, never in the program.

// The usable size of a block, as the allocator's malloc_usable_size would say; glibc's read in line, from the word
// before p that its free reads next anyway. p is not null.
template <bool kGlibc>
__attribute__((always_inline)) inline size_t allocatorUsableSize(void* p) {
  if constexpr (kGlibc)
    return glibcUsableSize(p);
  else
    return g_hot.next.malloc_usable_size.load(std::memory_order_relaxed)(p);
}

__attribute__((always_inline)) inline size_t allocatorUsableSize(void* p) {
  return g_hot.glibc_chunks.load(std::memory_order_relaxed) ? allocatorUsableSize<true>(p)
                                                            : allocatorUsableSize<false>(p);
}

__attribute__((always_inline)) inline uint64_t tagFor(void* p) {
  return reinterpret_cast<uintptr_t>(p) ^ g_hot.routes.tag_key.load(std::memory_order_relaxed);
}

// Where the tag of p (not null) would be, given its usable size: the block's last usable word.
__attribute__((always_inline)) inline uint64_t* tagSlot(void* p, size_t usable) {
  return reinterpret_cast<uint64_t*>(static_cast<char*>(p) + usable) - 1;
}

// Whether p may be a block sampled in this session, from its address alone (Routes::sample_mask). The mask a free
// reads is the session's: a block sampled in it was allocated after its thread saw the sampling routes
// (allocateSample's fence), which were set after the mask, and a free of that block comes after its allocation.
__attribute__((always_inline)) inline bool mayBeSampled(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & g_hot.routes.sample_mask.load(std::memory_order_relaxed)) == 0;
}

// The tag slot of p when p carries a tag, else null (and always for a null pointer). Behind glibc, samples are
// aligned as every block is (RouteChoices::most_sample_alignment), and the address tells nothing.
template <bool kGlibc>
__attribute__((always_inline)) inline uint64_t* sampledTag(void* p) {
  if ((!kGlibc && !mayBeSampled(p)) || p == nullptr) return nullptr;
  const size_t usable = allocatorUsableSize<kGlibc>(p);
  // glibc's smallest chunk has 24 usable bytes; another allocator may answer less, even 0.
  if (!kGlibc && usable < sizeof(uint64_t)) return nullptr;
  uint64_t* tag = tagSlot(p, usable);
  return *tag == tagFor(p) ? tag : nullptr;
}

__attribute__((always_inline)) inline uint64_t* sampledTag(void* p) {
  return g_hot.glibc_chunks.load(std::memory_order_relaxed) ? sampledTag<true>(p) : sampledTag<false>(p);
}

__attribute__((always_inline)) inline void releaseToAllocator(void* p) {
  g_hot.next.free.load(std::memory_order_relaxed)(p);
}

// jemalloc's MALLOCX_LG_ALIGN(lg): lg itself.
int lgAlign(size_t alignment) { return __builtin_ctzl(alignment); }

// A block of `need` bytes at the sample alignment and at `alignment` (0 for none), zeroed if asked; null when the
// allocator has none.
void* allocateForSample(size_t alignment, size_t need, bool zeroed) {
  alignment = std::max<size_t>(alignment, g_sample_alignment.load(std::memory_order_relaxed));
  if (alignment <= 16)  // what malloc and calloc give
    return zeroed ? g_hot.next.calloc.load(std::memory_order_relaxed)(1, need)
                  : g_hot.next.malloc.load(std::memory_order_relaxed)(need);
  if (zeroed) {
    // jemalloc zeroes only what it does not know to be zero already: a large block fresh from the system stays
    // untouched, where a memset would make all of it resident.
    if (const MallocxFn mallocx = g_hot.next.mallocx.load(std::memory_order_acquire)) {
      constexpr int kZero = 0x40;  // MALLOCX_ZERO
      return mallocx(need, lgAlign(alignment) | kZero);
    }
    // Elsewhere calloc's block is taken when it happens to be aligned (tcmalloc's large blocks start at a page).
    void* p = g_hot.next.calloc.load(std::memory_order_relaxed)(1, need);
    if (p == nullptr || mayBeSampled(p)) return p;
    releaseToAllocator(p);
  }
  void* p = nullptr;
  if (rare(g_hot.next.posix_memalign)(&p, alignment, need) != 0) return nullptr;
  if (zeroed) std::memset(p, 0, need);
  return p;
}

// A sampled block of n bytes (aligned to `alignment` unless that is 0, zeroed if asked), tagged and recorded; null
// when the allocator has no memory for it, for the caller to ask for n bytes as usual.
CPPOPS_HOOK_PATH void* allocateSample(size_t alignment, size_t n, bool zeroed) {
  // Pairs with the sampler's release of the routes that led here: the tag key and sample mask set before them are
  // seen.
  std::atomic_thread_fence(std::memory_order_acquire);
  size_t need = 0;
  if (__builtin_add_overflow(n, sizeof(uint64_t), &need)) return nullptr;
  void* p = allocateForSample(alignment, need, zeroed);
  if (p == nullptr) return nullptr;
  *tagSlot(p, allocatorUsableSize(p)) = tagFor(p);
  recordSample(p, n);
  return p;
}

// For the aligned entry points, which do not go through g_hot.routes: a sample of n bytes if one is due, else null.
CPPOPS_HOOK_PATH void* sampleIfDue(size_t alignment, size_t n) {
  if (!sampling() || notYetDue(n) || !takesSample(n)) return nullptr;
  return allocateSample(alignment, n, false);
}

// The rare allocation that is due: out of line, so that the common path needs no stack frame.
CPPOPS_HOOK_PATH void* allocateDue(size_t n) {
  if (takesSample(n))
    if (void* p = allocateSample(0, n, false)) return p;
  return g_hot.next.malloc.load(std::memory_order_relaxed)(n);
}

CPPOPS_HOOK_PATH void* callocDue(size_t count, size_t size, size_t n) {
  if (takesSample(n))
    if (void* p = allocateSample(0, n, true)) return p;
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

// p is sampled: the sampler forgets it before the allocator can hand the address out again, and its tag is cleared,
// so that freeing it a second time reaches the allocator as an untagged block, which the allocator reports as the
// double free it is.
CPPOPS_HOOK_PATH void unsample(void* p, uint64_t* tag) noexcept {
  forgetSampled(p);
  *tag = 0;
}

CPPOPS_HOOK_PATH void freeSample(void* p, uint64_t* tag) noexcept {
  unsample(p, tag);
  releaseToAllocator(p);
}

// Whatever g_free_check asks for.
CPPOPS_HOOK_PATH void checkedFree(void* p) noexcept {
  const uint8_t check = g_free_check.load(std::memory_order_relaxed);
  if (p == nullptr || ((check & kCheckArena) != 0 && inArena(p))) return;
  if ((check & kCheckTag) != 0)
    if (uint64_t* tag = sampledTag(p)) return freeSample(p, tag);
  releaseToAllocator(p);
}

// Once sampling has started, with no bootstrap arena to mind: most frees are of untagged blocks. One version for
// glibc, whose chunk sizes are read in line, and one that asks the allocator.
template <bool kGlibc>
CPPOPS_HOOK_PATH void taggedFree(void* p) noexcept {
  FreeFn next = g_hot.next.free.load(std::memory_order_relaxed);
  uint64_t* tag = sampledTag<kGlibc>(p);
  if (__builtin_expect(tag == nullptr, 1)) return next(p);
  freeSample(p, tag);
}

// Behind another allocator, whose malloc_usable_size is a call, the address filter comes first and on its own:
// the frees it passes by then need no stack frame.
CPPOPS_HOOK_PATH void filteredFree(void* p) noexcept {
  if (__builtin_expect(!mayBeSampled(p), 1)) return g_hot.next.free.load(std::memory_order_relaxed)(p);
  taggedFree<false>(p);
}

RouteChoices routeChoices() {
  RouteChoices c;
  c.malloc_direct = g_hot.next.malloc.load(std::memory_order_relaxed);
  c.malloc_counted = countedMalloc;
  c.calloc_direct = g_hot.next.calloc.load(std::memory_order_relaxed);
  c.calloc_counted = countedCalloc;
  c.free_direct = g_hot.next.free.load(std::memory_order_relaxed);
  c.free_tagged = g_hot.glibc_chunks.load(std::memory_order_relaxed) ? taggedFree<true> : filteredFree;
  c.free_checked = checkedFree;
  constexpr uint64_t kPage = 4096;
  c.most_sample_alignment = g_hot.glibc_chunks.load(std::memory_order_relaxed) ? 16 : kPage;
  c.cannot_tag = cannotTag;
  return c;
}

__attribute__((always_inline)) inline void* allocate(size_t n) {
  return g_hot.routes.malloc.load(std::memory_order_relaxed)(n);
}

__attribute__((always_inline)) inline void release(void* p) { g_hot.routes.free.load(std::memory_order_relaxed)(p); }

bool isPowerOfTwo(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

template <typename... Size>
void releaseWithoutSize(void* p, Size...) noexcept {
  release(p);
}

// A sized free: p goes to the allocator's with the size the program passes, unless it must go through free, which
// takes none. A sampled block is larger than that size (its tag), perhaps of the allocator's next size class; no
// allocator owns the bootstrap arena.
template <typename Fn, typename... Size>
__attribute__((always_inline)) inline void releaseSized(std::atomic<Fn>& next, void* p, Size... size) {
  const uint8_t check = g_free_check.load(std::memory_order_relaxed);
  if (__builtin_expect(check != 0, 0) && p != nullptr &&
      (((check & kCheckArena) != 0 && inArena(p)) || ((check & kCheckTag) != 0 && sampledTag(p) != nullptr)))
    return release(p);
  if (const Fn sized = next.load(std::memory_order_acquire)) return sized(p, size...);
  release(p);  // before resolve() has looked it up
}

__attribute__((always_inline)) inline void* allocateAligned(size_t alignment, size_t n) {
  if (void* p = sampleIfDue(alignment, n)) return p;
  void* p = nullptr;
  if (rare(g_hot.next.posix_memalign)(&p, alignment, n) != 0) return nullptr;
  return p;
}

// realloc when a sample is due: asked of the allocator 8 bytes larger, then tagged. (When that larger request
// fails, the one the program made is tried as it was.) jemalloc is asked for the sample alignment, and grows the
// block in place or moves it with one copy. Behind another allocator, whose realloc takes no alignment, the block
// it returns is copied into one at the sample alignment when it is not there already: a block grown in place, the
// usual fate of a large one that was sampled before, keeps its start and needs no copy.
CPPOPS_HOOK_PATH void* reallocateIntoSample(void* p, size_t n) {
  ReallocFn next = g_hot.next.realloc.load(std::memory_order_relaxed);
  size_t need = 0;
  if (__builtin_add_overflow(n, sizeof(uint64_t), &need)) return next(p, n);
  const size_t alignment = g_sample_alignment.load(std::memory_order_relaxed);
  const RallocxFn rallocx =
      p != nullptr && alignment > 16 ? g_hot.next.rallocx.load(std::memory_order_acquire) : nullptr;
  void* q = rallocx != nullptr ? rallocx(p, need, lgAlign(alignment)) : next(p, need);
  if (q == nullptr) return next(p, n);
  if (!mayBeSampled(q)) {
    void* aligned = allocateForSample(0, need, false);
    if (aligned == nullptr) return q;  // the program's block all the same, unsampled
    std::memcpy(aligned, q, n);
    releaseToAllocator(q);
    q = aligned;
  }
  *tagSlot(q, allocatorUsableSize(q)) = tagFor(q);
  recordSample(q, n);
  return q;
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
  // A sampled block becomes an ordinary one before the allocator may move (and so free) it. Should the allocator
  // then fail for lack of memory, the block stays the program's, uncounted: one sample lost.
  if ((check & kCheckTag) != 0)
    if (uint64_t* tag = sampledTag(p)) unsample(p, tag);
  // realloc(p, 0) frees p (glibc): nothing to sample.
  if (n == 0 || !sampling() || notYetDue(n) || !takesSample(n)) return next(p, n);
  return reallocateIntoSample(p, n);
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

// The sized frees, for programs that call them themselves (folly calls jemalloc's sdallocx, for one; tcmalloc's
// own are in its C API).
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void sdallocx(void* p, size_t size, int flags) {
  releaseSized(g_hot.next.sdallocx, p, size, flags);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void free_sized(void* p, size_t size) {
  releaseSized(g_hot.next.free_sized, p, size);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void free_aligned_sized(void* p, size_t alignment, size_t size) {
  releaseSized(g_hot.next.free_aligned_sized, p, alignment, size);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void tc_free_sized(void* p, size_t size) {
  releaseSized(g_hot.next.tc_free_sized, p, size);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void tc_delete_sized(void* p, size_t size) {
  releaseSized(g_hot.next.tc_delete_sized, p, size);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void tc_deletearray_sized(void* p, size_t size) {
  releaseSized(g_hot.next.tc_deletearray_sized, p, size);
}
// std::align_val_t is passed as the size_t it is.
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void tc_delete_sized_aligned(void* p, size_t size, size_t alignment) {
  releaseSized(g_hot.next.tc_delete_sized_aligned, p, size, alignment);
}
CPPOPS_ALLOC_EXPORT CPPOPS_HOOK_PATH void tc_deletearray_sized_aligned(void* p, size_t size, size_t alignment) {
  releaseSized(g_hot.next.tc_deletearray_sized_aligned, p, size, alignment);
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
