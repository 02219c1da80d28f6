// The async-signal-safe core of stack capture: the only agent code that runs inside a signal handler.
//
// Rules for everything in agent/sigsafe/ (enforced by tests/sigsafe/check_symbols.sh, which lists the undefined
// symbols of this folder's object files against an allow-list):
//   - no allocation, no locks, no exceptions (built with -fno-exceptions -fno-rtti), no stdio, no fmt;
//   - every libc call is async-signal-safe per signal-safety(7), or its safety is argued where it is made;
//   - never wait: a slot that is not ours is dropped, not waited for.
//
// Protocol between the control thread (the "requester") and a target thread (the "handler"):
//   requester: fills slot[i] = {tid, state = Pending(gen)}, then queues the signal with value (gen, i)
//   handler:   CAS Pending(gen) -> Writing(gen); unwinds into slot[i].pcs; stores Done(gen); wakes the requester
//   requester: at its deadline, CAS Pending(gen) -> Abandoned; a handler that arrives later fails its CAS and
//              writes nothing, so a late thread can never scribble over a reply being encoded.
#pragma once

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace cppops::agent::sigsafe {

inline constexpr size_t kMaxFrames = 128;

// Slot states; the low 8 bits are the kind, the rest the generation, so one CAS checks both.
enum SlotKind : uint32_t { kFree = 0, kPending = 1, kWriting = 2, kDone = 3, kAbandoned = 4, kExited = 5 };
inline constexpr uint32_t slotState(SlotKind kind, uint32_t generation) { return (generation << 8) | kind; }
inline constexpr SlotKind slotKind(uint32_t state) { return static_cast<SlotKind>(state & 0xff); }

struct alignas(64) ThreadSlot {
  std::atomic<uint32_t> state{kFree};
  int32_t tid = 0;
  uint32_t frame_count = 0;
  uint64_t handler_ns = 0;
  char name[16];  // the thread's own name (PR_GET_NAME), so the CLI need not read 1,000 /proc stat files
  void* pcs[kMaxFrames];
};

struct Arena {
  ThreadSlot* slots = nullptr;
  uint32_t capacity = 0;
  // Incremented by each handler that finished; the requester sleeps on it with FUTEX_WAIT.
  std::atomic<uint32_t> finished{0};
  // The count of finished handlers the requester waits for: only the handler that reaches it wakes the requester,
  // so the answers before it cost no futex call and no wake-up of the requester each. The requester sets it
  // before it sleeps (sequentially consistent on both sides: either the handler sees it, or the requester sees
  // the count that makes its FUTEX_WAIT return at once).
  std::atomic<uint32_t> wake_at{UINT32_MAX};
};

// Installs the capture handler for `signo`, chaining to whatever handler was there. Returns 0 or an errno.
// Async-signal-safe: no (called once from the control thread).
int installHandler(int signo);

// True while the handler installed for `signo` is still ours (a host may replace it later).
// Async-signal-safe: yes (sigaction(2) is on the signal-safety(7) list).
bool handlerIsOurs(int signo);

// Publishes the arena handlers write into. The requester never frees an arena it once published: a late handler
// may still hold the pointer. Async-signal-safe: yes.
void publishArena(Arena* arena);

// The 64-bit value queued with the signal for slot `index` of generation `generation`.
// Async-signal-safe: yes.
uint64_t encodeRequest(uint32_t generation, uint32_t index);

// Runs the capture path once outside any handler, so that the unwinder's lazy initialisation (glibc loads
// libgcc_s on the first backtrace() call, with dlopen and malloc) never happens inside a handler.
// Async-signal-safe: no.
void warmUp();

// Monotonic nanoseconds. Async-signal-safe: yes (clock_gettime is on the signal-safety(7) list).
uint64_t nowNs();

}  // namespace cppops::agent::sigsafe
