// The application's metrics (cppops_agent_counter/gauge/histogram in cppops/agent.h): storage, registration and
// the snapshot the METRICS command sends.
//
// Storage for a metric is allocated once, at registration, and never freed, so a handle stays valid for the life
// of the process and an update is one atomic operation on memory nobody else frees or moves. The table of
// metrics is a fixed array of pointers published with release stores, so the control thread can read it while
// the application registers more, without a lock on the update path.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "protocol/messages.h"

// The C API's opaque handle.
struct cppops_agent_metric {
  std::string name;
  std::string help;
  uint8_t kind = cppops::protocol::kMetricCounter;
  // Counter: the count. Gauge and histogram sum: the bits of a double, so that one atomic word holds it.
  std::atomic<uint64_t> value{0};
  std::vector<double> bounds;                    // histogram only
  std::unique_ptr<std::atomic<uint64_t>[]> buckets;  // histogram only: bounds.size() + 1 counters
};

namespace cppops::agent::metrics {

inline constexpr size_t kMaxMetrics = 1024;
inline constexpr size_t kMaxBuckets = 32;
inline constexpr size_t kMaxNameLength = 200;

// Registers (or finds) a metric; nullptr with a logged reason when it cannot. Async-signal-safe: no.
cppops_agent_metric* registerMetric(const char* name, const char* help, uint8_t kind, const double* bounds,
                                    size_t count);

// Adds to a double held as bits in one atomic word: a compare-and-swap loop that retries only when another
// thread changed the word in between. Async-signal-safe: yes (lock-free on every platform cppops supports).
void addDoubleTo(std::atomic<uint64_t>& word, double delta);

// Every registered metric's current value, in registration order. A histogram read while it is being updated
// may show the sum of one observation more or less than its buckets: each word is atomic, the set is not,
// which Prometheus tolerates. Async-signal-safe: no.
std::vector<protocol::AppMetric> snapshot();

}  // namespace cppops::agent::metrics
