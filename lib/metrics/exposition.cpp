#include "metrics/exposition.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <map>

namespace cppops::metrics {

std::string escapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return fmt::format("{:.0f}", value);
  return fmt::format("{}", value);
}

namespace {

double seconds(uint64_t ticks, uint64_t per_second) {
  return static_cast<double>(ticks) / static_cast<double>(per_second > 0 ? per_second : 100);
}

std::string processLabels(const ProcessMetrics& p) {
  std::string labels = fmt::format("pid=\"{}\",process=\"{}\"", p.pid, escapeLabelValue(p.name));
  if (!p.cgroup.empty()) labels += fmt::format(",cgroup=\"{}\"", escapeLabelValue(p.cgroup));
  return labels;
}

class Writer {
 public:
  // One family: HELP, TYPE, then `samples` called for each process to add its lines.
  void family(const std::string& name, const char* type, const std::string& help,
              const std::vector<ProcessMetrics>& processes,
              const std::function<void(const ProcessMetrics&, const std::string& labels)>& samples) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escapeHelp(help), name, type);
    for (const ProcessMetrics& p : processes) samples(p, processLabels(p));
  }
  void sample(const std::string& name, const std::string& labels, double value) {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, formatValue(value));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// A simple family: one value per process.
void simple(Writer& w, const std::vector<ProcessMetrics>& ps, const std::string& name, const char* type,
            const std::string& help, const std::function<double(const ProcessMetrics&)>& value,
            const std::function<bool(const ProcessMetrics&)>& present = nullptr) {
  w.family(name, type, help, ps, [&](const ProcessMetrics& p, const std::string& labels) {
    if (!present || present(p)) w.sample(name, labels, value(p));
  });
}

std::string exposedName(const protocol::AppMetric& m) {
  const std::string suffix = "_total";
  const bool has_suffix =
      m.name.size() >= suffix.size() && m.name.compare(m.name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return m.kind == protocol::kMetricCounter && !has_suffix ? m.name + suffix : m.name;
}

const char* typeName(uint8_t kind) {
  switch (kind) {
    case protocol::kMetricCounter: return "counter";
    case protocol::kMetricGauge: return "gauge";
    default: return "histogram";
  }
}

void appFamilies(Writer& w, const std::vector<ProcessMetrics>& ps) {
  // Families in first-seen order; a name that another process registered with a different kind is left out of
  // that process's samples, since one family has one type.
  std::vector<std::string> order;
  std::map<std::string, const protocol::AppMetric*> first;
  for (const ProcessMetrics& p : ps)
    for (const protocol::AppMetric& m : p.reply.app)
      if (first.emplace(exposedName(m), &m).second) order.push_back(exposedName(m));

  for (const std::string& name : order) {
    const protocol::AppMetric& model = *first[name];
    w.family(name, typeName(model.kind), model.help.empty() ? "Registered by the application." : model.help, ps,
             [&](const ProcessMetrics& p, const std::string& labels) {
               for (const protocol::AppMetric& m : p.reply.app) {
                 if (exposedName(m) != name || m.kind != model.kind) continue;
                 if (m.kind != protocol::kMetricHistogram) {
                   w.sample(name, labels, m.value);
                   continue;
                 }
                 uint64_t cumulative = 0;
                 for (size_t b = 0; b < m.bucket_counts.size(); ++b) {
                   cumulative += m.bucket_counts[b];
                   const std::string le = b < m.bounds.size() ? formatValue(m.bounds[b]) : "+Inf";
                   w.sample(name + "_bucket", labels + ",le=\"" + le + "\"", static_cast<double>(cumulative));
                 }
                 w.sample(name + "_sum", labels, m.sum);
                 w.sample(name + "_count", labels, static_cast<double>(cumulative));
               }
             });
  }
}

}  // namespace

