// Heap profiles through a process's agent: switching allocation sampling on and off, and turning what it recorded
// into a RawProfile (mode kHeap) ready for buildProfile().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>

#include "core/result.h"
#include "profile/agent_source.h"
#include "protocol/messages.h"

namespace cppops::profile {

// One HEAP_PROFILE request (protocol::kHeapRead, kHeapStart or kHeapStop).
Result<protocol::HeapProfileReply> heapProfileRequest(pid_t pid, protocol::HeapProfileAction action,
                                                      uint64_t rate_bytes, std::chrono::milliseconds timeout);

// The reply's samples as a RawProfile whose weights are `shown`, with a symbolizer for the process's modules.
Capture heapCapture(pid_t pid, protocol::HeapProfileReply reply, HeapValue shown);

}  // namespace cppops::profile
