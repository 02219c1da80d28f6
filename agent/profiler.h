// Profiles, run by a thread of their own that exists only while a profile runs: it arms the sampling signal
// (agent/sigsafe/sampler.h) for every thread, collects the samples, and answers the client on the connection the
// control loop handed over (Reply::take_connection), so a 30 s profile never holds up other clients.
//
// One profile at a time. It ends when its duration is over, when its client hangs up (the connection is watched
// for POLLHUP), or when the agent is stopped; afterwards nothing of it runs in the process: no thread, no timer.
#pragma once

#include <sys/types.h>

#include <string>

#include "protocol/messages.h"

namespace cppops::agent {

class Profiler {
 public:
  // Called by cppops_agent_start() before any request: the signal to sample with (CPPOPS_PROFILE_SIGNAL), the
  // stack dump's signal (which it must differ from), and how long a client has to read the reply.
  // Async-signal-safe: no.
  void configure(int signo, int stack_signo, long reply_timeout_ms);

  // Why a profile cannot start now, as a sentence for the client ("" when it can). Control thread only.
  // Async-signal-safe: no.
  std::string busyReason();

  // Starts the profile on its own thread, which owns `fd` from now on: it replies on it and closes it. Control
  // thread only, after busyReason() returned "". Async-signal-safe: no.
  void start(int fd, const protocol::ProfileRequest& request, pid_t requester);

  // Ends a running profile early (its client still gets the samples taken so far) and waits for its thread.
  // Any thread but the profile thread. Async-signal-safe: no.
  void stop();

  // In the child of fork(): the profile thread and its timers did not come along; forget them.
  // Async-signal-safe: yes.
  void forgetAfterFork();
};

Profiler& profiler();

}  // namespace cppops::agent
