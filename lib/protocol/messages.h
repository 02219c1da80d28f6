// Reply payloads of the cppops protocol. Each message has encode() and a decode() that returns false on a
// truncated or inconsistent payload; fields are appended, never reordered (see cppops-protocol(7)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/wire.h"

namespace cppops::protocol {

struct HelloReply {
  std::string agent_version;
  uint16_t protocol_version = 0;
  // As the agent sees itself; inside a PID namespace this differs from the PID the host CLI used.
  uint32_t pid = 0;
  // Process start time in clock ticks since boot (/proc/PID/stat field 22): with the PID, it names exactly one
  // process, so a client can tell a reused PID from the process it meant to reach.
  uint64_t start_ticks = 0;
  std::vector<std::string> capabilities;  // command names, see commandName()

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// Raw kernel figures for the whole process; the CLI turns ticks into seconds and start time into uptime.
struct StatsReply {
  uint32_t threads = 0;
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t clock_ticks_per_second = 0;
  uint64_t rss_bytes = 0;
  uint32_t open_fds = 0;
  uint64_t voluntary_switches = 0;
  uint64_t involuntary_switches = 0;
  uint64_t start_ticks = 0;
  uint64_t boottime_ns = 0;  // CLOCK_BOOTTIME when the figures were read: uptime = boottime - start

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct VersionReply {
  std::string agent_version;
  uint16_t protocol_version = 0;
  std::string executable;  // /proc/self/exe as the agent resolves it (its own mount namespace)
  std::string build_id;    // hex GNU build-id of the main executable, "" when it has none
  std::string load_mode;   // "preload" (LD_PRELOAD) or "linked" (cppops_agent_start)

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// Error replies carry a human message that the CLI prints verbatim.
struct ErrorReply {
  std::string message;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

}  // namespace cppops::protocol
