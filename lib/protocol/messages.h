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

struct StackRequest {
  uint32_t timeout_ms = 1000;  // how long the agent waits for threads to unwind themselves
  uint8_t use_signals = 1;     // 0: kernel facts only, no signal sent to any thread

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// One thread's raw facts. `status` is stack::CaptureStatus as a number: 0 captured, 1 no answer, 2 exited,
// 3 not requested.
struct StackThread {
  uint32_t tid = 0;
  uint8_t status = 0;
  uint64_t handler_ns = 0;
  std::string syscall_line;          // /proc/self/task/TID/syscall, read before the thread was signalled
  uint64_t lock_window_address = 0;  // where lock_window starts in the target
  std::string lock_window;           // bytes around the futex address the thread sleeps on
  std::vector<uint64_t> pcs;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct StackReply {
  uint64_t total_ns = 0;        // the whole capture inside the agent
  uint64_t max_handler_ns = 0;  // longest time one thread spent in the capture handler
  uint32_t agent_tid = 0;       // the control thread, which is not in `threads`
  uint32_t signal = 0;          // the signal used, 0 when none was sent
  std::vector<std::string> notes;
  std::vector<StackThread> threads;

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
