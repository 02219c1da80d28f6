#include "protocol/messages.h"

namespace cppops::protocol {

namespace {
// Smallest encoding of a string (its length prefix), so a hostile count is rejected before any allocation.
constexpr size_t kMinStringSize = 4;
}  // namespace

void HelloReply::encode(wire::Writer& w) const {
  w.str(agent_version);
  w.u16(protocol_version);
  w.u32(pid);
  w.u64(start_ticks);
  w.u32(static_cast<uint32_t>(capabilities.size()));
  for (const auto& c : capabilities) w.str(c);
}

bool HelloReply::decode(wire::Reader& r) {
  agent_version = r.str();
  protocol_version = r.u16();
  pid = r.u32();
  start_ticks = r.u64();
  uint32_t n = r.count(kMinStringSize);
  capabilities.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) capabilities.push_back(r.str());
  return r.ok();
}

void StatsReply::encode(wire::Writer& w) const {
  w.u32(threads);
  w.u64(utime_ticks);
  w.u64(stime_ticks);
  w.u64(clock_ticks_per_second);
  w.u64(rss_bytes);
  w.u32(open_fds);
  w.u64(voluntary_switches);
  w.u64(involuntary_switches);
  w.u64(start_ticks);
  w.u64(boottime_ns);
}

bool StatsReply::decode(wire::Reader& r) {
  threads = r.u32();
  utime_ticks = r.u64();
  stime_ticks = r.u64();
  clock_ticks_per_second = r.u64();
  rss_bytes = r.u64();
  open_fds = r.u32();
  voluntary_switches = r.u64();
  involuntary_switches = r.u64();
  start_ticks = r.u64();
  boottime_ns = r.u64();
  return r.ok();
}

void VersionReply::encode(wire::Writer& w) const {
  w.str(agent_version);
  w.u16(protocol_version);
  w.str(executable);
  w.str(build_id);
  w.str(load_mode);
}

bool VersionReply::decode(wire::Reader& r) {
  agent_version = r.str();
  protocol_version = r.u16();
  executable = r.str();
  build_id = r.str();
  load_mode = r.str();
  return r.ok();
}

void StackRequest::encode(wire::Writer& w) const {
  w.u32(timeout_ms);
  w.u8(use_signals);
}

bool StackRequest::decode(wire::Reader& r) {
  // An empty request means the defaults, so `stack` needs no arguments from simple clients.
  if (r.remaining() == 0) return true;
  timeout_ms = r.u32();
  use_signals = r.u8();
  return r.ok();
}

void StackThread::encode(wire::Writer& w) const {
  w.u32(tid);
  w.u8(status);
  w.u64(handler_ns);
  w.str(syscall_line);
  w.u64(lock_window_address);
  w.str(lock_window);
  w.u32(static_cast<uint32_t>(pcs.size()));
  for (uint64_t pc : pcs) w.u64(pc);
}

bool StackThread::decode(wire::Reader& r) {
  tid = r.u32();
  status = r.u8();
  handler_ns = r.u64();
  syscall_line = r.str();
  lock_window_address = r.u64();
  lock_window = r.str();
  uint32_t n = r.count(sizeof(uint64_t));
  pcs.resize(n);
  for (auto& pc : pcs) pc = r.u64();
  return r.ok();
}

void StackReply::encode(wire::Writer& w) const {
  w.u64(total_ns);
  w.u64(max_handler_ns);
  w.u32(agent_tid);
  w.u32(signal);
  w.u32(static_cast<uint32_t>(notes.size()));
  for (const auto& n : notes) w.str(n);
  w.u32(static_cast<uint32_t>(threads.size()));
  for (const auto& t : threads) t.encode(w);
  w.u32(static_cast<uint32_t>(thread_names.size()));
  for (const auto& name : thread_names) w.str(name);
  w.u32(read_asleep);
}

