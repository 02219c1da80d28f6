#include "profile/speedscope.h"

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <utility>
#include <vector>

#include "core/version.h"
#include "profile/names.h"

namespace cppops::profile {
namespace {

struct ThreadProfile {
  std::string title;
  nlohmann::json samples = nlohmann::json::array();
  nlohmann::json weights = nlohmann::json::array();
  uint64_t total = 0;
};

// Threads by numeric id, samples without one last.
struct ThreadOrder {
  bool operator()(const std::string& a, const std::string& b) const {
    if (a.empty() != b.empty()) return b.empty();
    long long x = std::atoll(a.c_str()), y = std::atoll(b.c_str());
    return x != y ? x < y : a < b;
  }
};

}  // namespace

nlohmann::json encodeSpeedscope(const Profile& profile, const SpeedscopeOptions& options) {
  nlohmann::json frames = nlohmann::json::array();
  std::map<std::pair<std::string, std::string>, size_t> frame_index;  // (name, file) -> index in frames
  std::vector<size_t> frame_of_location(profile.locations.size());
  for (size_t i = 0; i < profile.locations.size(); ++i) {
    const Location& location = profile.locations[i];
    std::string name = frameName(location);
    auto [it, inserted] = frame_index.try_emplace({name, location.file}, frames.size());
    if (inserted) {
      nlohmann::json frame = {{"name", name}};
      if (!location.file.empty()) frame["file"] = location.file;
      frames.push_back(std::move(frame));
    }
    frame_of_location[i] = it->second;
  }
  size_t no_stack_frame = 0;
  bool has_no_stack_frame = false;

  std::map<std::string, ThreadProfile, ThreadOrder> threads;  // by thread_id label
  for (const Sample& sample : profile.samples) {
    ThreadProfile& thread = threads[labelValue(sample, kThreadIdLabel)];
    if (thread.title.empty()) thread.title = threadTitle(sample);
    nlohmann::json stack = nlohmann::json::array();
    for (auto it = sample.locations.rbegin(); it != sample.locations.rend(); ++it)  // root first
      stack.push_back(frame_of_location[*it]);
    if (stack.empty()) {
      if (!has_no_stack_frame) {
        no_stack_frame = frames.size();
        frames.push_back({{"name", stackNames(profile, sample).front()}});
        has_no_stack_frame = true;
      }
      stack.push_back(no_stack_frame);
    }
    thread.samples.push_back(std::move(stack));
    thread.weights.push_back(sample.value_ns);
    thread.total += sample.value_ns;
  }

  const char* mode = profile.mode == Mode::kWall ? "wall" : "cpu";
  nlohmann::json profiles = nlohmann::json::array();
  size_t active = 0;
  uint64_t heaviest = 0;
  for (auto& [tid, thread] : threads) {
    if (thread.total > heaviest) {
      heaviest = thread.total;
      active = profiles.size();
    }
    profiles.push_back({{"type", "sampled"},
                        {"name", thread.title},
                        {"unit", "nanoseconds"},
                        {"startValue", 0},
                        {"endValue", thread.total},
                        {"samples", std::move(thread.samples)},
                        {"weights", std::move(thread.weights)}});
  }

  return {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
          {"shared", {{"frames", std::move(frames)}}},
          {"profiles", std::move(profiles)},
          {"name", options.name.empty() ? fmt::format("cppops {} profile of {}", mode, profile.pid) : options.name},
          {"activeProfileIndex", active},
          {"exporter", std::string("cppops ") + kCliVersion}};
}

}  // namespace cppops::profile
