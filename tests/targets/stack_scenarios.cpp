// Threads parked in every state `cppops stack` must recognise, each in a function of its own so tests can name
// the exact frame. Prints "tid ROLE TID" for every thread, then "ready" once all but the spinner sleep in the kernel.
//
//   stack_scenarios [--extra N] [--extra-nap-ms MS]
//     --extra N           also start N more threads in mixed states (for the 1,000-thread benchmark)
//     --extra-nap-ms MS   those of them that sleep wake every MS milliseconds, and sleep again in the same call
#include <alloca.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "in_syscall.h"

#ifdef CPPOPS_SCENARIOS_LINKED
#include "cppops/agent.h"
#endif

namespace {

using namespace std::chrono_literals;

std::mutex g_print_lock;
// Every thread but the spinner, by the tid it publishes; main says "ready" once each sleeps in the kernel.
std::vector<std::atomic<pid_t>> g_sleepers;
std::atomic<size_t> g_next_sleeper{0};

// Publishes the calling thread's tid, to be waited for until it sleeps in the kernel.
void expectSleep() { cppops_targets::announceTid(g_sleepers[g_next_sleeper.fetch_add(1)]); }

void printRole(const char* role) {
  pthread_setname_np(pthread_self(), role);
  std::lock_guard<std::mutex> lock(g_print_lock);
  std::printf("tid %s %ld\n", role, static_cast<long>(syscall(SYS_gettid)));
  std::fflush(stdout);
}

// For a thread that ends up asleep in the kernel.
void announce(const char* role) {
  printRole(role);
  expectSleep();
}

[[noreturn]] void parkForever() {
  for (;;) pause();
}

// Two threads taking two mutexes in opposite order; the barrier makes the deadlock certain.
std::mutex g_dl2_first, g_dl2_second;
std::atomic<int> g_dl2_barrier{0};
__attribute__((noinline)) void deadlockTwoA() {
  announce("dl2-a");
  std::lock_guard<std::mutex> a(g_dl2_first);
  g_dl2_barrier.fetch_add(1);
  while (g_dl2_barrier.load() < 2) std::this_thread::yield();
  std::lock_guard<std::mutex> b(g_dl2_second);
}
__attribute__((noinline)) void deadlockTwoB() {
  announce("dl2-b");
  std::lock_guard<std::mutex> b(g_dl2_second);
  g_dl2_barrier.fetch_add(1);
  while (g_dl2_barrier.load() < 2) std::this_thread::yield();
  std::lock_guard<std::mutex> a(g_dl2_first);
}

// Three threads in a ring: each holds its own mutex and wants the next one's.
std::mutex g_ring[3];
std::atomic<int> g_ring_barrier{0};
__attribute__((noinline)) void deadlockRing(int i) {
  static const char* kNames[] = {"dl3-a", "dl3-b", "dl3-c"};
  announce(kNames[i]);
  std::lock_guard<std::mutex> mine(g_ring[i]);
  g_ring_barrier.fetch_add(1);
  while (g_ring_barrier.load() < 3) std::this_thread::yield();
  std::lock_guard<std::mutex> next(g_ring[(i + 1) % 3]);
}

// A mutex held by a thread that sleeps, and a thread waiting for it.
std::mutex g_held;
std::atomic<bool> g_held_taken{false};
__attribute__((noinline)) void holdWhileSleeping() {
  announce("holder");
  std::lock_guard<std::mutex> lock(g_held);
  g_held_taken = true;
  for (;;) std::this_thread::sleep_for(1h);
}
__attribute__((noinline)) void waitForHeldMutex() {
  announce("waiter");
  while (!g_held_taken) std::this_thread::yield();
  std::lock_guard<std::mutex> lock(g_held);
}

// std::recursive_mutex and std::timed_mutex held by sleepers, with waiters.
std::recursive_mutex g_recursive;
std::timed_mutex g_timed;
std::atomic<int> g_other_locks_taken{0};
__attribute__((noinline)) void holdRecursiveAndTimed() {
  announce("rec-holder");
  std::lock_guard<std::recursive_mutex> r1(g_recursive);
  std::lock_guard<std::recursive_mutex> r2(g_recursive);
  std::lock_guard<std::timed_mutex> t(g_timed);
  g_other_locks_taken = 1;
  for (;;) std::this_thread::sleep_for(1h);
}
__attribute__((noinline)) void waitForRecursiveMutex() {
  announce("rec-waiter");
  while (!g_other_locks_taken) std::this_thread::yield();
  std::lock_guard<std::recursive_mutex> lock(g_recursive);
}
__attribute__((noinline)) void waitForTimedMutex() {
  announce("timed-waiter");
  while (!g_other_locks_taken) std::this_thread::yield();
  g_timed.try_lock_for(24h);
}

// A priority-inheritance mutex: the kernel keeps the owner's tid in the futex word.
pthread_mutex_t g_pi;
std::atomic<bool> g_pi_taken{false};
__attribute__((noinline)) void holdPiMutex() {
  announce("pi-holder");
  pthread_mutex_lock(&g_pi);
  g_pi_taken = true;
  for (;;) std::this_thread::sleep_for(1h);
}
__attribute__((noinline)) void waitForPiMutex() {
  announce("pi-waiter");
  while (!g_pi_taken) std::this_thread::yield();
  pthread_mutex_lock(&g_pi);
}

// A std::shared_mutex held for writing, with a reader and a second writer waiting.
std::shared_mutex g_rw;
std::atomic<bool> g_rw_taken{false};
__attribute__((noinline)) void holdWriteLock() {
  announce("rw-writer");
  std::unique_lock<std::shared_mutex> lock(g_rw);
  g_rw_taken = true;
  for (;;) std::this_thread::sleep_for(1h);
}
__attribute__((noinline)) void readerWaits() {
  announce("rw-reader");
  while (!g_rw_taken) std::this_thread::yield();
  std::shared_lock<std::shared_mutex> lock(g_rw);
}
__attribute__((noinline)) void writerWaits() {
  announce("rw-writer2");
  while (!g_rw_taken) std::this_thread::yield();
  std::unique_lock<std::shared_mutex> lock(g_rw);
}

std::mutex g_cv_mutex;
std::condition_variable g_cv;
__attribute__((noinline)) void waitOnCondition() {
  announce("condvar");
  std::unique_lock<std::mutex> lock(g_cv_mutex);
  g_cv.wait(lock, [] { return false; });
}

__attribute__((noinline)) void sleepLong() {
  announce("sleeper");
  for (;;) std::this_thread::sleep_for(1h);
}

int g_pipe[2];
__attribute__((noinline)) void readFromPipe() {
  announce("pipe-reader");
  char buf[16];
  while (read(g_pipe[0], buf, sizeof buf) != 0) {
  }
  parkForever();
}

__attribute__((noinline)) void waitOnEpoll() {
  announce("epoller");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_ctl(ep, EPOLL_CTL_ADD, g_pipe[0], &ev);
  epoll_event out;
  for (;;) epoll_wait(ep, &out, 1, -1);
}

int g_listener = -1;
__attribute__((noinline)) void acceptConnection() {
  announce("acceptor");
  for (;;) {
    int fd = accept(g_listener, nullptr, nullptr);
    if (fd >= 0) close(fd);
  }
}

std::atomic<bool> g_stop_spinning{false};
__attribute__((noinline)) void spinForever() {
  printRole("spinner");
  volatile unsigned long x = 0;
  while (!g_stop_spinning.load(std::memory_order_relaxed)) x = x + 1;
}

__attribute__((noinline)) void sleepWithSignalsBlocked() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
#ifdef CPPOPS_SCENARIOS_LINKED
  // Built with frame pointers, a sleeping thread is read where it sleeps when its frames keep rsp where their
  // prologues put it; this one moves rsp after its prologue (alloca of a size known only at run time), so only
  // the signal could ask it, and it blocks the signal.
  volatile size_t size = 64;
  auto* scratch = static_cast<volatile char*>(alloca(size));
  scratch[0] = 0;
#endif
  announce("no-signals");
  for (;;) std::this_thread::sleep_for(1h);
}

