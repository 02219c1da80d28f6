// A CPU-bound program that knows nothing of cppops: each burner thread spends three times as much CPU in
// hotFunction() as in coldFunction() (the same loop, 3n iterations against n), so a correct CPU profile shows
// them at 75% and 25%. A "sleeper" thread only sleeps: no CPU samples, but present in wall-clock profiles.
//
//   cpu_burner [--threads N] [--report-ms MS] [--cpu0 1] [--starved 1] [--late N] [--late-via pthread|libc]
//              [--relay 1]
//     --threads N     burner threads (default 2), named burner-0, burner-1, ...
//     --late N        on SIGUSR1, N more burners, named late-0, late-1, ...; prints "late" once they run
//     --late-via V    how they are started: pthread (the default), through pthread_create as the program binds it,
//                     or libc, through the C library's own, which an interposed pthread_create never sees (as a
//                     runtime that starts its threads with clone)
//     --relay 1       one more burner, "relay", that after 300 ms starts its successor and ends: the number of
//                     threads never changes, only which ones they are
//     --cpu0 1        every burner runs on CPU 0 only
//     --starved 1     as --cpu0, beside one more thread, "starved", that loops on CPU 0 under SCHED_IDLE: it gets
//                     the CPU for a few milliseconds a second, so a ptrace stop asked of it waits that long (no
//                     privilege needed, unlike a real-time thread that would starve it)
//     --report-ms MS  every MS milliseconds print "progress MONOTONIC_NS ROUNDS WORK PROCESS_CPU_NS": rounds of
//                     hot+cold and loop iterations completed by all burners together, and the CPU time of the
//                     whole process, read at the same moment (what the overhead benchmark measures)
// Prints "tid ROLE TID" for each thread, then "ready".
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifdef CPPOPS_BURNER_LINKED
#include "cppops/agent.h"
#endif

namespace {

// About 2 ms of CPU for the cold part of a round here; each round scales both parts by the same random factor
// (0.5 to 1.5) so that rounds never fall into step with the sampling period and bias the ratio.
constexpr uint64_t kColdIterations = 1500000;

std::atomic<uint64_t> g_units{0};
std::atomic<uint64_t> g_work{0};
std::atomic<int> g_announced{0};
bool g_starved = false;  // set before any thread starts
bool g_on_cpu0 = false;  // set before any thread starts
std::mutex g_print_lock;

// One step of a 64-bit LCG; the empty asm keeps the compiler from folding the loop away. The loop is written out
// in each function (not shared) so that each one's samples land in its own code.
#define CPPOPS_BURN(n, x)                                            \
  for (uint64_t i = 0; i < (n); ++i) {                               \
    (x) = (x) * 6364136223846793005ull + 1442695040888963407ull;     \
    asm volatile("" : "+r"(x));                                      \
  }

__attribute__((noinline)) uint64_t hotFunction(uint64_t n, uint64_t x) {
  CPPOPS_BURN(3 * n, x)
  return x;
}

__attribute__((noinline)) uint64_t coldFunction(uint64_t n, uint64_t x) {
  CPPOPS_BURN(n, x)
  return x;
}

void announce(const std::string& role) {
  pthread_setname_np(pthread_self(), role.c_str());
  std::lock_guard<std::mutex> lock(g_print_lock);
  std::printf("tid %s %ld\n", role.c_str(), static_cast<long>(syscall(SYS_gettid)));
  std::fflush(stdout);
  g_announced.fetch_add(1);
}

void runOnCpuZero() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
}

[[noreturn]] void burn(const std::string& role, int index) {
  announce(role);
  if (g_on_cpu0) runOnCpuZero();
  uint64_t x = static_cast<uint64_t>(index) + 1;
  uint64_t random = 0x9e3779b97f4a7c15ull * (static_cast<uint64_t>(index) + 1);
  for (;;) {
    random ^= random << 13;
    random ^= random >> 7;
    random ^= random << 17;
    const uint64_t n = kColdIterations / 2 + random % kColdIterations;
    x = hotFunction(n, x);
    x = coldFunction(n, x);
    g_units.fetch_add(1, std::memory_order_relaxed);
    g_work.fetch_add(4 * n, std::memory_order_relaxed);
  }
}

[[noreturn]] void burner(int index) { burn("burner-" + std::to_string(index), index); }

