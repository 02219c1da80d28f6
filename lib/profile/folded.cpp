#include "profile/folded.h"

#include <cstdint>
#include <map>

#include "profile/names.h"

namespace cppops::profile {
namespace {

std::string foldable(std::string name) {
  for (char& c : name)
    if (c == ';' || c == '\n' || c == '\r') c = '_';
  return name;
}

}  // namespace

std::string encodeFolded(const Profile& profile, const FoldedOptions& options) {
  // Samples that differ only in labels fold into one line.
  std::map<std::string, uint64_t> stacks;
  for (const Sample& sample : profile.samples) {
    std::string line;
    if (options.thread_root) line = foldable(threadTitle(sample));
    for (const std::string& name : stackNames(profile, sample)) {
      if (!line.empty()) line += ';';
      line += foldable(name);
    }
    stacks[line] += sample.count;
  }
  std::string out;
  for (const auto& [stack, count] : stacks) {
    if (count == 0) continue;
    out += stack;
    out += ' ';
    out += std::to_string(count);
    out += '\n';
  }
  return out;
}

}  // namespace cppops::profile
