/* A whole allocator, preloaded after the agent, that is not glibc's: each block has a mapping of its own, a first
   page that records the block, then the block, placed (4096 - A) bytes into the second page for an alignment A of
   32 to 4096, so that small blocks straddle a page boundary. free(), realloc() and malloc_usable_size() of anything
   but a block it returned abort, so an interposer that hands it a pointer of its own making is caught at once.
   Built a second time without malloc_usable_size (PAGE_EDGE_NO_USABLE_SIZE), which the heap sampler needs of an
   allocator other than glibc. Slow (a system call per allocation), for tests only. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { kPage = 4096, kMinAlignment = 32 };
static const uint64_t kMagic = 0x70616765656467eULL;

struct Record {
  uint64_t magic;
  uintptr_t block;
  size_t size;
  size_t length;
};

static void* place(size_t alignment, size_t n) {
  if (alignment < kMinAlignment) alignment = kMinAlignment;
  if (alignment > kPage || (alignment & (alignment - 1)) != 0 || n > SIZE_MAX / 2) {
    errno = alignment > kPage || (alignment & (alignment - 1)) != 0 ? EINVAL : ENOMEM;
    return NULL;
  }
  const size_t into = (kPage - alignment) % kPage;
  const size_t length = 2 * kPage + (into + n) / kPage * kPage; /* the record's page, and the block's */
  char* base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  struct Record* record = (struct Record*)base;
  record->magic = kMagic;
  record->block = (uintptr_t)(base + kPage + into);
  record->size = n;
  record->length = length;
  return (void*)record->block;
}

static struct Record* recordOf(void* p) {
  const uintptr_t address = (uintptr_t)p;
  struct Record* record = (struct Record*)((address & ~(uintptr_t)(kPage - 1)) - kPage);
  /* Every block starts in the second page of its mapping, so the first is always there to read. */
  if (record->magic != kMagic || record->block != address) {
    static const char message[] = "page_edge_malloc: a pointer it never returned\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    abort();
  }
  return record;
}

/* What the entry points call among themselves: never each other, which would bind to the agent's definitions. */
static void release(void* p) {
  if (p == NULL) return;
  struct Record* record = recordOf(p);
  munmap(record, record->length);
}

void* malloc(size_t n) { return place(kMinAlignment, n); }

void free(void* p) { release(p); }

void* calloc(size_t count, size_t size) {
  size_t n = 0;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return place(kMinAlignment, n); /* fresh anonymous memory is zeroed */
}

void* realloc(void* p, size_t n) {
  if (p == NULL) return place(kMinAlignment, n);
  if (n == 0) {
    release(p);
    return NULL;
  }
  void* q = place(kMinAlignment, n);
  if (q == NULL) return NULL;
  const size_t old = recordOf(p)->size;
  memcpy(q, p, old < n ? old : n);
  release(p);
  return q;
}

void* memalign(size_t alignment, size_t n) { return place(alignment, n); }
void* aligned_alloc(size_t alignment, size_t n) { return place(alignment, n); }
void* valloc(size_t n) { return place(kPage, n); }
void* pvalloc(size_t n) { return place(kPage, (n + kPage - 1) / kPage * kPage); }

int posix_memalign(void** out, size_t alignment, size_t n) {
  if (alignment % sizeof(void*) != 0) return EINVAL;
  void* p = place(alignment, n);
  if (p == NULL) return errno;
  *out = p;
  return 0;
}

#ifndef PAGE_EDGE_NO_USABLE_SIZE
size_t malloc_usable_size(void* p) { return p == NULL ? 0 : recordOf(p)->size; }
#endif