// Extra threads for scale: a quarter each sleeping, waiting on a condition, on a held mutex, reading a pipe.
std::mutex g_extra_mutex;
std::condition_variable g_extra_cv;
std::chrono::milliseconds g_extra_nap = 1h;  // set before the threads start
__attribute__((noinline)) void extraWorker(int kind) {
  pthread_setname_np(pthread_self(), "extra");
  expectSleep();
  switch (kind % 4) {
    case 0: for (;;) std::this_thread::sleep_for(g_extra_nap);
    case 1: {
      std::mutex m;
      std::unique_lock<std::mutex> lock(m);
      for (;;) g_extra_cv.wait(lock);
    }
    case 2: {
      // Once "holder" has it, for good: a worker that took it first would go on to park in pause(), and "holder"
      // would be the one waiting.
      while (!g_held_taken) std::this_thread::yield();
      std::lock_guard<std::mutex> lock(g_held);
      break;
    }
    default: {
      char buf[16];
      while (read(g_pipe[0], buf, sizeof buf) != 0) {
      }
    }
  }
  parkForever();
}

// The benchmark's probe: a thread that wakes every 200 us and records the longest gap it saw beyond that, in a
// shared file the benchmark resets before each tool run and reads after. A tool that stops the process shows
// up here as a long gap.
[[noreturn]] void probeStalls(uint64_t* longest_gap_ns) {
  pthread_setname_np(pthread_self(), "probe");
  auto last = std::chrono::steady_clock::now();
  for (;;) {
    std::this_thread::sleep_for(200us);
    auto now = std::chrono::steady_clock::now();
    auto gap = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
    if (gap > *longest_gap_ns) __atomic_store_n(longest_gap_ns, gap, __ATOMIC_RELAXED);
    last = now;
  }
}

