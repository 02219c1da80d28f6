// Every allocation entry point under stress, for the heap profiler's interposition: run with and without the
// agent preloaded (and with sampling at every byte, every 4 KiB, off) and the output must be the same. Knows
// nothing of cppops. Modes:
//   work        threads that allocate through every entry point, check contents, alignment and usable size (and
//               fill all of it), realloc
//               (grow, shrink, to 0), exit and get replaced; fork from a threaded process (the child allocates
//               and exits); calloc and reallocarray overflow; operator new failures. Prints a line per check.
//   work-without-pvalloc
//               the same, with valloc where work calls pvalloc: jemalloc has no pvalloc, and frees the block that
//               glibc's then hands out as its own, with or without the agent (a crash)
//   forever     the threads' work in a loop until SIGTERM, then "ok" (for reading profiles while it runs).
//   doublefree  frees a block twice: the real allocator must catch it (SIGABRT).
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};
std::atomic<unsigned long> g_failures{0};
bool g_pvalloc = true;  // set before any thread starts

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    g_failures.fetch_add(1);
  }
}

bool aligned(const void* p, size_t alignment) { return reinterpret_cast<uintptr_t>(p) % alignment == 0; }

bool filledWith(const void* p, size_t n, unsigned char value) {
  auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (c[i] != value) return false;
  return true;
}

struct alignas(64) Wide {
  char bytes[64];
};

// One round of every entry point; the sizes come from a deterministic sequence so every run does the same.
void round(unsigned seed) {
  uint64_t x = seed * 2654435761u + 1;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::vector<std::pair<void*, size_t>> held;
  for (int i = 0; i < 200; ++i) {
    const size_t n = 1 + next() % (i % 10 == 0 ? 256 * 1024 : 2048);
    const auto fill = static_cast<unsigned char>(n);
    void* p = nullptr;
    switch (next() % 8) {
      case 0: p = std::malloc(n); break;
      case 1:
        p = std::calloc(n, 1);
        check(p != nullptr && filledWith(p, n, 0), "calloc returns zeroed memory");
        break;
      case 2: p = aligned_alloc(64, (n + 63) & ~size_t{63}); check(aligned(p, 64), "aligned_alloc aligns"); break;
      case 3: check(posix_memalign(&p, 256, n) == 0 && aligned(p, 256), "posix_memalign aligns"); break;
      case 4: p = memalign(128, n); check(aligned(p, 128), "memalign aligns"); break;
      case 5: p = valloc(n); check(aligned(p, 4096), "valloc aligns to a page"); break;
      case 6:
        p = g_pvalloc ? pvalloc(n) : valloc(n);
        check(aligned(p, 4096), "pvalloc or valloc aligns to a page");
        break;
      default: p = std::realloc(nullptr, n); break;
    }
    check(p != nullptr, "allocation succeeds");
    if (p == nullptr) continue;
    // All that malloc_usable_size promises is the program's, sampled block or not.
    const size_t usable = malloc_usable_size(p);
    check(usable >= n, "malloc_usable_size covers the block");
    std::memset(p, fill, usable);
    held.emplace_back(p, n);
  }
  // realloc of whatever came from where (aligned memory included): grow, shrink, keep the contents.
  for (auto& [p, n] : held) {
    const size_t grown = n + 1 + next() % 4096;
    void* q = std::realloc(p, grown);
    check(q != nullptr && filledWith(q, n, static_cast<unsigned char>(n)), "realloc keeps the contents when growing");
    std::memset(static_cast<char*>(q) + n, static_cast<unsigned char>(n), grown - n);
    const size_t shrunk = 1 + n / 2;
    void* r = reallocarray(q, shrunk, 1);
    check(r != nullptr && filledWith(r, shrunk, static_cast<unsigned char>(n)), "reallocarray keeps the contents");
    p = r;
    n = shrunk;
  }
  for (size_t i = 0; i < held.size(); ++i) {
    if (i % 3 == 0) check(std::realloc(held[i].first, 0) == nullptr, "realloc to 0 frees");
    else std::free(held[i].first);  // aligned memory through free, too
  }
  // Every operator new and delete.
  for (int i = 0; i < 50; ++i) {
    auto* one = new int(i);
    auto* many = new int[static_cast<size_t>(i) + 1];
    auto* wide = new Wide;
    auto* wides = new Wide[3];
    check(aligned(wide, 64) && aligned(wides, 64), "aligned new aligns");
    auto* quiet = new (std::nothrow) long[8];
    auto* quiet_wide = new (std::nothrow) Wide;
    void* raw = ::operator new(100, std::align_val_t{32});
    ::operator delete(raw, 100, std::align_val_t{32});
    delete quiet_wide;
    delete[] quiet;
    delete[] wides;
    delete wide;
    delete[] many;
    delete one;
    void* sized = ::operator new(48);
    ::operator delete(sized, 48);
  }
}

