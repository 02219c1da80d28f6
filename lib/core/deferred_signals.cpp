#include "core/deferred_signals.h"

#include <atomic>

namespace cppops {

namespace {

// One bit per entry of kSignals. Lock-free, hence safe to touch from a signal handler.
std::atomic<unsigned> g_held{0};
static_assert(std::atomic<unsigned>::is_always_lock_free);

constexpr int kMaxSignal = 64;
int g_index_of[kMaxSignal + 1];  // signal number -> index in kSignals, written before any handler is installed

void recordSignal(int signo) {
  if (signo > 0 && signo <= kMaxSignal) g_held.fetch_or(1u << g_index_of[signo], std::memory_order_relaxed);
}

}  // namespace

DeferredSignals::DeferredSignals() {
  g_held.store(0, std::memory_order_relaxed);
  for (int i = 0; i < kCount; ++i) g_index_of[kSignals[i]] = i;
  for (int i = 0; i < kCount; ++i) install(i);
}

DeferredSignals::~DeferredSignals() {
  for (int i = 0; i < kCount; ++i) restore(i);
  deliverHeld();
}

bool DeferredSignals::pending() { return g_held.load(std::memory_order_relaxed) != 0; }

void DeferredSignals::install(int index) {
  struct sigaction action{};
  action.sa_handler = recordSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (sigaction(kSignals[index], nullptr, &previous_[index]) != 0) return;
  // Someone chose to ignore it (nohup, a shell's background job): nothing to defer.
  if (previous_[index].sa_handler == SIG_IGN) return;
  installed_[index] = sigaction(kSignals[index], &action, nullptr) == 0;
}

void DeferredSignals::restore(int index) {
  if (installed_[index]) sigaction(kSignals[index], &previous_[index], nullptr);
  installed_[index] = false;
}

void DeferredSignals::deliverHeld() {
  unsigned held = g_held.exchange(0, std::memory_order_relaxed);
  for (int i = 0; i < kCount && held != 0; ++i) {
    if ((held & (1u << i)) == 0) continue;
    // Through the old disposition, then back to ours if the process lives on (a stop, or a caller's handler).
    const bool was_installed = installed_[i];
    restore(i);
    raise(kSignals[i]);
    if (was_installed) install(i);
  }
}

}  // namespace cppops
