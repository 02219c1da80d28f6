// cppops_agent_start/stop: the lifecycle of the control thread.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>

#include "agent_state.h"
#include "cppops/agent.h"
#include "log.h"
#include "metrics/thread_counts.h"
#include "options.h"
#include "own_threads.h"
#include "heap/sampler.h"
#include "profiler.h"
#include "server.h"
#include "stack_capture.h"
#include "core/version.h"

namespace cppops::agent {

namespace {

std::atomic<bool> g_preloaded{false};
std::atomic<uint64_t> g_requests_served{0};
std::atomic<uint64_t> g_requests_refused{0};

struct Agent {
  std::mutex mu;  // serialises start/stop
  Server server;
  pthread_t thread{};
  bool running = false;
  pid_t owner = 0;  // the process that created the socket; a forked child must not remove it
};

// Leaked on purpose: the agent must outlive static destructors of the host that may still call into it.
Agent& agent() {
  static Agent* a = new Agent;
  return *a;
}

void* controlThread(void* signo) {
  heap::neverSampleThisThread();
  pthread_setname_np(pthread_self(), "cppops-agent");
  stackCapture().prepare(static_cast<int>(reinterpret_cast<intptr_t>(signo)));
  agent().server.run();
  return nullptr;
}

// In the child of fork() only async-signal-safe calls are allowed, and the child has no control thread: forget
// the parent's agent without touching the parent's socket. A child that wants an agent calls start() again.
void forgetAfterFork() {
  forgetOwnThreadsAfterFork();
  Agent& a = agent();
  if (!a.running) return;
  a.server.abandonAfterFork();
  a.running = false;
  new (&a.mu) std::mutex;  // the parent's lock state is meaningless in the child
  profiler().forgetAfterFork();
}

void removeSocketAtExit() {
  Agent& a = agent();
  if (a.running && a.owner == getpid()) ::unlink(a.server.socketPath().c_str());
}

int start(const Options& options) {
  if (!options.enabled) return -1;
  // Sampling may start below (CPPOPS_HEAP_PROFILE): what the agent allocates to start is not the program's.
  heap::NotSampled agent_start;
  setLogQuiet(options.quiet);
  Agent& a = agent();
  std::lock_guard<std::mutex> lock(a.mu);
  if (a.running) return 0;
  if (int err = a.server.open(options); err != 0) return err;
  // Sampling from start-up, for allocations made before anyone could ask; a failure is the host's business only
  // as a line on stderr. Before the control thread exists, so that a request to start or stop sampling cannot
  // race this start.
  bool sampling_started = false;
  if (options.heap_profile > 0) {
    std::string why = heap::startSampling(static_cast<uint64_t>(options.heap_profile));
    sampling_started = why.empty();
    if (!sampling_started) logLine("CPPOPS_HEAP_PROFILE: %s", why.c_str());
  }

  // The control thread must never receive the host's signals (SIGTERM, SIGINT, ...), or a host that handles
  // them with sigwait() in its own thread would lose them to us.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  metrics::noteAgentStart();
  const long signo = options.stack_signal > 0 ? options.stack_signal : SIGRTMIN + 5;
  profiler().configure(static_cast<int>(options.profile_signal > 0 ? options.profile_signal : SIGRTMIN + 6),
                       static_cast<int>(signo), options.request_timeout_ms);
  int err = pthread_create(&a.thread, nullptr, controlThread, reinterpret_cast<void*>(static_cast<intptr_t>(signo)));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) {
    logLine("cannot start the control thread: %s", std::strerror(err));
    if (sampling_started) heap::stopSampling();  // nobody could ever read it
    a.server.close();
    return err;
  }
  static std::once_flag hooks;
  std::call_once(hooks, [] {
    pthread_atfork(nullptr, nullptr, forgetAfterFork);
    std::atexit(removeSocketAtExit);
  });
  a.running = true;
  a.owner = getpid();
  return 0;
}

}  // namespace

const char* loadMode() { return g_preloaded.load(std::memory_order_relaxed) ? "preload" : "linked"; }

void markPreloaded() { g_preloaded.store(true, std::memory_order_relaxed); }

void countRequestServed() { g_requests_served.fetch_add(1, std::memory_order_relaxed); }
void countRequestRefused() { g_requests_refused.fetch_add(1, std::memory_order_relaxed); }
uint64_t requestsServed() { return g_requests_served.load(std::memory_order_relaxed); }
uint64_t requestsRefused() { return g_requests_refused.load(std::memory_order_relaxed); }

}  // namespace cppops::agent

using cppops::agent::agent;

extern "C" int cppops_agent_start(const cppops_agent_options* user) {
  try {
    cppops::agent::Options defaults;
    if (user != nullptr) {
      // Fields beyond the caller's struct_size were not there when the caller was compiled.
      if (user->struct_size >= offsetof(cppops_agent_options, socket_dir) + sizeof user->socket_dir &&
          user->socket_dir != nullptr)
        defaults.socket_dir = user->socket_dir;
      if (user->struct_size >= offsetof(cppops_agent_options, quiet) + sizeof user->quiet)
        defaults.quiet = user->quiet != 0;
    }
    return cppops::agent::start(cppops::agent::optionsFromEnvironment(defaults));
  } catch (...) {
    return ENOMEM;  // the only thing that can throw here is allocation
  }
}

extern "C" void cppops_agent_stop(void) {
  auto& a = agent();
  std::lock_guard<std::mutex> lock(a.mu);
  if (!a.running) return;
  a.server.stop();
  pthread_join(a.thread, nullptr);
  cppops::agent::profiler().stop();  // after the control thread: no new profile can start meanwhile
  a.server.close();
  a.running = false;
}

extern "C" const char* cppops_agent_version(void) { return cppops::kAgentVersion; }

extern "C" int cppops_agent_socket_path(char* buf, size_t size) {
  auto& a = agent();
  std::lock_guard<std::mutex> lock(a.mu);
  const std::string& path = a.server.socketPath();
  if (!a.running || buf == nullptr || path.size() + 1 > size) return -1;
  std::memcpy(buf, path.c_str(), path.size() + 1);
  return static_cast<int>(path.size());
}
