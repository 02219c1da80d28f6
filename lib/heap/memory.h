// What the HEAP and GC replies' raw texts mean: smaps_rollup's totals, smaps' mappings (the largest, and those
// holding thread stacks), glibc's malloc_info(3) arenas, and one in-use / free figure per allocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace cppops::heap {

// The kernel's view of the whole process (smaps_rollup, in bytes). The split is the kernel's: anonymous +
// file-backed = rss; shared + private = rss (a page is shared when another process maps it too).
struct KernelMemory {
  uint64_t rss = 0;
  uint64_t pss = 0;
  uint64_t anonymous = 0;
  uint64_t file = 0;       // rss - anonymous: file-backed pages (shared memory included)
  uint64_t shared = 0;     // Shared_Clean + Shared_Dirty
  uint64_t private_ = 0;   // Private_Clean + Private_Dirty
  uint64_t swap = 0;
};

KernelMemory parseSmapsRollup(const std::string& text);

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  std::string perms;
  std::string path;        // "" for anonymous memory; "[heap]", "[stack]" as the kernel names them
  uint64_t rss = 0;
  uint64_t anonymous = 0;
  uint64_t swap = 0;
  uint64_t size() const { return end - start; }
};

// Every mapping of /proc/PID/smaps, in address order.
std::vector<Mapping> parseSmaps(const std::string& text);

// The `count` mappings with the most resident memory (then the largest), largest first.
std::vector<Mapping> largestMappings(const std::vector<Mapping>& mappings, size_t count);

struct ThreadStacks {
  size_t threads = 0;   // threads in the process
  size_t located = 0;   // threads whose stack pointer the kernel gave (a running thread has none to give)
  size_t mappings = 0;  // distinct mappings holding those stacks
  uint64_t size = 0;    // their size
  uint64_t rss = 0;     // their resident memory
};

// The mappings that hold the threads' stack pointers, added up once each.
ThreadStacks threadStacks(const std::vector<Mapping>& mappings,
                          const std::vector<protocol::ThreadStackPointer>& pointers);

// One glibc arena from malloc_info(3); sizes in bytes.
struct Arena {
  int number = 0;
  uint64_t system = 0;         // memory the arena got from the system and still holds
  uint64_t system_max = 0;
  uint64_t address_space = 0;
  uint64_t fast_free = 0;      // free chunks in fastbins
  uint64_t fast_free_chunks = 0;
  uint64_t rest_free = 0;      // free chunks in the other bins
  uint64_t rest_free_chunks = 0;
};

std::vector<Arena> parseMallocInfo(const std::string& xml);

// What the allocator uses for the program and what it holds free, from its own figures; both 0 when the
// allocator is unknown.
struct AllocatorSummary {
  uint64_t in_use = 0;
  uint64_t free = 0;
};

AllocatorSummary summarize(const std::string& allocator, const std::vector<protocol::AllocatorFigure>& figures);

std::map<std::string, uint64_t> figureMap(const std::vector<protocol::AllocatorFigure>& figures);

}  // namespace cppops::heap
