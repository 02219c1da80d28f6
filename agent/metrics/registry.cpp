#include "metrics/registry.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "cppops/agent.h"
#include "log.h"

namespace cppops::agent::metrics {

namespace {

struct Table {
  std::mutex mu;  // serialises registrations; never taken by an update or by snapshot()
  std::atomic<cppops_agent_metric*> slots[kMaxMetrics] = {};
  std::atomic<size_t> count{0};
};

// Leaked on purpose: handles must stay valid while the host's static destructors still update metrics.
Table& table() {
  static Table* t = new Table;
  return *t;
}

bool validName(const char* name) {
  const size_t n = std::strlen(name);
  if (n == 0 || n > kMaxNameLength) return false;
  for (size_t i = 0; i < n; ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

const char* kindName(uint8_t kind) {
  switch (kind) {
    case protocol::kMetricCounter: return "counter";
    case protocol::kMetricGauge: return "gauge";
    default: return "histogram";
  }
}

bool validBounds(const double* bounds, size_t count) {
  if (bounds == nullptr || count == 0 || count > kMaxBuckets) return false;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(bounds[i])) return false;
    if (i > 0 && !(bounds[i] > bounds[i - 1])) return false;
  }
  return true;
}

double asDouble(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

uint64_t asBits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

}  // namespace

void addDoubleTo(std::atomic<uint64_t>& word, double delta) {
  uint64_t old = word.load(std::memory_order_relaxed);
  while (!word.compare_exchange_weak(old, asBits(asDouble(old) + delta), std::memory_order_relaxed)) {
  }
}

cppops_agent_metric* registerMetric(const char* name, const char* help, uint8_t kind, const double* bounds,
                                    size_t count) {
  if (name == nullptr || !validName(name)) {
    logLine("metric name '%s' is not a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*, at most %zu bytes); not registered",
            name == nullptr ? "(null)" : name, kMaxNameLength);
    return nullptr;
  }
  if (std::strncmp(name, "cppops_", 7) == 0) {
    logLine("metric name '%s' uses the agent's reserved prefix cppops_; not registered", name);
    return nullptr;
  }
  if (kind == protocol::kMetricHistogram && !validBounds(bounds, count)) {
    logLine("histogram '%s' needs 1 to %zu finite, strictly ascending bounds; not registered", name, kMaxBuckets);
    return nullptr;
  }
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  const size_t n = t.count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    cppops_agent_metric* m = t.slots[i].load(std::memory_order_relaxed);
    if (m->name != name) continue;
    if (m->kind == kind) return m;
    logLine("metric '%s' is already registered as a %s; not registered as a %s", name, kindName(m->kind),
            kindName(kind));
    return nullptr;
  }
  if (n == kMaxMetrics) {
    logLine("metric '%s' not registered: %zu metrics are registered already", name, kMaxMetrics);
    return nullptr;
  }
  auto* m = new (std::nothrow) cppops_agent_metric;
  if (m == nullptr) return nullptr;
  try {
    m->name = name;
    m->help = help == nullptr ? "" : help;
    m->kind = kind;
    if (kind == protocol::kMetricHistogram) {
      m->bounds.assign(bounds, bounds + count);
      m->buckets.reset(new std::atomic<uint64_t>[count + 1]);
      for (size_t i = 0; i <= count; ++i) m->buckets[i].store(0, std::memory_order_relaxed);
    }
  } catch (const std::bad_alloc&) {
    delete m;
    return nullptr;
  }
  t.slots[n].store(m, std::memory_order_release);
  t.count.store(n + 1, std::memory_order_release);
  return m;
}

std::vector<protocol::AppMetric> snapshot() {
  Table& t = table();
  const size_t n = t.count.load(std::memory_order_acquire);
  std::vector<protocol::AppMetric> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const cppops_agent_metric* m = t.slots[i].load(std::memory_order_acquire);
    protocol::AppMetric a;
    a.name = m->name;
    a.help = m->help;
    a.kind = m->kind;
    const uint64_t v = m->value.load(std::memory_order_relaxed);
    if (m->kind == protocol::kMetricCounter) {
      a.value = static_cast<double>(v);
    } else if (m->kind == protocol::kMetricGauge) {
      a.value = asDouble(v);
    } else {
      a.sum = asDouble(v);
      a.bounds = m->bounds;
      a.bucket_counts.resize(m->bounds.size() + 1);
      for (size_t b = 0; b < a.bucket_counts.size(); ++b)
        a.bucket_counts[b] = m->buckets[b].load(std::memory_order_relaxed);
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace cppops::agent::metrics

using cppops::agent::metrics::registerMetric;
namespace protocol = cppops::protocol;

extern "C" cppops_agent_metric* cppops_agent_counter(const char* name, const char* help) {
  return registerMetric(name, help, protocol::kMetricCounter, nullptr, 0);
}

extern "C" cppops_agent_metric* cppops_agent_gauge(const char* name, const char* help) {
  return registerMetric(name, help, protocol::kMetricGauge, nullptr, 0);
}

extern "C" cppops_agent_metric* cppops_agent_histogram(const char* name, const char* help, const double* bounds,
                                                        size_t count) {
  return registerMetric(name, help, protocol::kMetricHistogram, bounds, count);
}

extern "C" void cppops_agent_counter_add(cppops_agent_metric* counter, unsigned long long delta) {
  if (counter != nullptr && counter->kind == protocol::kMetricCounter)
    counter->value.fetch_add(delta, std::memory_order_relaxed);
}

extern "C" void cppops_agent_gauge_set(cppops_agent_metric* gauge, double value) {
  if (gauge == nullptr || gauge->kind != protocol::kMetricGauge) return;
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  gauge->value.store(bits, std::memory_order_relaxed);
}

extern "C" void cppops_agent_gauge_add(cppops_agent_metric* gauge, double delta) {
  if (gauge != nullptr && gauge->kind == protocol::kMetricGauge) cppops::agent::metrics::addDoubleTo(gauge->value, delta);
}

extern "C" void cppops_agent_histogram_observe(cppops_agent_metric* histogram, double value) {
  if (histogram == nullptr || histogram->kind != protocol::kMetricHistogram) return;
  // Prometheus buckets are "less than or equal"; NaN lands in +Inf, like everything above the last bound.
  size_t b = 0;
  while (b < histogram->bounds.size() && !(value <= histogram->bounds[b])) ++b;
  histogram->buckets[b].fetch_add(1, std::memory_order_relaxed);
  cppops::agent::metrics::addDoubleTo(histogram->value, value);
}