void worker(unsigned id, bool forever) {
  for (unsigned r = 0; forever ? !g_stop.load() : r < 20; ++r) round(id * 1000 + r);
}

void threads(bool forever) {
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < 4; ++i) pool.emplace_back(worker, i, forever);
  // Short-lived threads: their thread-local state must not outlive them.
  for (unsigned i = 0; i < 20 && !g_stop.load(); ++i) std::thread([i] { round(100000 + i); }).join();
  for (auto& t : pool) t.join();
}

void forkWhileThreaded() {
  std::atomic<bool> done{false};
  std::thread busy([&done] {
    for (unsigned r = 0; !done.load(); ++r) round(200000 + r % 7);
  });
  int ok_children = 0;
  for (int i = 0; i < 20; ++i) {
    // Allocated before the fork (sampled, when sampling is at every byte), reallocated and freed by the child,
    // where sampling is off.
    const size_t n = 1000 + static_cast<size_t>(i);
    void* inherited = std::malloc(n);
    std::memset(inherited, 0x5a, n);
    pid_t child = fork();
    if (child == 0) {
      check(filledWith(inherited, n, 0x5a), "the child sees its parent's block");
      void* grown = std::realloc(inherited, 4 * n);
      check(grown != nullptr && filledWith(grown, n, 0x5a), "the child reallocates its parent's block");
      std::free(grown);
      round(300000 + static_cast<unsigned>(i));
      _exit(g_failures.load() == 0 ? 0 : 1);
    }
    int status = 0;
    if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0) ++ok_children;
    std::free(inherited);
  }
  done = true;
  busy.join();
  std::printf("fork: %d of 20 children allocated and exited cleanly\n", ok_children);
}

void overflows() {
  // Through a volatile, so that the compiler cannot see (and refuse) the overflow.
  volatile size_t half = SIZE_MAX / 2;
  errno = 0;
  void* p = std::calloc(half, 4);
  std::printf("calloc overflow: %s, errno %s\n", p == nullptr ? "null" : "NOT NULL", errno == ENOMEM ? "ENOMEM" : "other");
  void* keep = std::malloc(32);
  std::memset(keep, 7, 32);
  errno = 0;
  void* volatile same_block = keep;  // GCC would take the failed reallocarray for a free of `keep`
  void* q = reallocarray(same_block, half, 4);
  std::printf("reallocarray overflow: %s, errno %s, block kept: %s\n", q == nullptr ? "null" : "NOT NULL",
              errno == ENOMEM ? "ENOMEM" : "other", filledWith(keep, 32, 7) ? "yes" : "no");
  std::free(keep);
  try {
    void* huge = ::operator new(half);
    std::printf("operator new of SIZE_MAX/2: returned %p\n", huge);
  } catch (const std::bad_alloc&) {
    std::printf("operator new of SIZE_MAX/2: bad_alloc\n");
  }
  std::printf("nothrow new of SIZE_MAX/2: %s\n", ::operator new(half, std::nothrow) == nullptr ? "null" : "NOT NULL");
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "work";
  if (std::strcmp(mode, "doublefree") == 0) {
    // Through a volatile, or the compiler removes the pair (and with it the bug).
    void* volatile p = std::malloc(64);
    std::free(p);
    std::free(p);
    std::printf("double free went unnoticed\n");
    return 0;
  }
  if (std::strcmp(mode, "forever") == 0) {
    signal(SIGTERM, [](int) { g_stop = true; });
    std::printf("ready\n");
    std::fflush(stdout);
    threads(true);
    std::printf("%s\n", g_failures.load() == 0 ? "ok" : "FAILED");
    return g_failures.load() == 0 ? 0 : 1;
  }
  g_pvalloc = std::strcmp(mode, "work-without-pvalloc") != 0;
  threads(false);
  std::printf("threads: %lu failures\n", g_failures.load());
  forkWhileThreaded();
  overflows();
  std::printf("%s\n", g_failures.load() == 0 ? "ok" : "FAILED");
  return g_failures.load() == 0 ? 0 : 1;
}
