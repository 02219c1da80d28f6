#include "heap/sampler.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstring>
#include <ctime>

#include "own_threads.h"
#include "sigsafe/cfi_unwind.h"

namespace cppops::agent::heap {

std::atomic<bool> g_sampling{false};
std::atomic<uint64_t> g_sample_alignment{16};
std::atomic<uint8_t> g_free_check{0};
__thread ThreadState t_heap_state __attribute__((tls_model("initial-exec")));

// The hook section's bounds, from the linker: frames in it are the agent's, not the host's.
extern "C" const char __start_cppops_hooks[] __attribute__((visibility("hidden"), weak));
extern "C" const char __stop_cppops_hooks[] __attribute__((visibility("hidden"), weak));

namespace {

// Live sampled blocks: open addressing with linear probing and backward-shift deletion (no tombstones, so churn
// never degrades lookups). Each sample inserts at a random slot and each sampled free removes one, so the table
// is kept to the size of what is live, where it stays in the cache: it starts at 32 KiB and doubles when half
// full (a fixed 4 MiB table cost a cache and a TLB miss on both). At most 2^18 slots: 131,072 live samples, 64 GiB
// of heap at 512 KiB.
constexpr size_t kFirstSlots = 1024;
constexpr size_t kMaxSlots = size_t{1} << 18;
// Distinct allocation stacks, same scheme without deletion.
constexpr size_t kStackBits = 14;
constexpr size_t kStacks = size_t{1} << kStackBits;
constexpr size_t kMaxStacks = kStacks / 4 * 3;

struct Slot {
  uintptr_t address;  // 0: empty
  uint64_t size;
  double scale;       // blocks this sample stands for: 1 / (1 - exp(-size / rate))
  uint32_t stack;
  uint32_t unused;
};

// Distinct allocation stacks and their figures. Under g_lock.
struct Stack {
  uint64_t hash;
  uint32_t used;
  uint32_t depth;
  double alloc_objects, alloc_bytes;
  // The live samples' share, added as each is recorded and taken away as it is forgotten, so that reading a profile
  // need not visit every live sample under the lock. In fixed point (objects in 1/kObjectUnits), so that taking a
  // sample away leaves exactly what there was before it.
  uint64_t inuse_objects, inuse_bytes;
  uint64_t pcs[kMaxDepth];
};
constexpr double kObjectUnits = 1024;

// Never held across anything that can allocate, so the allocation path can wait for it without deadlock. Held
// for well under a microsecond (bar a table's doubling), so a waiter spins a little before it gives up its CPU:
// yielding at once cost a system call on most contended samples.
class SpinLock {
 public:
  void lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < kSpinsBeforeYield)
          relax();
        else
          sched_yield();
      }
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }
  // After fork the child has one thread; whoever held the lock in the parent is not in it.
  void reset() { locked_.store(false, std::memory_order_relaxed); }

 private:
  static constexpr int kSpinsBeforeYield = 64;
  static void relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }
  std::atomic<bool> locked_{false};
};

struct Guard {
  explicit Guard(SpinLock& l) : lock(l) { lock.lock(); }
  ~Guard() { lock.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  SpinLock& lock;
};

// An open-addressing table of slots (see above).
struct SlotTable {
  Slot* slots = nullptr;
  size_t count = 0;  // a power of two