void* lateBurner(void* index) {
  const auto i = static_cast<int>(reinterpret_cast<intptr_t>(index));
  burn("late-" + std::to_string(i), 100 + i);
}

volatile sig_atomic_t g_start_late = 0;

using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

// Starts `count` late burners through `create`.
void startLate(int count, CreateFn create) {
  for (int i = 0; i < count; ++i) {
    pthread_t thread;
    if (create(&thread, nullptr, lateBurner, reinterpret_cast<void*>(static_cast<intptr_t>(i))) == 0)
      pthread_detach(thread);
  }
}

uint64_t clockNs(clockid_t clock);

void* relay(void*) {
  pthread_setname_np(pthread_self(), "relay");
  const uint64_t end = clockNs(CLOCK_MONOTONIC) + 300 * 1000000ull;
  uint64_t x = 11;
  while (clockNs(CLOCK_MONOTONIC) < end) {
    x = hotFunction(kColdIterations / 4, x);
    x = coldFunction(kColdIterations / 4, x);
  }
  pthread_t next;
  if (pthread_create(&next, nullptr, relay, nullptr) == 0) pthread_detach(next);
  return nullptr;
}

[[noreturn]] void starved() {
  announce("starved");
  runOnCpuZero();
  sched_param param{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
  uint64_t x = 7;
  for (;;) x = coldFunction(kColdIterations, x);
}

[[noreturn]] __attribute__((noinline)) void sleepForever() {
  for (;;) {
    timespec t{3600, 0};
    nanosleep(&t, nullptr);
  }
}

void sleeper() {
  announce("sleeper");
  sleepForever();
}

uint64_t clockNs(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
#ifdef CPPOPS_BURNER_LINKED
  if (cppops_agent_start(nullptr) != 0) return 3;
#endif
  int threads = 2;
  int late = 0;
  CreateFn late_create = pthread_create;
  bool relays = false;
  long report_ms = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--report-ms") == 0) report_ms = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--cpu0") == 0) g_on_cpu0 = std::atoi(argv[i + 1]) != 0;
    if (std::strcmp(argv[i], "--starved") == 0) g_starved = std::atoi(argv[i + 1]) != 0;
    if (std::strcmp(argv[i], "--late") == 0) late = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--late-via") == 0 && std::strcmp(argv[i + 1], "libc") == 0) {
      void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
      late_create = reinterpret_cast<CreateFn>(libc != nullptr ? dlsym(libc, "pthread_create") : nullptr);
      if (late_create == nullptr) return 2;
    }
    if (std::strcmp(argv[i], "--relay") == 0) relays = std::atoi(argv[i + 1]) != 0;
  }
  if (late > 0) signal(SIGUSR1, [](int) { g_start_late = 1; });
  g_on_cpu0 = g_on_cpu0 || g_starved;
  std::vector<std::thread> pool;
  pool.emplace_back(sleeper);
  for (int i = 0; i < threads; ++i) pool.emplace_back(burner, i);
  if (g_starved) pool.emplace_back(starved);
  if (relays) {
    pthread_t first;
    if (pthread_create(&first, nullptr, relay, nullptr) == 0) pthread_detach(first);
  }
  while (g_announced.load() < threads + 1 + (g_starved ? 1 : 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  {
    std::lock_guard<std::mutex> lock(g_print_lock);
    std::printf("ready\n");
    std::fflush(stdout);
  }
  if (late > 0) {
    const int before = g_announced.load();
    while (g_start_late == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    startLate(late, late_create);
    while (g_announced.load() < before + late) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(g_print_lock);
    std::printf("late\n");
    std::fflush(stdout);
  }
  if (report_ms > 0) {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(report_ms));
      std::lock_guard<std::mutex> lock(g_print_lock);
      std::printf("progress %llu %llu %llu %llu\n", static_cast<unsigned long long>(clockNs(CLOCK_MONOTONIC)),
                  static_cast<unsigned long long>(g_units.load(std::memory_order_relaxed)),
                  static_cast<unsigned long long>(g_work.load(std::memory_order_relaxed)),
                  static_cast<unsigned long long>(clockNs(CLOCK_PROCESS_CPUTIME_ID)));
      std::fflush(stdout);
    }
  }
  for (auto& t : pool) t.join();
}
