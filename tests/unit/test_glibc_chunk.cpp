// The heap sampler reads a block's usable size from glibc's chunk header (agent/heap/glibc_chunk.h) and puts a
// sampled block's tag in its last usable word: it must agree with glibc's own malloc_usable_size for every kind of
// block glibc hands out. Sanitizer runtimes replace glibc's malloc, so this runs in the plain tree only.
#include <malloc.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "heap/glibc_chunk.h"
#include "heap/sampler.h"

using cppops::agent::heap::sampleAlignment;

TEST_CASE("heap sampler: samples are aligned to what the allocator's routes take, at most 1/64 of the rate, at least 16") {
  // Behind another allocator than glibc: a page at the default rate, 1/64 of lower rates.
  CHECK(sampleAlignment(512 * 1024, 4096) == 4096);
  CHECK(sampleAlignment(uint64_t{1} << 30, 4096) == 4096);
  CHECK(sampleAlignment(262144, 4096) == 4096);
  CHECK(sampleAlignment(262143, 4096) == 2048);
  CHECK(sampleAlignment(65536, 4096) == 1024);
  CHECK(sampleAlignment(4096, 4096) == 64);
  CHECK(sampleAlignment(1024, 4096) == 16);
  CHECK(sampleAlignment(1, 4096) == 16);
  // Behind glibc: its own 16 at every rate.
  CHECK(sampleAlignment(512 * 1024, 16) == 16);
  CHECK(sampleAlignment(1, 16) == 16);
  CHECK(sampleAlignment(512 * 1024, 0) == 16);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)

using cppops::agent::heap::glibcUsableSize;

TEST_CASE("glibc chunks: the usable size read from the header is malloc_usable_size's for heap and mapped blocks") {
  // glibc raises its mmap threshold as mapped blocks are freed: tests run before this one in the same process would
  // have left it anywhere up to 32 MiB. Fixed at its default, 128 KiB.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  std::vector<void*> blocks;
  // Every small size, then sizes either side of the mmap threshold up to 4 MiB.
  for (size_t n = 0; n <= 2048; ++n) blocks.push_back(malloc(n));
  for (size_t n = 4096; n <= 4u << 20; n = n * 5 / 4 + 8) blocks.push_back(malloc(n));
  for (size_t n = 0; n <= 300; n += 7) blocks.push_back(calloc(1, n));
  for (size_t alignment = 16; alignment <= 65536; alignment *= 2)
    for (size_t n : {size_t{1}, size_t{100}, size_t{5000}, size_t{200000}}) {
      void* p = nullptr;
      REQUIRE(posix_memalign(&p, alignment, n) == 0);
      blocks.push_back(p);
    }
  size_t mapped = 0;
  for (void* p : blocks) {
    REQUIRE(p != nullptr);
    INFO("block of " << malloc_usable_size(p) << " usable bytes");
    CHECK(glibcUsableSize(p) == malloc_usable_size(p));
    mapped += (static_cast<const uint64_t*>(p)[-1] & 2) != 0;
  }
  CHECK(mapped > 10);  // the mapped chunks' rule was exercised too
  for (void* p : blocks) free(p);
}

#endif
