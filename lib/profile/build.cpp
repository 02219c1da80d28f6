#include "profile/build.h"

#include <sys/types.h>

#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "profile/names.h"

namespace cppops::profile {
namespace {

struct PcKey {
  uint64_t pc = 0;
  bool is_return_address = false;
  bool operator==(const PcKey& other) const {
    return pc == other.pc && is_return_address == other.is_return_address;
  }
};

struct PcKeyHash {
  size_t operator()(const PcKey& key) const { return std::hash<uint64_t>{}(key.pc) ^ (key.is_return_address ? 1 : 0); }
};

using Labels = std::vector<std::pair<std::string, std::string>>;

struct SampleKey {
  std::vector<size_t> locations;
  Labels labels;
  bool operator==(const SampleKey& other) const { return locations == other.locations && labels == other.labels; }
};

struct SampleKeyHash {
  size_t operator()(const SampleKey& key) const {
    size_t h = 0xcbf29ce484222325ULL;
    auto mix = [&h](size_t v) { h = (h ^ v) * 0x100000001b3ULL; };
    for (size_t location : key.locations) mix(location);
    for (const auto& [k, v] : key.labels) {
      mix(std::hash<std::string>{}(k));
      mix(std::hash<std::string>{}(v));
    }
    return h;
  }
};

// Symbolizes each distinct (pc, is_return_address) once and hands out the Locations of its frames.
class LocationTable {
 public:
  LocationTable(const FrameSource& frames, std::vector<Location>& locations) : frames_(frames), locations_(locations) {}

  const std::vector<size_t>& of(uint64_t pc, bool is_return_address) {
    auto [it, inserted] = cache_.try_emplace(PcKey{pc, is_return_address});
    if (!inserted) return it->second;
    std::vector<SourceFrame> frames = frames_ ? frames_(pc, is_return_address) : std::vector<SourceFrame>{};
    if (frames.empty()) {
      Location bare;
      bare.address = pc;
      append(it->second, std::move(bare));
      return it->second;
    }
    for (const SourceFrame& frame : frames) {
      Location location;
      location.address = pc;
      location.function = frame.function;
      location.file = frame.file;
      location.line = frame.line;
      location.module = frame.module;
      location.inlined = frame.inlined;
      append(it->second, std::move(location));
    }
    return it->second;
  }

 private:
  void append(std::vector<size_t>& indexes, Location location) {
    indexes.push_back(locations_.size());
    locations_.push_back(std::move(location));
  }

  const FrameSource& frames_;
  std::vector<Location>& locations_;
  std::unordered_map<PcKey, std::vector<size_t>, PcKeyHash> cache_;
};

}  // namespace

Profile buildProfile(const RawProfile& raw, const FrameSource& frames) {
  Profile profile;
  profile.pid = raw.pid;
  profile.mode = raw.mode;
  profile.period_ns = raw.period_ns;
  profile.duration_ns = raw.duration_ns;
  profile.dropped = raw.dropped;
  profile.heap_rate_bytes = raw.heap_rate_bytes;
  profile.heap_shown = raw.heap_shown;

  std::map<pid_t, std::string> thread_names;
  for (const auto& [tid, name] : raw.thread_names) thread_names.emplace(tid, name);

  LocationTable table(frames, profile.locations);
  std::unordered_map<SampleKey, size_t, SampleKeyHash> merged;
  for (const RawSample& raw_sample : raw.samples) {
    SampleKey key;
    // A heap sample's pcs are all return addresses: the stack starts in the caller of malloc.
    bool return_address = raw.mode == Mode::kHeap;
    for (uint64_t pc : raw_sample.pcs) {
      const std::vector<size_t>& locations = table.of(pc, return_address);
      key.locations.insert(key.locations.end(), locations.begin(), locations.end());
      return_address = followedByReturnAddress(profile.locations[locations.back()].function);
    }
    // Heap samples belong to an allocation stack, not to a thread.
    if (raw.mode != Mode::kHeap) {
      auto name = thread_names.find(raw_sample.tid);
      if (name != thread_names.end()) key.labels.emplace_back(kThreadNameLabel, name->second);
      key.labels.emplace_back(kThreadIdLabel, std::to_string(raw_sample.tid));
    }
    if (raw.mode == Mode::kWall && !raw_sample.state.empty()) key.labels.emplace_back(kStateLabel, raw_sample.state);

    auto [it, inserted] = merged.try_emplace(std::move(key), profile.samples.size());
    if (inserted) {
      Sample sample;
      sample.locations = it->first.locations;
      sample.labels = it->first.labels;
      profile.samples.push_back(std::move(sample));
    }
    Sample& sample = profile.samples[it->second];
    sample.count += raw_sample.weight;
    if (raw.mode == Mode::kHeap) {
      sample.heap.resize(kHeapValues);
      for (size_t i = 0; i < kHeapValues && i < raw_sample.heap.size(); ++i) sample.heap[i] += raw_sample.heap[i];
    }
  }
  for (Sample& sample : profile.samples) sample.value_ns = sample.count * raw.period_ns;
  return profile;
}

Profile buildProfile(const RawProfile& raw, Symbolizer* symbolizer) {
  if (symbolizer == nullptr) return buildProfile(raw, FrameSource{});
  FrameSource frames = [symbolizer](uint64_t pc, bool is_return_address) {
    return symbolizer->symbolize(pc, is_return_address);
  };
  return buildProfile(raw, frames);
}

}  // namespace cppops::profile
