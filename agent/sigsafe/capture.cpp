#include "capture.h"

#include <errno.h>
#include <execinfo.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "unwind.h"

namespace cppops::agent::sigsafe {

namespace {

// Distinguishes our queued signals from anyone else's sigqueue() of the same signal number.
constexpr uint64_t kRequestMagic = 0xC990A5ull;
constexpr uint64_t kIndexBits = 20;
constexpr uint64_t kGenerationBits = 20;

std::atomic<Arena*> g_arena{nullptr};
struct sigaction g_previous;  // written once before the handler is installed, read-only afterwards
int g_signo = 0;

void wake(std::atomic<uint32_t>& word) {
  // futex(2) via syscall(2): a raw system call, async-signal-safe by nature.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// The interrupted pc first, our own frames and the signal trampoline left out (unwind.cpp says why backtrace()
// is safe here).
void captureInto(ThreadSlot& slot, void* context) {
  slot.frame_count = static_cast<uint32_t>(unwindInterrupted(slot.pcs, kMaxFrames, context));
}

void handler(int signo, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const auto value = reinterpret_cast<uint64_t>(info->si_value.sival_ptr);
  const bool ours = info->si_code == SI_QUEUE && info->si_pid == getpid() &&
                    (value >> (kIndexBits + kGenerationBits)) == kRequestMagic;
  if (!ours) {
    chainSignal(g_previous, signo, info, context);
    errno = saved_errno;
    return;
  }
  const auto index = static_cast<uint32_t>(value & ((1u << kIndexBits) - 1));
  const auto generation = static_cast<uint32_t>((value >> kIndexBits) & ((1u << kGenerationBits) - 1));
  Arena* arena = g_arena.load(std::memory_order_acquire);
  if (arena != nullptr && index < arena->capacity) {
    ThreadSlot& slot = arena->slots[index];
    uint32_t expected = slotState(kPending, generation);
    // Fails for a late or duplicate request: drop it rather than wait or write into a slot we do not own.
    if (slot.state.compare_exchange_strong(expected, slotState(kWriting, generation), std::memory_order_acquire)) {
      const uint64_t start = nowNs();
      // A raw system call that only copies the task's comm: async-signal-safe by nature.
      syscall(SYS_prctl, PR_GET_NAME, slot.name, 0, 0, 0);
      captureInto(slot, context);
      slot.handler_ns = nowNs() - start;
      slot.state.store(slotState(kDone, generation), std::memory_order_release);
      const uint32_t finished = arena->finished.fetch_add(1) + 1;
      if (finished >= arena->wake_at.load()) wake(arena->finished);
    }
  }
  errno = saved_errno;
}

}  // namespace

uint64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t encodeRequest(uint32_t generation, uint32_t index) {
  return (kRequestMagic << (kIndexBits + kGenerationBits)) |
         (static_cast<uint64_t>(generation & ((1u << kGenerationBits) - 1)) << kIndexBits) |
         (index & ((1u << kIndexBits) - 1));
}

void publishArena(Arena* arena) { g_arena.store(arena, std::memory_order_release); }

int installHandler(int signo) {
  struct sigaction action {};
  action.sa_sigaction = handler;
  // SA_RESTART: syscalls that honour it resume after we return. The ones that never do (see signal(7)) get
  // EINTR; cppops-agent(3) documents that, and --no-signal avoids it.
  action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigfillset(&action.sa_mask);
  if (sigaction(signo, nullptr, &g_previous) != 0) return errno;
  if (g_previous.sa_sigaction == handler) return 0;
  if (sigaction(signo, &action, nullptr) != 0) return errno;
  g_signo = signo;
  return 0;
}

bool handlerIsOurs(int signo) {
  struct sigaction current {};
  return signo == g_signo && sigaction(signo, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) &&
         current.sa_sigaction == handler;
}

void warmUp() {
  void* pcs[4];
  backtrace(pcs, 4);
}

}  // namespace cppops::agent::sigsafe
