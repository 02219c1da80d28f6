#include "metrics/allocator_figures.h"

#include <malloc.h>

namespace cppops::agent::metrics {

void readAllocatorFigures(protocol::MetricsReply& reply) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = mallinfo2();
  reply.allocator_known = 1;
  reply.heap_arena_bytes = info.arena;
  reply.heap_mmap_bytes = info.hblkhd;
  reply.heap_in_use_bytes = info.uordblks + info.hblkhd;
  reply.heap_free_bytes = info.fordblks;
#else
  reply.allocator_known = 0;
#endif
}

}  // namespace cppops::agent::metrics
