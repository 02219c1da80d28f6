// Taking a profile through a process's agent: the request, the wait while the agent samples, and the RawProfile
// it delivers, with each wall-clock sample's state classified, ready for buildProfile().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "profile/model.h"
#include "symbolize/symbolizer.h"

namespace cppops::profile {

struct CaptureOptions {
  std::chrono::milliseconds duration{10000};
  uint32_t rate_hz = 100;
  Mode mode = Mode::kCpu;
  // For connecting and the handshake, and for the reply on top of the duration.
  std::chrono::milliseconds timeout{2000};
};

struct Capture {
  std::string source = "agent";  // or "ptrace" (profile/ptrace_source.h)
  RawProfile raw;
  // For buildProfile(); nullptr when the process's modules could not be read (every frame stays an address).
  std::unique_ptr<Symbolizer> symbolizer;
  // The agent's remarks, and why frames are not symbolized if they are not; the symbolizer's own notes are
  // complete only after buildProfile() has looked up every pc.
  std::vector<std::string> notes;
};

// Asks the agent of `pid` for a profile and waits for it (duration + timeout). Wall mode: each sample's state is
// stack::stateFromSyscall() of the kernel facts the agent read, with the sample's frames for futex waits.
Result<Capture> profileThroughAgent(pid_t pid, const CaptureOptions& options);

}  // namespace cppops::profile
