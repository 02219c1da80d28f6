// One process's metrics as the CLI publishes them: the agent's raw METRICS reply plus what lib/ makes of it
// (threads by state, with the stack analysis's own classification) and who the process is (name, cgroup).
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/result.h"
#include "discovery/discovery.h"
#include "protocol/messages.h"
#include "stack/model.h"

namespace cppops::metrics {

// The states a dashboard plots, coarser than stack::ThreadState. Stable names (Prometheus label values and JSON
// keys): "running", "blocked" (on a lock: mutex, rwlock), "waiting" (condition variable, semaphore, atomic wait,
// signal or child wait), "io" (read, write, poll, accept, connect, disk), "sleeping", "other" (stopped, zombie,
// another syscall, unknown).
enum class ThreadCategory { kRunning, kBlocked, kWaiting, kIo, kSleeping, kOther };
inline constexpr size_t kThreadCategories = 6;
const char* categoryName(ThreadCategory category);
ThreadCategory categoryOf(stack::ThreadState state);

struct ProcessMetrics {
  pid_t pid = 0;                 // as this CLI sees it
  std::string name;              // comm
  std::string cgroup;            // the cgroup v2 path ("/system.slice/x.service"), "" when unknown
  protocol::MetricsReply reply;
  std::array<uint32_t, kThreadCategories> threads_by_category{};
};

// Asks the agent for its figures and classifies its threads. The whole request is bounded by `timeout`.
Result<ProcessMetrics> collect(const discovery::Endpoint& endpoint, std::chrono::milliseconds timeout);
Result<ProcessMetrics> collect(pid_t pid, std::chrono::milliseconds timeout);

// Threads by category from a reply alone (exposed for tests).
std::array<uint32_t, kThreadCategories> classifyThreads(pid_t pid, const protocol::MetricsReply& reply);

}  // namespace cppops::metrics
