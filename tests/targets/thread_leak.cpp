// A service that knows nothing of cppops and leaks threads behind one lock: main holds `g_registry_lock` forever
// and starts a new handler thread every 300 ms (argv[1] overrides), each of which blocks in
// lookupSession() on that lock. The stable part of the process (two sleeping pollers) never grows.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "in_syscall.h"

namespace {

std::mutex g_registry_lock;

__attribute__((noinline)) void lookupSession() {
  std::lock_guard<std::mutex> lock(g_registry_lock);  // the line `cppops watch` must name
}

__attribute__((noinline)) void handleRequest() { lookupSession(); }

__attribute__((noinline)) void pollBackend(std::atomic<pid_t>* tid) {
  cppops_targets::announceTid(*tid);
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace

int main(int argc, char** argv) {
  const int period_ms = argc > 1 ? std::atoi(argv[1]) : 300;
  std::lock_guard<std::mutex> never_released(g_registry_lock);
  static std::atomic<pid_t> pollers[2];
  for (auto& tid : pollers) std::thread(pollBackend, &tid).detach();
  for (const auto& tid : pollers) cppops_targets::waitUntilInSyscall(tid, {SYS_clock_nanosleep});
  std::printf("ready\n");
  std::fflush(stdout);
  for (int leaked = 0; leaked < 500; ++leaked) {
    std::thread(handleRequest).detach();
    std::this_thread::sleep_for(std::chrono::milliseconds(period_ms));
  }
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}
