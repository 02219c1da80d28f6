// /proc/PID/maps: what the process has mapped where, for code that reads its memory from outside.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cppops::proc {

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;  // one past the last byte
  uint64_t offset = 0;
  bool writable = false;
  bool executable = false;
  std::string path;  // "" for anonymous memory; "[stack]", "[vdso]"... for the kernel's
};

// Ascending by address; empty when the process is gone or we may not read its maps.
std::vector<Mapping> readMaps(pid_t pid);

// The mapping that contains `address`, or nullptr. `maps` ascending, as readMaps() returns them.
const Mapping* findMapping(const std::vector<Mapping>& maps, uint64_t address);

}  // namespace cppops::proc
