// An application that publishes its own metrics through the agent's C API, with threads in known states: 3 blocked
// on one mutex, 3 sleeping, 1 waiting on a condition variable; it says "ready" once each of them sleeps in the
// kernel. Linked against the shared agent, so thread creations are counted (the shared library sees
// pthread_create).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "cppops/agent.h"
#include "in_syscall.h"

namespace {

std::mutex g_lock;
std::mutex g_cv_lock;
std::condition_variable g_cv;

__attribute__((noinline)) void blockOnTheLock() { std::lock_guard<std::mutex> hold(g_lock); }

__attribute__((noinline)) void sleepForever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

__attribute__((noinline)) void waitForever() {
  std::unique_lock<std::mutex> lock(g_cv_lock);
  g_cv.wait(lock, [] { return false; });
}

}  // namespace

int main() {
  if (cppops_agent_start(nullptr) != 0) return 1;

  cppops_agent_metric* requests = cppops_agent_counter("app_requests", "Requests handled.");
  cppops_agent_metric* bytes = cppops_agent_counter("app_bytes_total", "Bytes \"written\", with a \\ and\na newline.");
  cppops_agent_metric* queue = cppops_agent_gauge("app_queue_depth", "Items waiting.");
  const double bounds[] = {0.005, 0.1, 1};
  cppops_agent_metric* latency = cppops_agent_histogram("app_latency_seconds", "Request latency.", bounds, 3);
  // Refusals: invalid, reserved, and a kind clash; each returns NULL and NULL is harmless to update.
  cppops_agent_metric* bad = cppops_agent_counter("9starts_with_a_digit", "x");
  cppops_agent_counter_add(bad, 1);
  cppops_agent_gauge_set(cppops_agent_gauge("cppops_threads", "reserved"), 1);
  cppops_agent_gauge_set(cppops_agent_gauge("app_requests", "clash"), 1);
  // Registering again returns the same handle.
  if (cppops_agent_counter("app_requests", "again") != requests) return 2;

  cppops_agent_counter_add(requests, 41);
  cppops_agent_counter_add(requests, 1);
  cppops_agent_counter_add(bytes, 4096);
  cppops_agent_gauge_set(queue, 10);
  cppops_agent_gauge_add(queue, -2.5);
  for (double v : {0.001, 0.002, 0.05, 0.5, 7.0}) cppops_agent_histogram_observe(latency, v);

  std::unique_lock<std::mutex> held(g_lock);
  static std::atomic<pid_t> blocked[3], sleeping[3], waiting;
  // Runs `work` on a new thread that first publishes its id in `tid`.
  auto start = [](std::atomic<pid_t>& tid, void (*work)()) {
    return std::thread([&tid, work] {
      cppops_targets::announceTid(tid);
      work();
    });
  };
  std::vector<std::thread> threads;
  for (auto& tid : blocked) threads.push_back(start(tid, blockOnTheLock));
  for (int i = 0; i < 2; ++i) threads.push_back(start(sleeping[i], sleepForever));
  threads.push_back(start(waiting, waitForever));
  start(sleeping[2], sleepForever).detach();
  // A thread that came and went, so "exited" is not trivially zero.
  std::thread([] {}).join();
  for (const auto& tid : blocked) cppops_targets::waitUntilInSyscall(tid, {SYS_futex});
  for (const auto& tid : sleeping) cppops_targets::waitUntilInSyscall(tid, {SYS_clock_nanosleep});
  cppops_targets::waitUntilInSyscall(waiting, {SYS_futex});
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}
