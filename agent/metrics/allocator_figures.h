// The allocator's totals for the METRICS command. The one place the agent asks glibc about its heap: when heap
// figures grow (mallinfo2 per arena, other allocators), they belong here, so every command reads the same numbers.
#pragma once

#include "protocol/messages.h"

namespace cppops::agent::metrics {

// Fills the heap_* fields of `reply` from glibc's mallinfo2() and sets allocator_known; leaves allocator_known 0
// when the C library has no mallinfo2 (musl, glibc before 2.33). mallinfo2 takes each arena's lock briefly.
// Async-signal-safe: no.
void readAllocatorFigures(protocol::MetricsReply& reply);

}  // namespace cppops::agent::metrics
