#include "proc/maps.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "proc/process.h"

namespace cppops::proc {

std::vector<Mapping> readMaps(pid_t pid) {
  std::vector<Mapping> maps;
  // A thousand-thread process has a few thousand lines (a stack and a guard page per thread).
  auto text = readFile("/proc/" + std::to_string(pid) + "/maps", size_t{64} << 20);
  if (!text) return maps;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    // start-end perms offset dev inode [path]
    unsigned long long start = 0, end = 0, offset = 0;
    char perms[5] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %4s %llx %*s %*s %n", &start, &end, perms, &offset, &path_at) < 4)
      continue;
    Mapping mapping;
    mapping.start = start;
    mapping.end = end;
    mapping.offset = offset;
    mapping.writable = perms[1] == 'w';
    mapping.executable = perms[2] == 'x';
    if (path_at > 0 && static_cast<size_t>(path_at) < line.size()) mapping.path = line.substr(path_at);
    maps.push_back(std::move(mapping));
  }
  return maps;
}

const Mapping* findMapping(const std::vector<Mapping>& maps, uint64_t address) {
  auto after = std::upper_bound(maps.begin(), maps.end(), address,
                                [](uint64_t a, const Mapping& m) { return a < m.start; });
  if (after == maps.begin()) return nullptr;
  const Mapping& candidate = *(after - 1);
  return address < candidate.end ? &candidate : nullptr;
}

}  // namespace cppops::proc
