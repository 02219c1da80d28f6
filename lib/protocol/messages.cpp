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

void ErrorReply::encode(wire::Writer& w) const { w.str(message); }

bool ErrorReply::decode(wire::Reader& r) {
  message = r.str();
  return r.ok();
}

}  // namespace cppops::protocol
