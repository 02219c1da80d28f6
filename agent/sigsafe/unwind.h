// What every cppops signal handler does the same way: unwind the interrupted thread, and hand signals that are
// not ours to the handler that was there before. Same rules as the rest of agent/sigsafe/ (see capture.h).
#pragma once

#include <signal.h>
#include <stddef.h>

namespace cppops::agent::sigsafe {

// Unwinds the calling thread from inside a signal handler into pcs: pcs[0] is the pc where the thread was
// interrupted (read from `ucontext`), the rest are return addresses; the handler's own frames and the signal
// trampoline are left out. Returns the number of pcs written, at least 1 (the interrupted pc alone when the
// unwinder cannot step through the signal frame).
// Async-signal-safe: yes once warmUp() has run (capture.h), for the reasons given in unwind.cpp.
size_t unwindInterrupted(void** pcs, size_t max, const void* ucontext);

// Passes a signal to `previous`, the disposition that was installed before ours, as if we were not there: its
// handler is called, an ignored signal stays ignored, and a default action is carried out (a real-time signal's
// is to terminate). Async-signal-safe: yes (sigaction and raise are on the signal-safety(7) list, and the
// previous handler already ran in signal context before we came).
void chainSignal(const struct sigaction& previous, int signo, siginfo_t* info, void* ucontext);

}  // namespace cppops::agent::sigsafe
