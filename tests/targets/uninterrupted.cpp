// Threads asleep in the calls that a signal handler always cuts short (signal(7): never restarted, whatever
// SA_RESTART says). Each says so on stdout if it ever returns early, which a stack dump that signalled it would
// make it do. Built without frame pointers, as distributions build code, and with them (tests/CMakeLists.txt).
//
// With "flicker", five more threads sleep 20 us at a time, calling down to another depth or chain in between, so
// that a stack read while its thread runs would not hold; with "alternate", only the two chains' (10-30 ms naps).
#include <time.h>
#include <poll.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "in_syscall.h"

namespace {

void reportEarlyReturn(const char* call) {
  std::printf("%s returned early: %s\n", call, std::strerror(errno));
  std::fflush(stdout);
}

__attribute__((noinline)) void waitInPause() {
  for (;;) {
    pause();
    reportEarlyReturn("pause");
  }
}

__attribute__((noinline)) void waitInEpoll() {
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  for (;;)
    if (epoll_wait(epoll, &event, 1, -1) < 0) reportEarlyReturn("epoll_wait");
}

__attribute__((noinline)) void waitInPoll() {
  for (;;)
    if (poll(nullptr, 0, -1) < 0) reportEarlyReturn("poll");
}

__attribute__((noinline)) void waitInSleep() {
  for (;;)
    if (sleep(3600) != 0) reportEarlyReturn("sleep");
}

// Each sleep is 1 to 6 calls deep: the frames a thread writes between two sleeps overwrite the last ones'.
__attribute__((noinline)) void flickerDown(int depth) {
  if (depth > 0) {
    flickerDown(depth - 1);
    asm volatile("" ::: "memory");  // no tail call: each level keeps its frame
    return;
  }
  const timespec brief{0, 20'000};
  nanosleep(&brief, nullptr);
}

[[noreturn]] __attribute__((noinline)) void flicker() {
  for (unsigned i = 0;; ++i) flickerDown(static_cast<int>(i % 6));
}

std::atomic<bool> g_stopping{false};  // never set: what the early return below tests

// Shrink-wrapped by GCC (-O1 and up): the early return runs before the frame is set up, so in the frame-pointer
// build the prologue is not the function's first instruction.
__attribute__((noinline)) int pollUnlessStopping(int fd) {
  if (g_stopping.load(std::memory_order_relaxed)) return 0;
  pollfd readable{fd, POLLIN, 0};
  const int ready = poll(&readable, 1, -1);
  return ready < 0 ? ready : readable.revents;
}

// abseil's and folly's futex wait: syscall(2) with all six arguments, the last on the stack, below which GCC pads
// the stack with the prologue's sub and takes both off after the call (-errno needs the function to go on). Unlike
// the others, a handler with SA_RESTART restarts it; it says so if it returns early all the same.
__attribute__((noinline)) int futexWait(int* word) {
  const long woken = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, nullptr, nullptr,
                             FUTEX_BITSET_MATCH_ANY);
  return woken < 0 ? -errno : 0;
}

__attribute__((noinline)) void waitInFutex() {
  static int never_woken = 0;
  for (;;)
    if (futexWait(&never_woken) == -EINTR) reportEarlyReturn("futex");
}

// Two call chains of the same shape (flicker mode): the nap sleeps at the same pc and sp, with the same arguments,
// in both, so its syscall line reads the same; only the return addresses above it tell them apart, and a walk
// made while the thread went from one chain to the other would mix them. Each inner function's frame is more than
// a page, so that a walk reads the return address into it and the one out of it from two pages, at two moments.
// Each function counts its calls, so that no two are the same code (which the compiler could fold into one).
// Naps last 20 us in flicker mode. In alternate mode they last 10 to 30 ms, drawn at random, so that the thread is
// almost never seen running, and which chain it is in at a given moment is a toss of a coin.
long g_nap_ns = 20'000;  // set before the threads start; 0: drawn
thread_local timespec t_nap;  // one address for both chains' naps: the same syscall line
thread_local uint64_t t_draws = 0x9e3779b97f4a7c15ull;
std::atomic<unsigned> g_alternations[4];

__attribute__((noinline)) void nap() {
  long ns = g_nap_ns;
  if (ns == 0) {
    t_draws ^= t_draws << 13;
    t_draws ^= t_draws >> 7;
    t_draws ^= t_draws << 17;
    ns = 10'000'000 + static_cast<long>(t_draws % 20'000'000);
  }
  t_nap = timespec{0, ns};
  nanosleep(&t_nap, nullptr);
}

__attribute__((noinline)) void alternateInner1() {
  volatile char page[4096];
  page[0] = 1;
  nap();
  g_alternations[0].fetch_add(page[0], std::memory_order_relaxed);
}

__attribute__((noinline)) void alternateInner2() {
  volatile char page[4096];
  page[0] = 1;
  nap();
  g_alternations[1].fetch_add(page[0], std::memory_order_relaxed);
}

__attribute__((noinline)) void alternateOuter1() {
  alternateInner1();
  g_alternations[2].fetch_add(1, std::memory_order_relaxed);
}

__attribute__((noinline)) void alternateOuter2() {
  alternateInner2();
  g_alternations[3].fetch_add(1, std::memory_order_relaxed);
}

[[noreturn]] __attribute__((noinline)) void alternate() {
  for (;;) {
    alternateOuter1();
    alternateOuter2();
  }
}

__attribute__((noinline)) void waitInPollUnlessStopping() {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  for (;;)
    if (pollUnlessStopping(fds[0]) < 0) reportEarlyReturn("poll (shrink-wrapped)");
}

}  // namespace

int main(int argc, char** argv) {
  struct Role {
    const char* name;
    void (*wait)();
    long syscall_number;
  };
  const Role roles[] = {{"pause", waitInPause, SYS_pause},
                        {"epoll", waitInEpoll, SYS_epoll_wait},
                        {"poll", waitInPoll, SYS_poll},
                        {"sleep", waitInSleep, SYS_clock_nanosleep},
                        {"shrink-wrapped", waitInPollUnlessStopping, SYS_poll},
                        {"futex", waitInFutex, SYS_futex}};
  std::vector<std::atomic<pid_t>> tids(std::size(roles));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < std::size(roles); ++i)
    threads.emplace_back([&, i] {
      cppops_targets::announceTid(tids[i]);
      roles[i].wait();
    });
  for (size_t i = 0; i < std::size(roles); ++i) {
    cppops_targets::waitUntilInSyscall(tids[i], {roles[i].syscall_number});
    std::printf("tid %s %d\n", roles[i].name, static_cast<int>(tids[i].load()));
  }
  const bool flickering = argc > 1 && std::strcmp(argv[1], "flicker") == 0;
  const bool alternating = argc > 1 && std::strcmp(argv[1], "alternate") == 0;
  if (alternating) g_nap_ns = 0;
  if (flickering)
    for (int i = 0; i < 3; ++i) threads.emplace_back(flicker);
  if (flickering || alternating)
    for (int i = 0; i < 2; ++i) threads.emplace_back(alternate);
  std::printf("ready\n");
  std::fflush(stdout);
  for (auto& t : threads) t.join();
}
