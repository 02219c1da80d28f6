// lib/heap/memory: smaps_rollup, smaps, malloc_info(3) and the allocator summaries, from exact texts in the
// kernel's and glibc's formats and from this very process's /proc and malloc_info.
#include <malloc.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "heap/memory.h"
#include "proc/process.h"

using namespace cppops;

namespace {

constexpr const char* kRollup =
    "55d0c0a00000-7ffc3a1f1000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:                3000 kB\n"
    "Pss:                2500 kB\n"
    "Pss_Anon:           2000 kB\n"
    "Pss_File:            500 kB\n"
    "Pss_Shmem:             0 kB\n"
    "Shared_Clean:        800 kB\n"
    "Shared_Dirty:        200 kB\n"
    "Private_Clean:       300 kB\n"
    "Private_Dirty:      1700 kB\n"
    "Referenced:         3000 kB\n"
    "Anonymous:          2000 kB\n"
    "LazyFree:              0 kB\n"
    "AnonHugePages:         0 kB\n"
    "Swap:                 64 kB\n"
    "SwapPss:              64 kB\n"
    "Locked:                0 kB\n";

constexpr const char* kSmaps =
    "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n"
    "Size:                132 kB\n"
    "Rss:                 120 kB\n"
    "Anonymous:           120 kB\n"
    "Swap:                  0 kB\n"
    "VmFlags: rd wr mr mw me ac sd\n"
    "7f0000000000-7f0000801000 rw-p 00000000 00:00 0 \n"
    "Size:               8196 kB\n"
    "Rss:                  16 kB\n"
    "Anonymous:            16 kB\n"
    "Swap:                  8 kB\n"
    "VmFlags: rd wr mr mw me ac sd\n"
    "7f1000000000-7f1000200000 r-xp 00001000 08:01 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "Size:               2048 kB\n"
    "Rss:                1024 kB\n"
    "Anonymous:             0 kB\n"
    "Swap:                  0 kB\n"
    "VmFlags: rd ex mr mw me sd\n"
    "7ffc3a1d0000-7ffc3a1f1000 rw-p 00000000 00:00 0                          [stack]\n"
    "Size:                132 kB\n"
    "Rss:                  24 kB\n"
    "Anonymous:            24 kB\n"
    "Swap:                  0 kB\n"
    "VmFlags: rd wr mr mw me gd ac\n";

// glibc 2.36's malloc_info(0, f), two arenas, trimmed to what the parser reads and some of what it must skip.
constexpr const char* kMallocInfo =
    "<malloc version=\"1\">\n"
    "<heap nr=\"0\">\n"
    "<sizes>\n"
    "  <size from=\"17\" to=\"32\" total=\"64\" count=\"2\"/>\n"
    "  <unsorted from=\"135168\" to=\"135168\" total=\"135168\" count=\"1\"/>\n"
    "</sizes>\n"
    "<total type=\"fast\" count=\"2\" size=\"64\"/>\n"
    "<total type=\"rest\" count=\"5\" size=\"134217728\"/>\n"
    "<system type=\"current\" size=\"135065600\"/>\n"
    "<system type=\"max\" size=\"140000000\"/>\n"
    "<aspace type=\"total\" size=\"135065600\"/>\n"
    "<aspace type=\"mprotect\" size=\"135065600\"/>\n"
    "</heap>\n"
    "<heap nr=\"1\">\n"
    "<sizes>\n"
    "</sizes>\n"
    "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
    "<total type=\"rest\" count=\"1\" size=\"121232\"/>\n"
    "<system type=\"current\" size=\"135168\"/>\n"
    "<system type=\"max\" size=\"135168\"/>\n"
    "<aspace type=\"total\" size=\"135168\"/>\n"
    "<aspace type=\"mprotect\" size=\"135168\"/>\n"
    "<aspace type=\"subheaps\" size=\"1\"/>\n"
    "</heap>\n"
    "<total type=\"fast\" count=\"2\" size=\"64\"/>\n"
    "<total type=\"rest\" count=\"6\" size=\"134338960\"/>\n"
    "<total type=\"mmap\" count=\"1\" size=\"528384\"/>\n"
    "<system type=\"current\" size=\"135200768\"/>\n"
    "<system type=\"max\" size=\"140135168\"/>\n"
    "<aspace type=\"total\" size=\"135200768\"/>\n"
    "<aspace type=\"mprotect\" size=\"135200768\"/>\n"
    "</malloc>\n";

}  // namespace

TEST_CASE("smaps_rollup: RSS split into anonymous and file-backed, shared and private, and swap", "[heap]") {
  heap::KernelMemory k = heap::parseSmapsRollup(kRollup);
  CHECK(k.rss == 3000 * 1024);
  CHECK(k.pss == 2500 * 1024);
  CHECK(k.anonymous == 2000 * 1024);
  CHECK(k.file == 1000 * 1024);
  CHECK(k.shared == 1000 * 1024);
  CHECK(k.private_ == 2000 * 1024);
  CHECK(k.swap == 64 * 1024);
  // SwapPss must not be read as Swap, Pss_Anon not as Pss.
  CHECK(heap::parseSmapsRollup("SwapPss: 5 kB\nPss_Anon: 7 kB\n").swap == 0);
  CHECK(heap::parseSmapsRollup("SwapPss: 5 kB\nPss_Anon: 7 kB\n").pss == 0);
}

