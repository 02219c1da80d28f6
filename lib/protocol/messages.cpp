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
  return r.ok();
}

void ErrorReply::encode(wire::Writer& w) const { w.str(message); }

bool ErrorReply::decode(wire::Reader& r) {
  message = r.str();
  return r.ok();
}

}  // namespace cppops::protocol