bool StackReply::decode(wire::Reader& r) {
  total_ns = r.u64();
  max_handler_ns = r.u64();
  agent_tid = r.u32();
  signal = r.u32();
  uint32_t n = r.count(kMinStringSize);
  notes.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) notes.push_back(r.str());
  // A thread is at least tid + status + three u64 + three length prefixes.
  uint32_t count = r.count(4 + 1 + 8 + 8 + 4 + 4 + 4);
  threads.clear();
  threads.reserve(count);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    StackThread t;
    if (!t.decode(r)) break;
    threads.push_back(std::move(t));
  }
  thread_names.clear();
  if (r.ok() && r.remaining() > 0) {
    uint32_t names = r.count(kMinStringSize);
    for (uint32_t i = 0; i < names && r.ok(); ++i) thread_names.push_back(r.str());
  }
  read_asleep = r.ok() && r.remaining() > 0 ? r.u32() : 0;
  return r.ok();
}

void SymbolsRequest::encode(wire::Writer& w) const {
  w.u32(static_cast<uint32_t>(addresses.size()));
  for (uint64_t a : addresses) w.u64(a);
}

bool SymbolsRequest::decode(wire::Reader& r) {
  uint32_t n = r.count(sizeof(uint64_t));
  addresses.resize(n);
  for (auto& a : addresses) a = r.u64();
  return r.ok();
}

void SymbolsReply::encode(wire::Writer& w) const {
  w.u32(static_cast<uint32_t>(symbols.size()));
  for (const auto& s : symbols) {
    w.str(s.module);
    w.str(s.name);
    w.u64(s.offset);
  }
}

bool SymbolsReply::decode(wire::Reader& r) {
  uint32_t n = r.count(kMinStringSize * 2 + sizeof(uint64_t));
  symbols.resize(n);
  for (auto& s : symbols) {
    s.module = r.str();
    s.name = r.str();
    s.offset = r.u64();
  }
  return r.ok();
}

void ProfileRequest::encode(wire::Writer& w) const {
  w.u32(duration_ms);
  w.u32(rate_hz);
  w.u8(mode);
}

bool ProfileRequest::decode(wire::Reader& r) {
  // An empty request means the defaults: 10 s of cpu samples at 100 Hz.
  if (r.remaining() == 0) return true;
  duration_ms = r.u32();
  rate_hz = r.u32();
  mode = r.u8();
  return r.ok();
}

void ProfileThread::encode(wire::Writer& w) const {
  w.u32(tid);
  w.str(name);
  w.u32(static_cast<uint32_t>(labels.size()));
  for (const auto& l : labels) {
    w.str(l.key);
    w.str(l.value);
  }
}

bool ProfileThread::decode(wire::Reader& r) {
  tid = r.u32();
  name = r.str();
  uint32_t n = r.count(kMinStringSize * 2);
  labels.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ProfileLabel l;
    l.key = r.str();
    l.value = r.str();
    labels.push_back(std::move(l));
  }
  return r.ok();
}

void ProfileSample::encode(wire::Writer& w) const {
  w.u32(tid);
  w.u64(weight);
  w.str(syscall_line);
  w.u32(static_cast<uint32_t>(pcs.size()));
  for (uint64_t pc : pcs) w.u64(pc);
}

bool ProfileSample::decode(wire::Reader& r) {
  tid = r.u32();
  weight = r.u64();
  syscall_line = r.str();
  uint32_t n = r.count(sizeof(uint64_t));
  pcs.resize(n);
  for (auto& pc : pcs) pc = r.u64();
  return r.ok();
}

void ProfileReply::encode(wire::Writer& w) const {
  w.u64(duration_ns);
  w.u64(period_ns);
  w.u64(dropped);
  w.u32(static_cast<uint32_t>(threads.size()));
  for (const auto& t : threads) t.encode(w);
  w.u32(static_cast<uint32_t>(samples.size()));
  for (const auto& s : samples) s.encode(w);
  w.u32(static_cast<uint32_t>(notes.size()));
  for (const auto& n : notes) w.str(n);
}

