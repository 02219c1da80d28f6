#include "sampler.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capture.h"
#include "unwind.h"

namespace cppops::agent::sigsafe {

namespace {

// Tells our signals from anyone else's use of the same signal number (24 bits: the rest of the 64-bit value).
constexpr uint64_t kSampleMagic = 0xC990B6ull;
constexpr uint32_t kTagMask = (1u << kTagBits) - 1;
constexpr uint32_t kGenerationMask = (1u << kGenerationBits) - 1;

SampleBuffer g_buffers[kSampleBuffers];
std::atomic<int> g_active{-1};
std::atomic<uint32_t> g_generation{0};
std::atomic<uint64_t> g_dropped{0};
struct sigaction g_previous;  // written once before the handler is installed, read-only afterwards
int g_signo = 0;

// Stores one record into the active block. Returns false when it had to be dropped.
bool store(int32_t tid, uint32_t weight, uint32_t tag, uint32_t generation, void* const* pcs, size_t frames) {
  const uint64_t size = sizeof(SampleRecord) + frames * sizeof(uint64_t);
  // Two tries: the profile thread may switch blocks between our load and our announcement, never twice in a row
  // within the few instructions that separate them unless this thread was descheduled there.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int index = g_active.load(std::memory_order_seq_cst);
    if (index < 0) return true;  // the profile ended while we unwound: not a loss, nobody wants the sample
    SampleBuffer& buffer = g_buffers[index];
    buffer.writers.fetch_add(1, std::memory_order_seq_cst);
    if (g_active.load(std::memory_order_seq_cst) != index ||
        g_generation.load(std::memory_order_relaxed) != generation) {
      buffer.writers.fetch_sub(1, std::memory_order_release);
      continue;
    }
    // From here to the fetch_sub the block is ours to write: its data cannot be read, reset or freed.
    const uint64_t offset = buffer.used.fetch_add(size, std::memory_order_relaxed);
    bool stored = false;
    if (offset + size <= buffer.capacity) {
      SampleRecord record;
      record.size = static_cast<uint32_t>(size);
      record.tid = tid;
      record.weight = weight;
      record.frame_count = static_cast<uint32_t>(frames);
      record.tag = tag;
      memcpy(buffer.data + offset, &record, sizeof record);
      for (size_t i = 0; i < frames; ++i) {
        const uint64_t pc = reinterpret_cast<uintptr_t>(pcs[i]);
        memcpy(buffer.data + offset + sizeof record + i * sizeof pc, &pc, sizeof pc);
      }
      stored = true;
    } else if (offset + sizeof(SampleRecord) <= buffer.capacity) {
      const uint32_t end = kEndOfRecords;
      memcpy(buffer.data + offset, &end, sizeof end);
    }
    buffer.writers.fetch_sub(1, std::memory_order_release);
    return stored;
  }
  return false;
}

// No re-entry guard is needed: the handler runs with every signal blocked (sa_mask), and each call claims bytes
// of its own, so even two threads sampled at once never share a record.
void handler(int signo, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  const auto value = reinterpret_cast<uint64_t>(info->si_value.sival_ptr);
  // SI_TIMER: one of our per-thread timers. SI_QUEUE from our own pid: a wall-mode request of the profile thread.
  const bool ours = (info->si_code == SI_TIMER || (info->si_code == SI_QUEUE && info->si_pid == getpid())) &&
                    (value >> (kTagBits + kGenerationBits)) == kSampleMagic;
  if (!ours) {
    chainSignal(g_previous, signo, info, ucontext);
    errno = saved_errno;
    return;
  }
  const auto tag = static_cast<uint32_t>(value & kTagMask);
  const auto generation = static_cast<uint32_t>((value >> kTagBits) & kGenerationMask);
  // A signal of a profile that has ended (a wall request queued to a thread that ran late) records nothing.
  if (g_active.load(std::memory_order_acquire) >= 0 && g_generation.load(std::memory_order_relaxed) == generation) {
    // si_overrun is filled in by the kernel for timer signals: periods that expired since the last delivery.
    const uint32_t weight =
        1 + (info->si_code == SI_TIMER && info->si_overrun > 0 ? static_cast<uint32_t>(info->si_overrun) : 0);
    void* pcs[kMaxFrames];
    // Unwind before announcing ourselves, so that a block switch never waits for an unwind.
    const size_t frames = unwindInterrupted(pcs, kMaxFrames, ucontext);
    // gettid through syscall(2): a raw system call, async-signal-safe by nature.
    const auto tid = static_cast<int32_t>(syscall(SYS_gettid));
    if (!store(tid, weight, tag, generation, pcs, frames)) g_dropped.fetch_add(weight, std::memory_order_relaxed);
  }
  errno = saved_errno;
}

}  // namespace

SampleBuffer& sampleBuffer(int index) { return g_buffers[index]; }

int installSampler(int signo) {
  struct sigaction action {};
  action.sa_sigaction = handler;
  action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigfillset(&action.sa_mask);
  if (signo == g_signo && samplerIsOurs(signo)) return 0;
  if (sigaction(signo, nullptr, &g_previous) != 0) return errno;
  if (sigaction(signo, &action, nullptr) != 0) return errno;
  g_signo = signo;
  return 0;
}

bool samplerIsOurs(int signo) {
  struct sigaction current {};
  return signo == g_signo && sigaction(signo, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) &&
         current.sa_sigaction == handler;
}

void startSampling(uint32_t generation, int active) {
  g_dropped.store(0, std::memory_order_relaxed);
  g_generation.store(generation & kGenerationMask, std::memory_order_relaxed);
  g_active.store(active, std::memory_order_seq_cst);
}

void switchSampleBuffer(int active) { g_active.store(active, std::memory_order_seq_cst); }

void stopSampling() { g_active.store(-1, std::memory_order_seq_cst); }

uint64_t droppedSamples() { return g_dropped.load(std::memory_order_relaxed); }

uint64_t sampleValue(uint32_t generation, uint32_t tag) {
  return (kSampleMagic << (kTagBits + kGenerationBits)) |
         (static_cast<uint64_t>(generation & kGenerationMask) << kTagBits) | (tag & kTagMask);
}

}  // namespace cppops::agent::sigsafe
