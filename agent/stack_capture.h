// Capturing every thread's stack from the control thread, without stopping the process: each thread is asked,
// by a queued real-time signal, to unwind only itself into preallocated memory (agent/sigsafe/capture.h).
#pragma once

#include <memory>
#include <vector>

#include "asleep_stack.h"
#include "protocol/messages.h"
#include "sigsafe/capture.h"

namespace cppops::agent {

class StackCapture {
 public:
  // Installs the handler for `signo` and warms the unwinder up. Call once, from the control thread, before any
  // dump. Async-signal-safe: no.
  void prepare(int signo);

  // Takes one dump. Runs on the control thread only (one dump at a time). Async-signal-safe: no.
  protocol::StackReply capture(const protocol::StackRequest& request);

 private:
  sigsafe::Arena* arenaFor(size_t threads);

  int signo_ = 0;
  int install_error_ = 0;
  uint32_t generation_ = 0;
  // Threads that blocked the signal at the last dump, sorted. A real-time signal queued to such a thread stays
  // pending until it unblocks or exits, and counts against its user's RLIMIT_SIGPENDING (shared by all their
  // processes): one more at every dump would run it out. Each is signalled once, then again only when its mask has
  // changed (the pending one is delivered then, too late for any dump, and ignored).
  std::vector<pid_t> blocking_;
  // Arenas are never freed (see publishArena); they only grow, so there are a handful at most.
  std::vector<std::unique_ptr<sigsafe::Arena>> arenas_;
  std::vector<std::unique_ptr<sigsafe::ThreadSlot[]>> slot_blocks_;
  AsleepStacks asleep_;
};

StackCapture& stackCapture();

}  // namespace cppops::agent