bool ProfileReply::decode(wire::Reader& r) {
  duration_ns = r.u64();
  period_ns = r.u64();
  dropped = r.u64();
  // A thread is at least tid + two counts; a sample at least tid + weight + two counts.
  uint32_t n = r.count(4 + kMinStringSize + 4);
  threads.clear();
  threads.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ProfileThread t;
    if (!t.decode(r)) break;
    threads.push_back(std::move(t));
  }
  n = r.count(4 + 8 + kMinStringSize + 4);
  samples.clear();
  samples.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ProfileSample s;
    if (!s.decode(r)) break;
    samples.push_back(std::move(s));
  }
  n = r.count(kMinStringSize);
  notes.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) notes.push_back(r.str());
  return r.ok();
}

void ErrorReply::encode(wire::Writer& w) const { w.str(message); }

bool ErrorReply::decode(wire::Reader& r) {
  message = r.str();
  return r.ok();
}

void AppMetric::encode(wire::Writer& w) const {
  w.str(name);
  w.str(help);
  w.u8(kind);
  w.f64(value);
  w.u32(static_cast<uint32_t>(bounds.size()));
  for (double b : bounds) w.f64(b);
  w.u32(static_cast<uint32_t>(bucket_counts.size()));
  for (uint64_t c : bucket_counts) w.u64(c);
  w.f64(sum);
}

bool AppMetric::decode(wire::Reader& r) {
  name = r.str();
  help = r.str();
  kind = r.u8();
  value = r.f64();
  bounds.resize(r.count(sizeof(double)));
  for (double& b : bounds) b = r.f64();
  bucket_counts.resize(r.count(sizeof(uint64_t)));
  for (uint64_t& c : bucket_counts) c = r.u64();
  sum = r.f64();
  if (kind > kMetricHistogram) r.fail();
  if (kind == kMetricHistogram && bucket_counts.size() != bounds.size() + 1) r.fail();
  return r.ok();
}

void MetricsReply::encode(wire::Writer& w) const {
  process.encode(w);
  w.u64(requests_served);
  w.u64(requests_refused);
  w.u8(thread_counts_known);
  w.u64(threads_created);
  w.u64(threads_exited);
  w.u8(allocator_known);
  w.u64(heap_arena_bytes);
  w.u64(heap_mmap_bytes);
  w.u64(heap_in_use_bytes);
  w.u64(heap_free_bytes);
  w.u32(agent_tid);
  w.u32(static_cast<uint32_t>(threads.size()));
  for (const auto& t : threads) t.encode(w);
  w.str(thread_states);
  w.u32(static_cast<uint32_t>(app.size()));
  for (const auto& m : app) m.encode(w);
}

bool MetricsReply::decode(wire::Reader& r) {
  if (!process.decode(r)) return false;
  requests_served = r.u64();
  requests_refused = r.u64();
  thread_counts_known = r.u8();
  threads_created = r.u64();
  threads_exited = r.u64();
  allocator_known = r.u8();
  heap_arena_bytes = r.u64();
  heap_mmap_bytes = r.u64();
  heap_in_use_bytes = r.u64();
  heap_free_bytes = r.u64();
  agent_tid = r.u32();
  // A thread record is at least 33 bytes (tid, status, handler_ns, two empty strings, address, pc count).
  threads.resize(r.count(33));
  for (auto& t : threads)
    if (!t.decode(r)) return false;
  thread_states = r.str();
  if (thread_states.size() != threads.size()) r.fail();
  app.resize(r.count(8));
  for (auto& m : app)
    if (!m.decode(r)) return false;
  return r.ok();
}

}  // namespace cppops::protocol

