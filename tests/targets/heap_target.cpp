// A program that knows nothing of cppops and allocates from known sites, for `cppops heap`, `cppops gc` and the
// heap profiler's tests. Modes:
//   sites  on SIGUSR1, keeps 64 MiB from keepLarge() and 16 MiB from keepSmall() (16 KiB blocks, as new[]) and
//          churns 32 MiB through churn() (malloc, free at once); prints "allocated"
//   leak   leaks 64 KiB from leakSteadily() every 5 ms and churns 64 KiB through churn() in between
//   gc     allocates 128 MiB in 4 KiB blocks, frees all but the last, prints "freed": memory the allocator holds
//          free, which only a trim gives back
//   sized  allocates 32768 blocks of 16 to 256 B (sizes of jemalloc's small classes, no slack) and frees each with
//          its allocator's sized free: jemalloc's sdallocx(p, size, 0), as folly does, or tcmalloc's
//          tc_free_sized(p, size) (plain free with glibc); then allocates them again, fills each with its own byte
//          and checks that none was overwritten: prints "sized: N blocks, M overwritten"
//   hold N [STACKS]
//          allocates N blocks of 4 KiB in holdNested() and keeps them, from STACKS distinct stacks (default 1,
//          at most 200): through holdVia<0> to holdVia<3>, then holdNested() 0 to 49 calls deep; on SIGUSR1 frees
//          the first 64 of them and prints "freed 64"
//   mapped  large blocks that the allocator maps on its own, none of them ever written: 8 of 64 MiB from calloc in
//          callocUntouched(), and one of 32 MiB from malloc grown to 64 MiB by realloc in growUntouched(); on
//          SIGUSR1 frees them all and prints "freed mapped"
// Prints "ready" when set up. Exits on SIGTERM.
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

volatile sig_atomic_t g_go = 0;
volatile sig_atomic_t g_stop = 0;
constexpr size_t kBlock = 16 * 1024;

std::vector<char*>& kept() {
  static std::vector<char*> blocks;
  return blocks;
}

// Each site is its own function that the compiler may not fold or inline, so stacks name it.
__attribute__((noinline)) void keepLarge() {
  for (size_t i = 0; i < (64u << 20) / kBlock; ++i) {
    char* p = new char[kBlock];
    std::memset(p, 1, kBlock);
    kept().push_back(p);
  }
}

__attribute__((noinline)) void keepSmall() {
  for (size_t i = 0; i < (16u << 20) / kBlock; ++i) {
    char* p = new char[kBlock];
    std::memset(p, 2, kBlock);
    kept().push_back(p);
  }
}

__attribute__((noinline)) void churn(size_t bytes) {
  for (size_t done = 0; done < bytes; done += 1024) {
    void* p = std::malloc(1024);
    static_cast<volatile char*>(p)[0] = 3;
    std::free(p);
  }
}

__attribute__((noinline)) void leakSteadily() {
  char* p = static_cast<char*>(std::malloc(64 * 1024));
  std::memset(p, 4, 64 * 1024);
  kept().push_back(p);
}

__attribute__((noinline)) void allocateAndFreeMost() {
  std::vector<void*> blocks;
  blocks.reserve((128u << 20) / 4096);
  for (size_t i = 0; i < (128u << 20) / 4096; ++i) {
    void* p = std::malloc(4096);
    std::memset(p, 5, 4096);
    blocks.push_back(p);
  }
  for (size_t i = 0; i + 1 < blocks.size(); ++i) std::free(blocks[i]);
  kept().push_back(static_cast<char*>(blocks.back()));
}

