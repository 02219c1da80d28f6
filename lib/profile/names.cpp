#include "profile/names.h"

#include <fmt/format.h>

namespace cppops::profile {

std::string frameName(const Location& location) {
  if (!location.function.empty()) return location.function;
  if (location.module.empty()) return fmt::format("{:#x}", location.address);
  std::string_view module = location.module;
  size_t slash = module.rfind('/');
  if (slash != std::string_view::npos) module.remove_prefix(slash + 1);
  return fmt::format("{:#x} ({})", location.address, module);
}

std::vector<std::string> stackNames(const Profile& profile, const Sample& sample) {
  if (sample.locations.empty()) return {"[no stack]"};
  std::vector<std::string> names;
  names.reserve(sample.locations.size());
  for (auto it = sample.locations.rbegin(); it != sample.locations.rend(); ++it)
    names.push_back(frameName(profile.locations.at(*it)));
  return names;
}

std::string labelValue(const Sample& sample, std::string_view key) {
  for (const auto& [label_key, value] : sample.labels)
    if (label_key == key) return value;
  return "";
}

std::string threadTitle(const Sample& sample) {
  std::string name = labelValue(sample, kThreadNameLabel);
  std::string tid = labelValue(sample, kThreadIdLabel);
  if (!name.empty() && !tid.empty()) return name + " (" + tid + ")";
  if (!tid.empty()) return tid;
  if (!name.empty()) return name;
  return "[unknown thread]";
}

std::string formatDuration(uint64_t ns) {
  if (ns >= 1'000'000'000) return fmt::format("{:.2f}s", static_cast<double>(ns) / 1e9);
  if (ns >= 1'000'000) return fmt::format("{:.2f}ms", static_cast<double>(ns) / 1e6);
  if (ns >= 1'000) return fmt::format("{:.2f}us", static_cast<double>(ns) / 1e3);
  return fmt::format("{}ns", ns);
}

std::string formatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"kB", "MB", "GB", "TB"};
  if (bytes < 1024) return fmt::format("{}B", bytes);
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < sizeof kUnits / sizeof kUnits[0]) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.2f}{}", value, kUnits[unit]);
}

const char* heapValueName(HeapValue value) {
  switch (value) {
    case kAllocObjects: return "alloc_objects";
    case kAllocSpace: return "alloc_space";
    case kInuseObjects: return "inuse_objects";
    case kInuseSpace: return "inuse_space";
    case kHeapValues: break;
  }
  return "inuse_space";
}

std::string profileTypeName(const Profile& profile) {
  switch (profile.mode) {
    case Mode::kCpu: return "cpu";
    case Mode::kWall: return "wall";
    case Mode::kHeap: return heapValueName(profile.heap_shown);
  }
  return "cpu";
}

}  // namespace cppops::profile