  size_t home(uintptr_t address) const;
  size_t next(size_t i) const { return (i + 1) & (count - 1); }
  // The slot that holds address, or the empty one where its probe run ends.
  size_t find(uintptr_t address) const {
    size_t i = home(address);
    while (slots[i].address != address && slots[i].address != 0) i = next(i);
    return i;
  }
  void place(const Slot& slot) {
    size_t i = home(slot.address);
    while (slots[i].address != 0) i = next(i);
    slots[i] = slot;
  }
};

SpinLock g_lock;
SlotTable g_table;          // under g_lock: mapped from start to stop
// Under g_lock: the table g_table grew from, while its records move over, kDrainStep slots at each sample or
// sampled free that takes the lock, from g_drain_at on. Moving them all at once held the lock for milliseconds
// once tens of thousands of samples were live. Records still here are looked up here too; one removed here is
// marked kMoved rather than shifted back (a shift could carry a record past g_drain_at, where it would be missed).
SlotTable g_draining;
size_t g_drain_at = 0;
constexpr size_t kDrainStep = 16;
constexpr uintptr_t kMoved = 1;  // never a block's address
Stack* g_stacks = nullptr;  // mapped at the first start, kept for the process's life
size_t g_live = 0;          // under g_lock
size_t g_stack_count = 0;   // under g_lock
// Under g_lock: the used entries of g_stacks, in the order they were taken, so that reading a profile visits only
// those (not all 16,384 entries, 9 MiB, under the lock).
uint16_t g_stack_order[kMaxStacks];
static_assert(kStacks <= 65536, "g_stack_order holds 16-bit indices");

// The next, larger slot table is prepared ahead, outside the lock, by the sampler's own thread ("cppops-heap"):
// mapping and faulting in a doubled table took milliseconds under the lock, and every thread that sampled or freed a
// sampled block meanwhile waited. Under the lock a doubling now only swaps tables (the records follow, see
// g_draining). Before the thread is done (or if it could not be started) the table is mapped under the lock as
// before, a little fuller than it would have been: at three quarters.
Slot* g_spare_slots = nullptr;               // under g_lock: populated, twice g_table.count; or null
bool g_growth_asked = false;                 // under g_lock: the thread has a request it has not finished
uint64_t g_session = 0;                      // under g_lock: changes as the tables are reset: late work is dropped
std::atomic<uint32_t> g_growth_requests{0};  // the thread sleeps on this word (futex) between requests
uint64_t g_dropped = 0;     // under g_lock
std::atomic<uint64_t> g_rate{kDefaultRateBytes};
uint64_t g_start_ns = 0;
std::atomic<bool> g_bootstrap_used{false};
void* g_own_malloc = nullptr;
Routes* g_routes = nullptr;  // with g_route_choices, set once by registerHooks
RouteChoices g_route_choices;

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

size_t SlotTable::home(uintptr_t address) const { return mix(address) & (count - 1); }

// Populated now rather than faulted in by the samples: each fault is a copy-on-write whose TLB shootdown
// interrupts every other CPU running the process.
Slot* mapSlots(size_t count) {
  void* p = mmap(nullptr, count * sizeof(Slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                 -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<Slot*>(p);
}

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Exponentially distributed with mean `rate`, at least 1: the distance to the next sampled byte.
CPPOPS_HOOK_PATH int64_t drawCountdown(ThreadState& t, uint64_t rate) {
  if (t.rng == 0) t.rng = mix(reinterpret_cast<uintptr_t>(&t) ^ monotonicNs()) | 1;
  t.rng ^= t.rng << 13;
  t.rng ^= t.rng >> 7;
  t.rng ^= t.rng << 17;
  const double u = static_cast<double>(t.rng >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  const double next = -std::log1p(-u) * static_cast<double>(rate);
  return next >= 9.0e18 ? INT64_MAX : static_cast<int64_t>(next) + 1;
}

// Under g_lock. Returns kStacks when the table is full.
uint32_t findOrAddStack(const uint64_t* pcs, uint32_t depth) {
  uint64_t hash = depth;
  for (uint32_t i = 0; i < depth; ++i) hash = mix(hash ^ pcs[i]);
  for (size_t i = hash & (kStacks - 1);; i = (i + 1) & (kStacks - 1)) {
    Stack& s = g_stacks[i];
    if (s.used == 0) {
      if (g_stack_count >= kMaxStacks) return kStacks;
      s.used = 1;
      s.hash = hash;
      s.depth = depth;
      std::memcpy(s.pcs, pcs, depth * sizeof pcs[0]);
      g_stack_order[g_stack_count++] = static_cast<uint16_t>(i);
      return static_cast<uint32_t>(i);
    }
    if (s.hash == hash && s.depth == depth && std::memcmp(s.pcs, pcs, depth * sizeof pcs[0]) == 0)
      return static_cast<uint32_t>(i);
  }
}

void wakeGrowthThread() {
  g_growth_requests.fetch_add(1, std::memory_order_release);
  // All waiters: a thread whose session has just ended may still be asleep beside the next session's.
  syscall(SYS_futex, &g_growth_requests, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// What a thread does once it has let go of g_lock (declared before the Guard, it runs after it): the system
// calls that need not hold up every other thread that samples or frees a sampled block.
struct AfterUnlock {
  AfterUnlock() = default;
  AfterUnlock(const AfterUnlock&) = delete;
  AfterUnlock& operator=(const AfterUnlock&) = delete;
  ~AfterUnlock() {
    if (unmap.slots != nullptr) munmap(unmap.slots, unmap.count * sizeof(Slot));
    if (wake_growth_thread) wakeGrowthThread();
  }
  SlotTable unmap;
  bool wake_growth_thread = false;
};

// Under g_lock: moves up to `slots` more slots of g_draining into g_table; the drained table goes once all have.
void drain(size_t slots, AfterUnlock& after) {
  if (g_draining.slots == nullptr) return;
  const size_t end = g_draining.count - g_drain_at > slots ? g_drain_at + slots : g_draining.count;
  for (; g_drain_at < end; ++g_drain_at) {
    Slot& slot = g_draining.slots[g_drain_at];
    if (slot.address <= kMoved) continue;
    g_table.place(slot);
    slot.address = kMoved;
  }
  if (g_drain_at < g_draining.count) return;
  after.unmap = g_draining;
  g_draining = SlotTable{};
}

// A live sample's share of its stack's in-use figures: the same for a slot each time.
uint64_t inUseObjects(const Slot& slot) { return static_cast<uint64_t>(slot.scale * kObjectUnits + 0.5); }
uint64_t inUseBytes(const Slot& slot) { return static_cast<uint64_t>(slot.scale * static_cast<double>(slot.size) + 0.5); }

// Under g_lock: as a sample is recorded, and as it goes.
void addInUse(const Slot& slot) {
  Stack& s = g_stacks[slot.stack];
  s.inuse_objects += inUseObjects(slot);
  s.inuse_bytes += inUseBytes(slot);
}
void takeInUse(const Slot& slot) {
  Stack& s = g_stacks[slot.stack];
  s.inuse_objects -= inUseObjects(slot);
  s.inuse_bytes -= inUseBytes(slot);
}

// Under g_lock: removes address from g_draining; true when it was there.
bool removeDraining(uintptr_t address) {
  if (g_draining.slots == nullptr) return false;
  Slot& slot = g_draining.slots[g_draining.find(address)];
  if (slot.address == 0) return false;
  takeInUse(slot);
  slot.address = kMoved;
  return true;
}

// Under g_lock: true when one more slot fits, doubling the table if it must. False when the table is at its limit
// or the memory is not there.
bool roomForSlot(AfterUnlock& after) {
  if (g_table.slots == nullptr) return false;
  drain(kDrainStep, after);
  if ((g_live + 1) * 2 <= g_table.count) return true;
  Slot* grown = g_spare_slots;
  if (grown == nullptr) {
    // Linear probing still finds a free slot quickly at three quarters full.
    if ((g_live + 1) * 4 <= g_table.count * 3) return true;
    if (g_table.count >= kMaxSlots) return false;
    grown = mapSlots(g_table.count * 2);
    if (grown == nullptr) return false;
  }
  // With N the old table's slots, the next doubling is N/4 samples away at least, and the drain takes N/16 of
  // them: it is long over by then. Finishing any rest here keeps one table draining at a time all the same.
  drain(g_draining.count, after);
  g_spare_slots = nullptr;
  g_draining = g_table;
  g_drain_at = 0;
  g_table = SlotTable{grown, g_table.count * 2};
  return true;
}

// Under g_lock: asks the sampler's thread for the next slot table once the live samples are half way to it.
void askForGrowth(AfterUnlock& after) {
  if (g_growth_asked || g_spare_slots != nullptr || g_table.count >= kMaxSlots || g_live * 4 <= g_table.count) return;
  g_growth_asked = true;
  after.wake_growth_thread = true;
}

// Under g_lock, after roomForSlot().
void insertSlot(const Slot& slot, AfterUnlock& after) {
  // An address already there was a sampled block that was freed where the agent could not see it (by a library
  // loaded with RTLD_DEEPBIND, say): the allocator has handed the address out again, and the old record goes.
  const size_t i = g_table.find(slot.address);
  if (g_table.slots[i].address != 0)
    takeInUse(g_table.slots[i]);
  else if (!removeDraining(slot.address))
    ++g_live;
  g_table.slots[i] = slot;
  addInUse(slot);
  askForGrowth(after);
}

// On the sampler's thread of `session`: maps the next slot table, then offers it, unless the tables were reset (or
// grew without it) meanwhile. Nobody else touches that memory until it is offered: requests are served one at a
// time, by this thread alone. False once the session is over: the thread then ends.
bool prepareGrowth(uint64_t session) {
  size_t slot_count = 0;
  {
    Guard guard(g_lock);
    if (session != g_session) return false;
    if (!g_growth_asked) return true;
    if (g_spare_slots == nullptr && g_table.count != 0 && g_table.count < kMaxSlots) slot_count = g_table.count * 2;
  }
  Slot* spare = slot_count != 0 ? mapSlots(slot_count) : nullptr;
  {
    Guard guard(g_lock);
    if (session == g_session && spare != nullptr && g_spare_slots == nullptr && g_table.count * 2 == slot_count) {
      g_spare_slots = spare;
      spare = nullptr;
    }
    g_growth_asked = false;
  }
  if (spare != nullptr) munmap(spare, slot_count * sizeof(Slot));
  return true;
}

void* growthThread(void* session) {
  pthread_setname_np(pthread_self(), "cppops-heap");
  noteOwnThread();
  for (;;) {
    const uint32_t seen = g_growth_requests.load(std::memory_order_acquire);
    if (!prepareGrowth(reinterpret_cast<uintptr_t>(session))) break;
    syscall(SYS_futex, &g_growth_requests, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  }
  forgetOwnThread();
  return nullptr;
}

// As a session starts (from the control thread, or the agent's start-up for a session asked for in the
// environment): a thread for this session alone, which ends with it, so that a process sampled once is left with no
// more threads than before. Every signal is blocked in it, so the host's are never delivered there.
void startGrowthThread(uint64_t session) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  const int err = pthread_create(&thread, nullptr, growthThread, reinterpret_cast<void*>(static_cast<uintptr_t>(session)));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err == 0) pthread_detach(thread);  // else the tables grow under the lock instead
}

// Under g_lock. Removes address from g_table, if it is there.
void removeSlot(uintptr_t address) {
  SlotTable& t = g_table;
  size_t i = t.find(address);
  if (t.slots[i].address == 0) {
    if (removeDraining(address)) --g_live;
    return;
  }
  takeInUse(t.slots[i]);
  // Backward shift: pull later members of the probe run into the hole unless their home lies after it.
  for (size_t j = i;;) {
    j = t.next(j);
    if (t.slots[j].address == 0) break;
    size_t home = t.home(t.slots[j].address);
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    t.slots[i] = t.slots[j];
    i = j;
  }
  t.slots[i].address = 0;
  --g_live;
}

// Under g_lock: empty tables, their pages given back.
void resetTables() {
  if (g_spare_slots != nullptr) munmap(g_spare_slots, g_table.count * 2 * sizeof(Slot));
  g_spare_slots = nullptr;
  for (SlotTable* t : {&g_table, &g_draining}) {
    if (t->slots != nullptr) munmap(t->slots, t->count * sizeof(Slot));
    *t = SlotTable{};
  }
  if (g_stacks != nullptr) madvise(g_stacks, kStacks * sizeof(Stack), MADV_DONTNEED);
  g_growth_asked = false;
  ++g_session;
  g_live = 0;
  g_stack_count = 0;
  g_dropped = 0;
}

void* mapTable(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void prepareFork() { g_lock.lock(); }
void parentAfterFork() { g_lock.unlock(); }
// Under g_lock (or with one thread): what frees check, and the routes to match. Frees check for tags while
// sampling is on: a sampled block freed unchecked goes to its allocator all the same (its pointer is the
// allocator's own), and only the records need to hear of it, which start empty at each session. As sampling starts
// the free route changes before the allocation routes, so no block sampled in the session is freed unchecked while
// it lasts.
void setFreeCheckAndRoutes(bool sampling) {
  const auto check = static_cast<uint8_t>((sampling ? kCheckTag : 0) |
                                          (g_bootstrap_used.load(std::memory_order_relaxed) ? kCheckArena : 0));
  g_free_check.store(check, std::memory_order_relaxed);
  if (g_routes == nullptr) return;
  const RouteChoices& c = g_route_choices;
  g_routes->free.store(check == 0 ? c.free_direct : check == kCheckTag ? c.free_tagged : c.free_checked,
                       std::memory_order_release);
  g_routes->calloc.store(sampling ? c.calloc_counted : c.calloc_direct, std::memory_order_release);
  g_routes->malloc.store(sampling ? c.malloc_counted : c.malloc_direct, std::memory_order_release);
}

// A random tag key, drawn once before the first sample. Not a secret that protects anything: it keeps the chance that
// a word a program stores at the end of some block matches the tag at 2^-64.
uint64_t drawTagKey() {
  uint64_t key = 0;
  if (getrandom(&key, sizeof key, GRND_NONBLOCK) != sizeof key) key = mix(monotonicNs() ^ reinterpret_cast<uintptr_t>(&key));
  return key | 1;  // never 0 (unset): the tag would then be the pointer itself, which a block may well hold
}

// The child is a new process that nobody asked to sample: sampling ends there, and its records with it.
void childAfterFork() {
  g_lock.reset();
  g_sampling.store(false, std::memory_order_relaxed);
  resetTables();
  setFreeCheckAndRoutes(false);
}

// Reading a profile takes g_lock for this many stacks at a time, some microseconds: one hold for them all would keep
// every thread that samples or frees a sampled block meanwhile waiting for a millisecond and more with the table of
// stacks full (12,288 stacks, each in cache lines of its own).
constexpr size_t kStacksPerHold = 64;

void copyStack(const Stack& s, StackRecord& r) {
  r.alloc_objects = s.alloc_objects;
  r.alloc_bytes = s.alloc_bytes;
  // In use is rounded (to 1/kObjectUnits of an object, to the byte): never let "freed" go negative.
  r.free_objects = std::max(0.0, s.alloc_objects - static_cast<double>(s.inuse_objects) / kObjectUnits);
  r.free_bytes = std::max(0.0, s.alloc_bytes - static_cast<double>(s.inuse_bytes));
  r.depth = s.depth;
  std::memcpy(r.pcs, s.pcs, s.depth * sizeof s.pcs[0]);
}

// The records so far, and with `stop` sampling stopped and the records emptied. Each stack's figures are of one
// moment, the stacks' of a few moments a few microseconds apart (see kStacksPerHold).
Snapshot snapshot(bool stop) {
  size_t room = 0;
  {
    Guard guard(g_lock);
    room = g_stack_count;
  }
  // Nothing may allocate under g_lock. Stacks added meanwhile beyond this margin are reported as dropped.
  std::vector<StackRecord> records(room + 256);
  Snapshot snap;
  size_t copied = 0, visited = 0;
  uint64_t missed = 0, session = 0;
  for (bool last = false; !last;) {
    Guard guard(g_lock);
    if (visited == 0) session = g_session;
    if (session != g_session) {  // emptied and started again meanwhile: from the start
      copied = visited = missed = 0;
      session = g_session;
    }
    const size_t end = std::min(g_stack_count, visited + kStacksPerHold);
    for (; visited < end; ++visited) {
      if (copied == records.size())
        ++missed;
      else
        copyStack(g_stacks[g_stack_order[visited]], records[copied++]);
    }
    last = visited == g_stack_count;
    if (!last) continue;
    if (stop) g_sampling.store(false, std::memory_order_relaxed);
    snap.sampling = g_sampling.load(std::memory_order_relaxed);
    snap.rate_bytes = g_rate.load(std::memory_order_relaxed);
    snap.sampled_ns = g_start_ns != 0 ? monotonicNs() - g_start_ns : 0;
    snap.dropped = g_dropped + missed;
    if (stop) {
      resetTables();
      g_start_ns = 0;
      setFreeCheckAndRoutes(false);
    }
  }
  if (stop) wakeGrowthThread();  // to see that its session is over, and end
  records.resize(copied);  // shrinking never allocates
  snap.stacks = std::move(records);
  return snap;
}

}  // namespace

CPPOPS_HOOK_PATH bool takesSample(size_t n) {
  ThreadState& t = t_heap_state;
  if (t.busy != 0) return false;
  // Sampling stopped since the route was read: a fresh countdown when it starts again.
  if (!g_sampling.load(std::memory_order_acquire)) {
    t.drawn_rate = 0;
    return false;
  }
  const uint64_t rate = g_rate.load(std::memory_order_relaxed);
  // A countdown left from an earlier session at the same rate stands (what is left of an exponential draw is one
  // too); a thread's first, or one drawn for another rate, is no sample point: the first real countdown starts
  // at this allocation.
  if (t.drawn_rate != rate) {
    t.drawn_rate = rate;
    t.countdown = drawCountdown(t, rate) - static_cast<int64_t>(n);
    if (t.countdown > 0) return false;
  }
  t.countdown = drawCountdown(t, rate);
  return true;
}

CPPOPS_HOOK_PATH void recordSample(void* p, size_t n) {
  ThreadState& t = t_heap_state;
  t.busy = 1;
  void* frames[kMaxDepth + 8];
  // The cached CFI walk first (a few hundred ns for a stack seen before); backtrace() for what it does not follow.
  auto got = static_cast<int>(sigsafe::cfiUnwind(sigsafe::currentRegisters(), frames, kMaxDepth + 8));
  if (got == 0) got = backtrace(frames, static_cast<int>(kMaxDepth + 8));
  // Cut the agent's own frames (this function, the entry point): the stack starts in the caller of malloc.
  int first = 0;
  while (first < got && frames[first] >= static_cast<const void*>(__start_cppops_hooks) &&
         frames[first] < static_cast<const void*>(__stop_cppops_hooks))
    ++first;
  uint64_t pcs[kMaxDepth];
  uint32_t depth = 0;
  for (int i = first; i < got && depth < kMaxDepth; ++i) pcs[depth++] = reinterpret_cast<uintptr_t>(frames[i]);
  const uint64_t rate = g_rate.load(std::memory_order_relaxed);
  // A block of n bytes is sampled with probability 1 - exp(-n / rate); each sample stands for the inverse.
  const double probability = -std::expm1(-static_cast<double>(n) / static_cast<double>(rate));
  const double scale = probability > 0 ? 1.0 / probability : 1.0;
  {
    AfterUnlock after;
    Guard guard(g_lock);
    // Sampling may have stopped (and the tables been emptied) since takesSample().
    if (g_sampling.load(std::memory_order_relaxed)) {
      uint32_t stack = roomForSlot(after) ? findOrAddStack(pcs, depth) : static_cast<uint32_t>(kStacks);
      if (stack == kStacks) {
        ++g_dropped;
      } else {
        Stack& s = g_stacks[stack];
        s.alloc_objects += scale;
        s.alloc_bytes += scale * static_cast<double>(n);
        insertSlot(Slot{reinterpret_cast<uintptr_t>(p), n, scale, stack, 0}, after);
      }
    }
  }
  t.busy = 0;
}

CPPOPS_HOOK_PATH void forgetSampled(void* p) {
  AfterUnlock after;
  Guard guard(g_lock);
  if (g_table.slots == nullptr) return;
  removeSlot(reinterpret_cast<uintptr_t>(p));
  drain(kDrainStep, after);
}

void noteBootstrapArenaUsed() {
  Guard guard(g_lock);
  g_bootstrap_used.store(true, std::memory_order_relaxed);
  setFreeCheckAndRoutes(g_sampling.load(std::memory_order_relaxed));
}

void registerHooks(void* own_malloc, Routes* routes, const RouteChoices& choices) {
  Guard guard(g_lock);
  g_own_malloc = own_malloc;
  g_route_choices = choices;
  g_routes = routes;
  setFreeCheckAndRoutes(g_sampling.load(std::memory_order_relaxed));
}

void* ownMallocEntry() { return g_own_malloc; }
void* nextMalloc() { return reinterpret_cast<void*>(g_route_choices.malloc_direct); }

bool hooksBound() { return g_own_malloc != nullptr && dlsym(RTLD_DEFAULT, "malloc") == g_own_malloc; }

uint64_t sampleAlignment(uint64_t rate_bytes, uint64_t most) {
  constexpr uint64_t kLeast = 16;
  uint64_t alignment = std::max(most, kLeast);
  while (alignment > kLeast && alignment * 64 > rate_bytes) alignment /= 2;
  return alignment;
}

std::string startSampling(uint64_t rate_bytes) {
  if (g_own_malloc == nullptr)
    return "this agent is linked statically and cannot see allocations; start the process with "
           "LD_PRELOAD=libcppops_agent.so, or link the shared agent (cppops::agent)";
  if (!hooksBound())
    return "the process does not call the agent's malloc (another library defines malloc earlier in the "
           "search order); put libcppops_agent.so first in LD_PRELOAD";
  if (g_sampling.load(std::memory_order_relaxed)) return "";
  if (const char* why = g_route_choices.cannot_tag != nullptr ? g_route_choices.cannot_tag() : nullptr) return why;
  if (g_stacks == nullptr) {
    static bool fork_handlers = false;
    if (!fork_handlers) fork_handlers = pthread_atfork(prepareFork, parentAfterFork, childAfterFork) == 0;
    void* stacks = mapTable(kStacks * sizeof(Stack));
    if (stacks == nullptr || !fork_handlers) {
      if (stacks != nullptr) munmap(stacks, kStacks * sizeof(Stack));
      return "the agent could not map its table of allocation stacks (9 MiB of address space, little of it ever used)";
    }
    Guard guard(g_lock);
    g_stacks = static_cast<Stack*>(stacks);
  }
  Slot* slots = mapSlots(kFirstSlots);
  if (slots == nullptr) return "the agent could not map its table of sampled blocks (32 KiB)";
  uint64_t session = 0;
  {
    Guard guard(g_lock);
    if (g_routes->tag_key.load(std::memory_order_relaxed) == 0)
      g_routes->tag_key.store(drawTagKey(), std::memory_order_relaxed);
    resetTables();
    session = g_session;
    g_table = SlotTable{slots, kFirstSlots};
    g_rate.store(rate_bytes, std::memory_order_relaxed);
    const uint64_t alignment = sampleAlignment(rate_bytes, g_route_choices.most_sample_alignment);
    g_sample_alignment.store(alignment, std::memory_order_relaxed);
    g_routes->sample_mask.store(alignment - 1, std::memory_order_relaxed);
    g_start_ns = monotonicNs();
    g_sampling.store(true, std::memory_order_release);
    setFreeCheckAndRoutes(true);
  }
  startGrowthThread(session);
  return "";
}

Snapshot readSampling() { return snapshot(false); }

uint64_t samplingRate() {
  return g_sampling.load(std::memory_order_relaxed) ? g_rate.load(std::memory_order_relaxed) : 0;
}

Snapshot stopSampling() { return snapshot(true); }

}  // namespace cppops::agent::heap