__attribute__((noinline)) size_t allocateAndFreeSized() {
  using Sdallocx = void (*)(void*, size_t, int);
  using FreeSized = void (*)(void*, size_t);
  auto sdallocx = dlsym(RTLD_DEFAULT, "mallctl") != nullptr
                      ? reinterpret_cast<Sdallocx>(dlsym(RTLD_DEFAULT, "sdallocx")) : nullptr;
  auto tc_free_sized = dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty") != nullptr
                           ? reinterpret_cast<FreeSized>(dlsym(RTLD_DEFAULT, "tc_free_sized")) : nullptr;
  constexpr size_t kBlocks = 32768;
  auto sizeOf = [](size_t i) { return 16 * (1 + i % 16); };
  std::vector<unsigned char*> blocks(kBlocks);
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks[i] = static_cast<unsigned char*>(std::malloc(sizeOf(i)));
    std::memset(blocks[i], 1, sizeOf(i));
  }
  for (size_t i = 0; i < kBlocks; ++i) {
    if (sdallocx != nullptr)
      sdallocx(blocks[i], sizeOf(i), 0);
    else if (tc_free_sized != nullptr)
      tc_free_sized(blocks[i], sizeOf(i));
    else
      std::free(blocks[i]);
  }
  // A block freed into the wrong size class would be handed out twice, or overlap another.
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks[i] = static_cast<unsigned char*>(std::malloc(sizeOf(i)));
    std::memset(blocks[i], static_cast<int>(i % 251), sizeOf(i));
  }
  size_t overwritten = 0;
  for (size_t i = 0; i < kBlocks; ++i) {
    for (size_t k = 0; k < sizeOf(i); ++k)
      if (blocks[i][k] != i % 251) {
        ++overwritten;
        break;
      }
    std::free(blocks[i]);
  }
  std::printf("sized: %zu blocks, %zu overwritten\n", kBlocks, overwritten);
  return overwritten;
}

std::vector<void*>& held() {
  static std::vector<void*> blocks;
  return blocks;
}

__attribute__((noinline)) void callocUntouched() {
  for (int i = 0; i < 8; ++i) held().push_back(std::calloc(1, 64u << 20));
}

__attribute__((noinline)) void growUntouched() {
  void* p = std::malloc(32u << 20);
  void* grown = std::realloc(p, 64u << 20);
  held().push_back(grown != nullptr ? grown : p);
}

__attribute__((noinline)) void* holdNested(size_t depth) {
  void* p = depth == 0 ? std::malloc(4096) : holdNested(depth - 1);
  asm volatile("" ::: "memory");  // no tail call: each level keeps its frame
  return p;
}

template <int kVia>
__attribute__((noinline)) void* holdVia(size_t depth) {
  void* p = holdNested(depth);
  asm volatile("" ::"r"(kVia) : "memory");
  return p;
}

__attribute__((noinline)) void holdBlocks(size_t count, size_t stacks) {
  constexpr size_t kDepths = 50;
  void* (*const vias[])(size_t) = {holdVia<0>, holdVia<1>, holdVia<2>, holdVia<3>};
  for (size_t i = 0; i < count; ++i) {
    const size_t stack = i % std::min(stacks, kDepths * 4);
    held().push_back(vias[stack / kDepths](stack % kDepths));
  }
}

void say(const char* text) {
  std::printf("%s\n", text);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "sites";
  signal(SIGUSR1, [](int) { g_go = 1; });
  signal(SIGTERM, [](int) { g_stop = 1; });
  kept().reserve(1 << 16);
  if (std::strcmp(mode, "gc") == 0) {
    allocateAndFreeMost();
    say("freed");
  }
  if (std::strcmp(mode, "sized") == 0) allocateAndFreeSized();
  const bool hold = std::strcmp(mode, "hold") == 0 && argc > 2;
  if (hold) {
    const size_t count = std::strtoul(argv[2], nullptr, 10);
    held().reserve(count);
    holdBlocks(count, argc > 3 ? std::max(1ul, std::strtoul(argv[3], nullptr, 10)) : 1);
  }
  const bool mapped = std::strcmp(mode, "mapped") == 0;
  if (mapped) {
    callocUntouched();
    growUntouched();
  }
  say("ready");
  while (g_stop == 0) {
    if (std::strcmp(mode, "sites") == 0 && g_go != 0) {
      g_go = 0;
      keepLarge();
      keepSmall();
      churn(32u << 20);
      say("allocated");
    }
    if (hold && g_go != 0) {
      g_go = 0;
      for (size_t i = 0; i < 64 && i < held().size(); ++i) std::free(held()[i]);
      say("freed 64");
    }
    if (mapped && g_go != 0) {
      g_go = 0;
      for (void* p : held()) std::free(p);
      held().clear();
      say("freed mapped");
    }
    if (std::strcmp(mode, "leak") == 0) {
      leakSteadily();
      churn(64 * 1024);
    }
    // Only "leak" has work between signals. The other modes sleep long, so the main thread is almost never
    // caught running: `cppops heap` can only locate the stack of a thread asleep in a system call. A signal ends
    // the sleep early (nanosleep is not restarted after a handler).
    usleep(std::strcmp(mode, "leak") == 0 ? 5000 : 1000000);
  }
  return 0;
}