TEST_CASE("smaps: mappings, the largest by resident memory, and the ones holding thread stacks", "[heap]") {
  std::vector<heap::Mapping> maps = heap::parseSmaps(kSmaps);
  REQUIRE(maps.size() == 4);
  CHECK(maps[0].path == "[heap]");
  CHECK(maps[0].start == 0x55d0c0a00000);
  CHECK(maps[0].size() == 132 * 1024);
  CHECK(maps[0].rss == 120 * 1024);
  CHECK(maps[1].path.empty());
  CHECK(maps[1].swap == 8 * 1024);
  CHECK(maps[2].path == "/usr/lib/x86_64-linux-gnu/libc.so.6");
  CHECK(maps[2].perms == "r-xp");
  CHECK(maps[3].path == "[stack]");

  std::vector<heap::Mapping> largest = heap::largestMappings(maps, 2);
  REQUIRE(largest.size() == 2);
  CHECK(largest[0].path == "/usr/lib/x86_64-linux-gnu/libc.so.6");
  CHECK(largest[1].path == "[heap]");

  // Two threads in the anonymous 8 MiB mapping (a thread stack and its guard are one mapping here), one on
  // [stack], one running (sp 0), one pointing nowhere mapped.
  heap::ThreadStacks stacks = heap::threadStacks(
      maps, {{1, 0x7ffc3a1e0000}, {2, 0x7f0000800000}, {3, 0x7f0000000010}, {4, 0}, {5, 0x10}});
  CHECK(stacks.threads == 5);
  CHECK(stacks.located == 3);
  CHECK(stacks.mappings == 2);
  CHECK(stacks.size == (8196 + 132) * 1024);
  CHECK(stacks.rss == (16 + 24) * 1024);
}

TEST_CASE("smaps of this process: the stack holding a local is [stack], and the mappings add up to the rollup", "[heap]") {
  auto smaps = proc::readFile("/proc/self/smaps");
  REQUIRE(smaps);
  std::vector<heap::Mapping> maps = heap::parseSmaps(*smaps);
  REQUIRE(maps.size() > 5);
  int local = 0;
  heap::ThreadStacks stacks = heap::threadStacks(maps, {{1, reinterpret_cast<uintptr_t>(&local)}});
  CHECK(stacks.located == 1);
  for (const heap::Mapping& m : maps)
    if (reinterpret_cast<uintptr_t>(&local) >= m.start && reinterpret_cast<uintptr_t>(&local) < m.end)
      CHECK(m.path == "[stack]");
  for (size_t i = 1; i < maps.size(); ++i) CHECK(maps[i - 1].end <= maps[i].start);
}

TEST_CASE("malloc_info: each arena's system memory and free chunks", "[heap]") {
  std::vector<heap::Arena> arenas = heap::parseMallocInfo(kMallocInfo);
  REQUIRE(arenas.size() == 2);
  CHECK(arenas[0].number == 0);
  CHECK(arenas[0].system == 135065600);
  CHECK(arenas[0].system_max == 140000000);
  CHECK(arenas[0].address_space == 135065600);
  CHECK(arenas[0].fast_free == 64);
  CHECK(arenas[0].fast_free_chunks == 2);
  CHECK(arenas[0].rest_free == 134217728);
  CHECK(arenas[0].rest_free_chunks == 5);
  CHECK(arenas[1].number == 1);
  CHECK(arenas[1].system == 135168);
  CHECK(arenas[1].rest_free == 121232);
  CHECK(heap::parseMallocInfo("").empty());
  CHECK(heap::parseMallocInfo("<malloc version=\"1\">\n<heap nr=\"0\">\n").empty());  // cut short
}

TEST_CASE("malloc_info of this process: glibc's own XML parses, arena 0 first", "[heap]") {
  char* text = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  REQUIRE(stream != nullptr);
  REQUIRE(malloc_info(0, stream) == 0);
  std::fclose(stream);
  std::string xml(text, size);
  std::free(text);
  std::vector<heap::Arena> arenas = heap::parseMallocInfo(xml);
  REQUIRE_FALSE(arenas.empty());
  CHECK(arenas[0].number == 0);
  CHECK(arenas[0].system <= arenas[0].system_max);
  // Under a sanitizer the sanitizer's allocator serves malloc, and glibc's arena stays empty.
  if (std::string(CPPOPS_TEST_SANITIZE).empty()) CHECK(arenas[0].system > 0);
}

TEST_CASE("allocator summaries: in use and free from each allocator's own figures", "[heap]") {
  heap::AllocatorSummary glibc =
      heap::summarize("glibc", {{"uordblks", 1000}, {"hblkhd", 500}, {"fordblks", 300}, {"arena", 1300}});
  CHECK(glibc.in_use == 1500);
  CHECK(glibc.free == 300);
  heap::AllocatorSummary jemalloc = heap::summarize(
      "jemalloc", {{"stats.allocated", 1000}, {"stats.resident", 5000}, {"stats.metadata", 400}});
  CHECK(jemalloc.in_use == 1000);
  CHECK(jemalloc.free == 3600);
  CHECK(heap::summarize("jemalloc", {{"stats.allocated", 1000}, {"stats.resident", 900}}).free == 0);
  heap::AllocatorSummary tcmalloc =
      heap::summarize("tcmalloc", {{"generic.current_allocated_bytes", 700},
                                   {"tcmalloc.pageheap_free_bytes", 100},
                                   {"tcmalloc.central_cache_free_bytes", 20},
                                   {"tcmalloc.transfer_cache_free_bytes", 3},
                                   {"tcmalloc.thread_cache_free_bytes", 4},
                                   {"tcmalloc.pageheap_unmapped_bytes", 5000}});
  CHECK(tcmalloc.in_use == 700);
  CHECK(tcmalloc.free == 127);
  CHECK(heap::summarize("unknown", {{"x", 1}}).in_use == 0);
}