namespace cppops::protocol {

namespace {

void encodeFigures(wire::Writer& w, const std::vector<AllocatorFigure>& figures) {
  w.u32(static_cast<uint32_t>(figures.size()));
  for (const auto& f : figures) {
    w.str(f.name);
    w.u64(f.value);
  }
}

bool decodeFigures(wire::Reader& r, std::vector<AllocatorFigure>& figures) {
  uint32_t n = r.count(kMinStringSize + sizeof(uint64_t));
  figures.resize(n);
  for (auto& f : figures) {
    f.name = r.str();
    f.value = r.u64();
  }
  return r.ok();
}

}  // namespace

void HeapReply::encode(wire::Writer& w) const {
  w.str(allocator);
  w.str(allocator_module);
  w.str(allocator_version);
  encodeFigures(w, figures);
  w.str(allocator_report);
  w.str(smaps_rollup);
  w.str(smaps);
  w.u32(static_cast<uint32_t>(stacks.size()));
  for (const auto& s : stacks) {
    w.u32(s.tid);
    w.u64(s.sp);
  }
  w.u8(heap_hooks);
  w.u8(heap_sampling);
  w.u64(heap_rate_bytes);
}

bool HeapReply::decode(wire::Reader& r) {
  allocator = r.str();
  allocator_module = r.str();
  allocator_version = r.str();
  if (!decodeFigures(r, figures)) return false;
  allocator_report = r.str();
  smaps_rollup = r.str();
  smaps = r.str();
  uint32_t n = r.count(4 + 8);
  stacks.resize(n);
  for (auto& s : stacks) {
    s.tid = r.u32();
    s.sp = r.u64();
  }
  heap_hooks = r.u8();
  heap_sampling = r.u8();
  heap_rate_bytes = r.u64();
  return r.ok();
}

void GcReply::encode(wire::Writer& w) const {
  w.str(allocator);
  w.str(method);
  w.i64(result);
  w.u64(duration_ns);
  encodeFigures(w, before);
  encodeFigures(w, after);
  w.str(smaps_rollup_before);
  w.str(smaps_rollup_after);
}

bool GcReply::decode(wire::Reader& r) {
  allocator = r.str();
  method = r.str();
  result = r.i64();
  duration_ns = r.u64();
  if (!decodeFigures(r, before) || !decodeFigures(r, after)) return false;
  smaps_rollup_before = r.str();
  smaps_rollup_after = r.str();
  return r.ok();
}

void HeapProfileRequest::encode(wire::Writer& w) const {
  w.u8(action);
  w.u64(rate_bytes);
}

bool HeapProfileRequest::decode(wire::Reader& r) {
  // An empty request means a read.
  if (r.remaining() == 0) return true;
  action = r.u8();
  rate_bytes = r.u64();
  return r.ok();
}

void HeapSample::encode(wire::Writer& w) const {
  w.u64(alloc_objects);
  w.u64(alloc_bytes);
  w.u64(free_objects);
  w.u64(free_bytes);
  w.u32(static_cast<uint32_t>(pcs.size()));
  for (uint64_t pc : pcs) w.u64(pc);
}

bool HeapSample::decode(wire::Reader& r) {
  alloc_objects = r.u64();
  alloc_bytes = r.u64();
  free_objects = r.u64();
  free_bytes = r.u64();
  uint32_t n = r.count(sizeof(uint64_t));
  pcs.resize(n);
  for (auto& pc : pcs) pc = r.u64();
  return r.ok();
}

void HeapProfileReply::encode(wire::Writer& w) const {
  w.u8(interposed);
  w.u8(sampling);
  w.u64(rate_bytes);
  w.u64(sampled_ns);
  w.u64(dropped);
  w.u32(static_cast<uint32_t>(samples.size()));
  for (const auto& s : samples) s.encode(w);
  w.u32(static_cast<uint32_t>(notes.size()));
  for (const auto& n : notes) w.str(n);
}

bool HeapProfileReply::decode(wire::Reader& r) {
  interposed = r.u8();
  sampling = r.u8();
  rate_bytes = r.u64();
  sampled_ns = r.u64();
  dropped = r.u64();
  uint32_t n = r.count(4 * 8 + 4);
  samples.clear();
  samples.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    HeapSample s;
    if (!s.decode(r)) break;
    samples.push_back(std::move(s));
  }
  n = r.count(kMinStringSize);
  notes.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) notes.push_back(r.str());
  return r.ok();
}

}  // namespace cppops::protocol
