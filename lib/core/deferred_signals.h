// Holding back the signals that end or suspend a process (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT, Ctrl-Z) while it holds
// something that must be given back first: a thread of another process stopped under ptrace. A held signal is
// recorded and delivered, as it would have been, at the next point where nothing is held.
#pragma once

#include <csignal>

namespace cppops {

class DeferredSignals {
 public:
  // Installs the recording handlers (with SA_RESTART, so blocking calls carry on) for every signal not ignored.
  // One instance at a time.
  DeferredSignals();
  // Restores the previous handlers, then delivers a held signal.
  ~DeferredSignals();
  DeferredSignals(const DeferredSignals&) = delete;
  DeferredSignals& operator=(const DeferredSignals&) = delete;

  // Whether a signal is being held. Safe from any thread: work in progress checks it and winds down.
  static bool pending();

  // Call where nothing is held, from any one thread. Delivers a held signal through the disposition it had
  // before: by default the process ends here (or stops, for Ctrl-Z, and carries on after SIGCONT).
  void deliverHeld();

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
  static constexpr int kCount = sizeof kSignals / sizeof kSignals[0];

  void install(int index);
  void restore(int index);

  struct sigaction previous_[kCount]{};
  bool installed_[kCount]{};
};

}  // namespace cppops
