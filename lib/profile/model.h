// Profiles, from raw samples to the formats people open (pprof, folded stacks, flame graph SVG, speedscope).
//
// RawProfile is what the agent delivers: program counters per sample with the thread they came from, nothing
// interpreted. Profile is what lib/ makes of it: samples over a table of unique symbolized locations, ready for
// any encoder. Encoders only read Profile.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cppops::profile {

enum class Mode { kCpu, kWall, kHeap };

// A heap profile's values per sample, in pprof's (and Go's) order: the last is what pprof shows by default.
enum HeapValue : size_t { kAllocObjects = 0, kAllocSpace = 1, kInuseObjects = 2, kInuseSpace = 3, kHeapValues = 4 };
const char* heapValueName(HeapValue value);  // "alloc_objects", ..., "inuse_space" 

struct RawSample {
  pid_t tid = 0;
  std::vector<uint64_t> pcs;   // pcs[0] exact, the rest return addresses (as in stack::RawThread)
  uint64_t weight = 1;         // samples this one stands for (timer overruns are folded in here)
  std::string state;           // wall mode: the thread's state name (stack::stateName), "" in cpu mode
  std::vector<uint64_t> heap;  // heap mode: kHeapValues figures; `weight` is the one the text views show
};

struct RawProfile {
  pid_t pid = 0;
  Mode mode = Mode::kCpu;
  uint64_t period_ns = 0;      // 1e9 / rate
  uint64_t duration_ns = 0;
  uint64_t dropped = 0;        // samples lost for any reason (buffer full, handler busy), counted by the agent
  uint64_t heap_rate_bytes = 0;          // heap mode: mean bytes between samples
  HeapValue heap_shown = kInuseSpace;    // heap mode: what RawSample::weight holds
  std::vector<std::pair<pid_t, std::string>> thread_names;
  std::vector<RawSample> samples;
};

struct Location {
  uint64_t address = 0;
  std::string function;        // "" when unknown
  std::string file;
  int line = 0;
  std::string module;
  bool inlined = false;
};

struct Sample {
  std::vector<size_t> locations;  // indexes into Profile::locations, innermost first
  uint64_t count = 0;             // samples; in heap mode the figure Profile::heap_shown names
  std::vector<uint64_t> heap;     // heap mode: kHeapValues figures (pprof writes all four)
  uint64_t value_ns = 0;          // count * period
  // pprof labels: "thread_name", "thread_id", "state" (wall mode), and whatever the agent learns later.
  std::vector<std::pair<std::string, std::string>> labels;
};

struct Profile {
  pid_t pid = 0;
  Mode mode = Mode::kCpu;
  uint64_t period_ns = 0;
  uint64_t duration_ns = 0;
  uint64_t dropped = 0;
  uint64_t heap_rate_bytes = 0;
  HeapValue heap_shown = kInuseSpace;
  std::vector<Location> locations;
  std::vector<Sample> samples;
};

}  // namespace cppops::profile
