// A hostile neighbourhood for the capture handler: threads created and ended at a high rate, a dlopen/dlclose
// loop (ld.so's lock), C++ exceptions thrown and caught (the unwinder), and malloc-heavy threads (the
// allocator's locks). Dumps taken while all of this runs must never hang or crash it.
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

__attribute__((noinline)) void shortLived(int n) {
  volatile int sum = 0;
  for (int i = 0; i < n; ++i) sum = sum + i;
}

[[noreturn]] void churnThreads() {
  for (unsigned i = 0;; ++i) {
    std::thread t(shortLived, static_cast<int>(i % 1000));
    t.join();
  }
}

[[noreturn]] void churnLibraries() {
  for (;;) {
    // libm is not linked by this program, so each dlopen really maps and each dlclose really unmaps it.
    if (void* h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL)) dlclose(h);
  }
}

__attribute__((noinline)) void throwDeep(int depth) {
  if (depth == 0) throw std::runtime_error("churn");
  throwDeep(depth - 1);
}

[[noreturn]] void churnExceptions() {
  for (;;) {
    try {
      throwDeep(8);
    } catch (const std::exception&) {
    }
  }
}

[[noreturn]] void churnMalloc() {
  std::vector<void*> blocks(256, nullptr);
  for (unsigned i = 0;; ++i) {
    void*& b = blocks[i % blocks.size()];
    std::free(b);
    b = std::malloc(16 + (i * 7919) % 8192);
  }
}

}  // namespace

int main() {
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back(churnThreads);
  threads.emplace_back(churnLibraries);
  threads.emplace_back(churnExceptions);
  for (int i = 0; i < 2; ++i) threads.emplace_back(churnMalloc);
  std::printf("ready\n");
  std::fflush(stdout);
  for (auto& t : threads) t.join();
}