std::string renderPrometheus(const std::vector<ProcessMetrics>& ps) {
  Writer w;
  w.family("cppops_threads", "gauge",
           "Threads by state: running, blocked (on a lock), waiting, io, sleeping, other (see cppops(1)).", ps,
           [&](const ProcessMetrics& p, const std::string& labels) {
             for (size_t c = 0; c < kThreadCategories; ++c)
               w.sample("cppops_threads",
                        labels + ",state=\"" + categoryName(static_cast<ThreadCategory>(c)) + "\"",
                        p.threads_by_category[c]);
           });
  auto known_threads = [](const ProcessMetrics& p) { return p.reply.thread_counts_known != 0; };
  simple(w, ps, "cppops_threads_created_total", "counter", "Threads created since the agent started.",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.threads_created); }, known_threads);
  simple(w, ps, "cppops_threads_exited_total", "counter",
         "Threads that ended since the agent started (including ones created before it).",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.threads_exited); }, known_threads);
  w.family("cppops_cpu_seconds_total", "counter", "CPU time consumed by the process, by mode.", ps,
           [&](const ProcessMetrics& p, const std::string& labels) {
             const auto& s = p.reply.process;
             w.sample("cppops_cpu_seconds_total", labels + ",mode=\"user\"",
                      seconds(s.utime_ticks, s.clock_ticks_per_second));
             w.sample("cppops_cpu_seconds_total", labels + ",mode=\"system\"",
                      seconds(s.stime_ticks, s.clock_ticks_per_second));
           });
  simple(w, ps, "cppops_resident_memory_bytes", "gauge", "Resident set size.",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.process.rss_bytes); });
  auto known_heap = [](const ProcessMetrics& p) { return p.reply.allocator_known != 0; };
  simple(w, ps, "cppops_heap_in_use_bytes", "gauge", "Bytes allocated with malloc and not freed (glibc mallinfo2).",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.heap_in_use_bytes); }, known_heap);
  simple(w, ps, "cppops_heap_free_bytes", "gauge", "Bytes the allocator holds but has not handed out (mallinfo2).",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.heap_free_bytes); }, known_heap);
  simple(w, ps, "cppops_heap_arena_bytes", "gauge", "Bytes the allocator obtained for its arenas (mallinfo2).",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.heap_arena_bytes); }, known_heap);
  simple(w, ps, "cppops_heap_mmap_bytes", "gauge", "Bytes in blocks the allocator mapped one by one (mallinfo2).",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.heap_mmap_bytes); }, known_heap);
  simple(w, ps, "cppops_open_fds", "gauge", "Open file descriptors.",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.process.open_fds); });
  w.family("cppops_context_switches_total", "counter", "Context switches of the process's threads, by kind.", ps,
           [&](const ProcessMetrics& p, const std::string& labels) {
             w.sample("cppops_context_switches_total", labels + ",kind=\"voluntary\"",
                      static_cast<double>(p.reply.process.voluntary_switches));
             w.sample("cppops_context_switches_total", labels + ",kind=\"involuntary\"",
                      static_cast<double>(p.reply.process.involuntary_switches));
           });
  simple(w, ps, "cppops_agent_requests_served_total", "counter", "Requests the cppops agent answered.",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.requests_served); });
  simple(w, ps, "cppops_agent_requests_refused_total", "counter",
         "Connections the cppops agent refused (credentials, too many clients).",
         [](const ProcessMetrics& p) { return static_cast<double>(p.reply.requests_refused); });
  appFamilies(w, ps);
  return w.take();
}

nlohmann::json renderJson(const ProcessMetrics& p) {
  const auto& r = p.reply;
  const auto& s = r.process;
  nlohmann::json states = nlohmann::json::object();
  for (size_t c = 0; c < kThreadCategories; ++c)
    states[categoryName(static_cast<ThreadCategory>(c))] = p.threads_by_category[c];
  nlohmann::json doc = {
      {"schema_version", 1},
      {"pid", p.pid},
      {"process", p.name},
      {"cgroup", p.cgroup},
      {"threads", {{"total", s.threads}, {"by_state", states}}},
      {"cpu_seconds", {{"user", seconds(s.utime_ticks, s.clock_ticks_per_second)},
                       {"system", seconds(s.stime_ticks, s.clock_ticks_per_second)}}},
      {"resident_memory_bytes", s.rss_bytes},
      {"open_fds", s.open_fds},
      {"context_switches", {{"voluntary", s.voluntary_switches}, {"involuntary", s.involuntary_switches}}},
      {"agent_requests", {{"served", r.requests_served}, {"refused", r.requests_refused}}},
  };
  doc["threads"]["created"] = r.thread_counts_known ? nlohmann::json(r.threads_created) : nlohmann::json(nullptr);
  doc["threads"]["exited"] = r.thread_counts_known ? nlohmann::json(r.threads_exited) : nlohmann::json(nullptr);
  doc["heap"] = r.allocator_known ? nlohmann::json{{"in_use_bytes", r.heap_in_use_bytes},
                                                   {"free_bytes", r.heap_free_bytes},
                                                   {"arena_bytes", r.heap_arena_bytes},
                                                   {"mmap_bytes", r.heap_mmap_bytes}}
                                  : nlohmann::json(nullptr);
  nlohmann::json app = nlohmann::json::array();
  for (const protocol::AppMetric& m : r.app) {
    nlohmann::json e = {{"name", exposedName(m)}, {"type", typeName(m.kind)}, {"help", m.help}};
    if (m.kind == protocol::kMetricHistogram) {
      nlohmann::json buckets = nlohmann::json::array();
      uint64_t cumulative = 0;
      for (size_t b = 0; b < m.bucket_counts.size(); ++b) {
        cumulative += m.bucket_counts[b];
        buckets.push_back({{"le", b < m.bounds.size() ? formatValue(m.bounds[b]) : "+Inf"}, {"count", cumulative}});
      }
      e["buckets"] = buckets;
      e["sum"] = m.sum;
      e["count"] = cumulative;
    } else {
      e["value"] = m.value;
    }
    app.push_back(e);
  }
  doc["application"] = app;
  return doc;
}

}  // namespace cppops::metrics
