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

}  // namespace cppops::profile
