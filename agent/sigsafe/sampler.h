// The async-signal-safe core of profiling: the handler that records one sample of the interrupted thread, and the
// buffers it records into. Same rules as the rest of agent/sigsafe/ (see capture.h): no allocation, no lock, no
// exception, never wait; a sample that cannot be stored is dropped and counted.
//
// Who sends the signal (the profile thread, agent/profiler.cpp, sets it up):
//   cpu mode:  a POSIX timer per thread on that thread's CPU-time clock, delivered to that very thread
//              (SIGEV_THREAD_ID); si_overrun says how many more periods passed since the last delivery (the
//              kernel checks CPU timers once per tick), and the sample's weight is 1 + si_overrun.
//   wall mode: the profile thread queues the signal to every thread at the rate (rt_tgsigqueueinfo), with a tag
//              that it matches to the kernel facts it read for that thread just before.
// Both carry sampleValue(generation, tag) as the signal value; anything else is passed on to the handler that
// was installed before ours.
//
// Buffers: kSampleBuffers fixed control blocks (never freed, so a late handler can always touch them) whose data
// the profile thread allocates. One is active at a time. A handler announces itself in the active block's
// `writers`, checks that the block is still the active one (else it backs out without touching the data), claims
// bytes with one fetch_add on `used`, writes its record and leaves. The profile thread switches the active block,
// waits until the old block has no writers (seq_cst on both sides: either the handler sees the switch or the
// profile thread sees the writer), then reads the old block's records and empties it. Records are back to back
// from offset 0: a SampleRecord and its pcs. A claim that does not fit is dropped and, when its header still
// fits, marked with size kEndOfRecords, where reading stops.
#pragma once

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace cppops::agent::sigsafe {

inline constexpr int kSampleBuffers = 4;
inline constexpr uint32_t kEndOfRecords = 0xffffffffu;
inline constexpr uint32_t kTagBits = 20;
inline constexpr uint32_t kGenerationBits = 20;

struct SampleRecord {
  uint32_t size = 0;         // bytes of this record including its pcs, or kEndOfRecords
  int32_t tid = 0;
  uint32_t weight = 0;       // periods this sample stands for
  uint32_t frame_count = 0;  // u64 pcs that follow, pcs[0] the interrupted pc
  uint32_t tag = 0;          // the tag of the signal value (wall mode: which request this answers)
  uint32_t reserved = 0;
};
static_assert(sizeof(SampleRecord) % 8 == 0, "records keep the pcs that follow them 8-byte aligned");

struct SampleBuffer {
  std::atomic<uint32_t> writers{0};
  std::atomic<uint64_t> used{0};  // bytes claimed; may exceed capacity (those claims were dropped)
  uint64_t capacity = 0;          // set, like data, only while the block is not active
  uint8_t* data = nullptr;        // 8-byte aligned
};

// The control block `index` (0 <= index < kSampleBuffers). Async-signal-safe: yes.
SampleBuffer& sampleBuffer(int index);

// Installs the sampling handler for `signo`, chaining to whatever handler was there; stays installed for the
// life of the process (a timer signal that is already pending when a profile ends must still find it). Returns
// 0 or an errno. Async-signal-safe: no (called from the profile thread).
int installSampler(int signo);

// True while the handler installed for `signo` is still ours. Async-signal-safe: yes (sigaction(2)).
bool samplerIsOurs(int signo);

// Starts accepting samples of `generation` into block `active`; resets the drop count.
// Async-signal-safe: yes (atomic stores); called by the profile thread only.
void startSampling(uint32_t generation, int active);

// Makes `active` the block handlers write into. Async-signal-safe: yes; profile thread only.
void switchSampleBuffer(int active);

// Stops accepting samples: handlers that arrive later record nothing. Blocks may still have writers that
// started before; wait for their `writers` to reach 0 before reading or freeing. Async-signal-safe: yes.
void stopSampling();

// Samples (by weight) dropped since startSampling(): buffer full, or the block switched twice under a handler.
// Async-signal-safe: yes.
uint64_t droppedSamples();

// The signal value of a timer (tag 0) or of a wall-mode request. Async-signal-safe: yes.
uint64_t sampleValue(uint32_t generation, uint32_t tag);

}  // namespace cppops::agent::sigsafe