void startProbe() {
  const char* path = std::getenv("CPPOPS_PROBE_FILE");
  if (path == nullptr) return;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate(fd, sizeof(uint64_t)) != 0) return;
  void* p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p != MAP_FAILED) std::thread(probeStalls, static_cast<uint64_t*>(p)).detach();
}

}  // namespace

int main(int argc, char** argv) {
#ifdef CPPOPS_SCENARIOS_LINKED
  cppops_agent_start(nullptr);
#endif
  int extra = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--extra") == 0) extra = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--extra-nap-ms") == 0) g_extra_nap = std::chrono::milliseconds(std::atol(argv[i + 1]));
  }

  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
  pthread_mutex_init(&g_pi, &attr);
  if (pipe(g_pipe) != 0) return 1;
  g_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(g_listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(g_listener, 4) != 0) return 1;

  const auto roles = {deadlockTwoA, deadlockTwoB, holdWhileSleeping, waitForHeldMutex, holdRecursiveAndTimed,
                      waitForRecursiveMutex, waitForTimedMutex, holdPiMutex, waitForPiMutex, holdWriteLock,
                      readerWaits, writerWaits, waitOnCondition, sleepLong, readFromPipe, waitOnEpoll,
                      acceptConnection, spinForever, sleepWithSignalsBlocked};
  const int ring = 3, spinners = 1;
  g_sleepers = std::vector<std::atomic<pid_t>>(roles.size() + ring - spinners + static_cast<size_t>(extra));
  std::vector<std::thread> threads;
  for (auto fn : roles) threads.emplace_back(fn);
  for (int i = 0; i < ring; ++i) threads.emplace_back(deadlockRing, i);
  for (int i = 0; i < extra; ++i) threads.emplace_back(extraWorker, i);

  for (const auto& tid : g_sleepers)
    cppops_targets::waitUntilInSyscall(tid, {SYS_futex, SYS_clock_nanosleep, SYS_read, SYS_epoll_wait, SYS_accept});
  startProbe();
  {
    std::lock_guard<std::mutex> lock(g_print_lock);
    std::printf("ready\n");
    std::fflush(stdout);
  }
  parkForever();
}
