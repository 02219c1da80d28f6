// What the heap sampler reads of glibc's malloc: the usable size of a block, from its chunk header, in line where
// calling malloc_usable_size would cost a call and checks that free does again.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cppops::agent::heap {

// glibc keeps a chunk's size in the word before the pointer it hands out (malloc.c: mchunk_size), with three flag
// bits below it. The program may use the chunk less its 16-byte header, and, in a heap, the first word of the next
// chunk too (its prev_size, unused while this chunk is in use); a chunk that is a mapping of its own has no next
// chunk, and 8 bytes less (the flag's value, 2, shifted). This is what glibc's malloc_usable_size answers for a block in use. p is not null.
inline size_t glibcUsableSize(const void* p) {
  constexpr uint64_t kMmapped = 2;
  constexpr uint64_t kFlags = 7;
  const uint64_t size_field = static_cast<const uint64_t*>(p)[-1];
  return (size_field & ~kFlags) - 8 - ((size_field & kMmapped) << 2);
}

}  // namespace cppops::agent::heap
