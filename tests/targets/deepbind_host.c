/* Hands blocks it allocates to a plugin opened with RTLD_NOW | RTLD_DEEPBIND, which frees and reallocates them
   with the C library's own entry points, and frees blocks the plugin allocated. An allocation interposer that gave
   the program pointers other than the allocator's own would crash it. Knows nothing of cppops.
   Usage: deepbind_host PLUGIN [hold]: with "hold", after the rounds it keeps 64 blocks from keepBlocks, prints
   "ready" and sleeps until a signal ends it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kBlocks = 512, kRounds = 40 };

static size_t sizeOf(unsigned i) { return 16 + (i * 97) % 4000; }

static int filledWith(const unsigned char* p, size_t n, unsigned char value) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != value) return 0;
  return 1;
}

__attribute__((noinline)) static void keepBlocks(void** kept, unsigned count) {
  for (unsigned i = 0; i < count; ++i) {
    kept[i] = malloc(64 * 1024);
    if (kept[i] != NULL) memset(kept[i], 1, 64 * 1024);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: deepbind_host PLUGIN [hold]\n");
    return 2;
  }
  void* plugin = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
  if (plugin == NULL) {
    fprintf(stderr, "deepbind_host: %s\n", dlerror());
    return 1;
  }
  /* POSIX's way to turn dlsym's answer into a function pointer, which ISO C does not allow by a cast. */
  void (*release)(void*);
  void* (*resize)(void*, size_t);
  void* (*allocate)(size_t);
  *(void**)&release = dlsym(plugin, "plugin_release");
  *(void**)&resize = dlsym(plugin, "plugin_resize");
  *(void**)&allocate = dlsym(plugin, "plugin_allocate");
  if (release == NULL || resize == NULL || allocate == NULL) {
    fprintf(stderr, "deepbind_host: the plugin lacks an entry point\n");
    return 1;
  }
  static unsigned char* blocks[kBlocks];
  unsigned long checked = 0, bad = 0;
  for (unsigned round = 0; round < kRounds; ++round) {
    for (unsigned i = 0; i < kBlocks; ++i) {
      const size_t n = sizeOf(i + round);
      switch (i % 3) {
        case 0: blocks[i] = malloc(n); break;
        case 1: blocks[i] = calloc(1, n); break;
        default: blocks[i] = aligned_alloc(64, (n + 63) / 64 * 64); break;
      }
      if (blocks[i] == NULL) return 1;
      /* All that malloc_usable_size promises is the program's, even where the plugin freed a block before. */
      const size_t usable = malloc_usable_size(blocks[i]);
      bad += usable < n;
      memset(blocks[i], (int)(i & 0xff), usable);
    }
    /* The plugin frees a quarter, grows a quarter and hands back blocks of its own for another quarter; the program
       frees the rest, and everything the plugin gave it. */
    for (unsigned i = 0; i < kBlocks; ++i) {
      const size_t n = sizeOf(i + round);
      if (i % 4 == 0) {
        release(blocks[i]);
      } else if (i % 4 == 1) {
        unsigned char* grown = resize(blocks[i], 2 * n);
        if (grown == NULL) return 1;
        bad += !filledWith(grown, n, (unsigned char)(i & 0xff));
        ++checked;
        free(grown);
      } else if (i % 4 == 2) {
        free(blocks[i]);
        unsigned char* theirs = allocate(n);
        if (theirs == NULL) return 1;
        bad += !filledWith(theirs, n, 0x5a);
        ++checked;
        free(theirs);
      } else {
        bad += !filledWith(blocks[i], n, (unsigned char)(i & 0xff));
        ++checked;
        free(blocks[i]);
      }
    }
  }
  printf("deepbind: %u rounds, %lu blocks checked, %lu bad\n", (unsigned)kRounds, checked, bad);
  if (argc > 2 && strcmp(argv[2], "hold") == 0) {
    static void* kept[64];
    keepBlocks(kept, 64);
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
  }
  return bad == 0 ? 0 : 1;
}
