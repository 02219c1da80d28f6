// The agent's cached CFI walker against glibc's backtrace() (libgcc's unwinder), on real stacks of this process:
// where the walker answers, every return address must be the one backtrace() finds; where it cannot follow a
// frame it must say so (0) rather than return a shorter or different stack.
#include <alloca.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "sigsafe/cfi_unwind.h"
#include "sigsafe/unwind.h"

namespace {

using cppops::agent::sigsafe::cfiUnwind;
using cppops::agent::sigsafe::cfiUnwindAsleep;
using cppops::agent::sigsafe::currentRegisters;
using cppops::agent::sigsafe::FrameRegisters;
using cppops::agent::sigsafe::StackReader;

constexpr size_t kMax = 128;

// Both walks from the same function: ours from its registers, backtrace()'s from its return address after the
// call. Everything above that function must match.
struct BothWalks {
  std::vector<uintptr_t> ours;
  std::vector<uintptr_t> libgcc;
};

__attribute__((noinline)) BothWalks walkBothHere() {
  void* ours[kMax];
  void* libgcc[kMax];
  const size_t n = cfiUnwind(currentRegisters(), ours, kMax);
  const int m = backtrace(libgcc, static_cast<int>(kMax));
  BothWalks w;
  for (size_t i = 0; i < n; ++i) w.ours.push_back(reinterpret_cast<uintptr_t>(ours[i]));
  for (int i = 0; i < m; ++i) w.libgcc.push_back(reinterpret_cast<uintptr_t>(libgcc[i]));
  return w;
}

void requireSameCallers(const BothWalks& w) {
  REQUIRE(w.ours.size() >= 3);
  // backtrace()'s list starts inside backtrace() itself (under AddressSanitizer, inside its interceptor too):
  // line the lists up at walkBothHere's caller.
  const auto caller = std::find(w.libgcc.begin(), w.libgcc.end(), w.ours[1]);
  REQUIRE(caller != w.libgcc.end());
  REQUIRE(caller != w.libgcc.begin());
  // Before it: backtrace()'s return into walkBothHere, just after where our walk began.
  const uintptr_t returned_into_us = *(caller - 1);
  CHECK(w.ours[0] < returned_into_us);
  CHECK(returned_into_us - w.ours[0] < 512);
  REQUIRE(w.ours.size() - 1 == static_cast<size_t>(w.libgcc.end() - caller));
  for (size_t i = 1; i < w.ours.size(); ++i) {
    INFO("frame " << i);
    CHECK(w.ours[i] == caller[static_cast<ptrdiff_t>(i - 1)]);
  }
}

// Frames of every shape the compiler emits for ordinary code: CFA on rsp (no frame pointer), on rbp (alloca
// forces one), large frames, and callbacks through libc and libstdc++.
std::atomic<int> g_sink{0};

__attribute__((noinline)) BothWalks viaAlloca(int depth);

__attribute__((noinline)) BothWalks viaLargeFrame(int depth) {
  volatile char buffer[20000];
  buffer[depth] = static_cast<char>(depth);
  BothWalks w = depth == 0 ? walkBothHere() : viaAlloca(depth - 1);
  g_sink += buffer[depth];
  return w;
}

__attribute__((noinline)) BothWalks viaAlloca(int depth) {
  auto* p = static_cast<volatile char*>(alloca(static_cast<size_t>(64 + depth * 16)));
  p[0] = 1;
  BothWalks w = depth % 2 == 0 ? viaLargeFrame(depth) : viaAlloca(depth - 1);
  g_sink += p[0];
  return w;
}

// Over-aligned locals beside alloca: GCC realigns the stack and keeps the incoming stack pointer in a register
// ("DRAP"), so its CFI gives the CFA as an expression (the word at rbp - 8) and the caller's rbp at rbp.
__attribute__((noinline)) BothWalks viaRealignedAlloca(int depth) {
  alignas(64) volatile char aligned[64];
  auto* p = static_cast<volatile char*>(alloca(static_cast<size_t>(64 + depth * 16)));
  aligned[0] = static_cast<char>(depth);
  p[0] = 1;
  BothWalks w = depth == 0 ? walkBothHere() : viaAlloca(depth - 1);
  g_sink += aligned[0] + p[0];
  return w;
}

// A frame whose CFA is on rbp above a realigned one: the walk needs the rbp the realigned frame saved.
__attribute__((noinline)) BothWalks viaAllocaAboveRealigned(int depth) {
  auto* p = static_cast<volatile char*>(alloca(static_cast<size_t>(64 + depth * 16)));
  p[0] = 1;
  BothWalks w = viaRealignedAlloca(depth);
  g_sink += p[0];
  return w;
}

BothWalks g_from_qsort;

int compareAndWalk(const void* a, const void* b) {
  if (g_from_qsort.ours.empty()) g_from_qsort = viaAlloca(5);
  return *static_cast<const int*>(a) - *static_cast<const int*>(b);
}

TEST_CASE("cfiUnwind: every return address is the one backtrace() finds, through rbp and rsp frames") {
  requireSameCallers(viaAlloca(7));
}

TEST_CASE("cfiUnwind: a frame that realigns its stack, its CFA the word at rbp - 8, is followed as backtrace() does") {
  SECTION("right above the frame the walk starts in") { requireSameCallers(viaRealignedAlloca(0)); }
  SECTION("above frames on rsp and rbp") { requireSameCallers(viaRealignedAlloca(3)); }
  SECTION("below a frame on rbp") { requireSameCallers(viaAllocaAboveRealigned(2)); }
}

TEST_CASE("cfiUnwind: a callback from libc's qsort walks out through libc") {
  int values[] = {3, 1, 2};
  g_from_qsort = {};
  qsort(values, 3, sizeof values[0], compareAndWalk);
  requireSameCallers(g_from_qsort);
}

TEST_CASE("cfiUnwind: a thread's stack ends where backtrace()'s does (its clone)") {
  BothWalks w;
  std::thread t([&] {
    std::function<BothWalks()> call = [] { return viaAlloca(3); };
    w = call();
  });
  t.join();
  requireSameCallers(w);
}

TEST_CASE("cfiUnwind: a second walk of the same stack, from the rule cache, is the same") {
  BothWalks walks[2];
  for (BothWalks& w : walks) w = viaAlloca(4);  // one call site, so the two stacks are the same
  requireSameCallers(walks[1]);
  CHECK(walks[0].ours == walks[1].ours);
}

// ThreadSanitizer defers asynchronous signals to a point of its choosing, where the interrupted registers no
// longer describe the stack the handler runs on; the comparison below needs the handler to run where it
// interrupted.
#if !defined(__SANITIZE_THREAD__)

// Signal handlers: the capture walks from the interrupted registers, and must match backtrace() from the
// interrupted pc on; a walk from inside the handler goes through the signal trampoline (glibc's __restore_rt,
// whose CFI finds the interrupted registers in the ucontext the kernel pushed) and must match backtrace()'s too.
struct HandlerWalks {
  std::vector<uintptr_t> from_registers;
  std::vector<uintptr_t> libgcc_from_interrupted;
  BothWalks through_trampoline;
  uintptr_t handler_sp = 0;
};
HandlerWalks g_handler;
std::atomic<bool> g_handled{false};
std::atomic<bool> g_stop_spinning{false};
std::atomic<bool> g_spinning{false};  // the spinner reached its loop: a signal now interrupts it there

void onSignal(int, siginfo_t*, void* context) {
  const auto* uc = static_cast<const ucontext_t*>(context);
  FrameRegisters r;
  r.pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  r.sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  r.bp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]);
  void* ours[kMax];
  void* libgcc[kMax];
  const size_t n = cfiUnwind(r, ours, kMax);
  const int m = backtrace(libgcc, static_cast<int>(kMax));
  int first = 0;
  while (first < m && reinterpret_cast<uintptr_t>(libgcc[first]) != r.pc) ++first;
  for (size_t i = 0; i < n; ++i) g_handler.from_registers.push_back(reinterpret_cast<uintptr_t>(ours[i]));
  for (int i = first; i < m; ++i) g_handler.libgcc_from_interrupted.push_back(reinterpret_cast<uintptr_t>(libgcc[i]));
  g_handler.through_trampoline = walkBothHere();
  g_handler.handler_sp = currentRegisters().sp;
  g_handled = true;
}

// Installs `handler` for `signo` while in scope, and puts the one before back.
class ScopedHandler {
 public:
  ScopedHandler(int signo, void (*handler)(int, siginfo_t*, void*), int flags = 0) : signo_(signo) {
    struct sigaction action {};
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&action.sa_mask);
    REQUIRE(sigaction(signo, &action, &previous_) == 0);
  }
  ~ScopedHandler() { sigaction(signo_, &previous_, nullptr); }
  ScopedHandler(const ScopedHandler&) = delete;
  ScopedHandler& operator=(const ScopedHandler&) = delete;

 private:
  int signo_;
  struct sigaction previous_ {};
};

__attribute__((noinline)) void spinUntilStopped(int depth) {
  if (depth > 0) {
    spinUntilStopped(depth - 1);
    g_sink += 1;
    return;
  }
  g_spinning = true;
  while (!g_stop_spinning.load(std::memory_order_relaxed)) g_sink.fetch_add(1, std::memory_order_relaxed);
}

TEST_CASE("cfiUnwind: from the interrupted registers, and from the handler through the trampoline, as backtrace()") {
  g_handler = {};
  g_handled = false;
  g_stop_spinning = false;
  g_spinning = false;
  {
    ScopedHandler handler(SIGUSR2, onSignal);
    std::thread spinner([] { spinUntilStopped(6); });
    // Let it reach the loop (on a loaded machine that may take a while), then interrupt it there.
    while (!g_spinning) usleep(1000);
    REQUIRE(pthread_kill(spinner.native_handle(), SIGUSR2) == 0);
    while (!g_handled) usleep(1000);
    g_stop_spinning = true;
    spinner.join();
  }

  REQUIRE(g_handler.from_registers.size() >= 8);  // the loop, 6 more levels, the lambda, the thread's start
  CHECK(g_handler.from_registers == g_handler.libgcc_from_interrupted);
  requireSameCallers(g_handler.through_trampoline);
  // onSignal, the trampoline, then the interrupted pc and what the registers walk found above it.
  const std::vector<uintptr_t>& through = g_handler.through_trampoline.ours;
  REQUIRE(through.size() == g_handler.from_registers.size() + 3);
  CHECK(std::equal(through.begin() + 3, through.end(), g_handler.from_registers.begin()));
}

// A handler on an alternate signal stack that lies above the thread's own stack: the walk from the handler
// crosses from one stack to the other at the trampoline, to a lower address.
TEST_CASE("cfiUnwind: from a handler on an alternate stack above the thread's, through the trampoline, as backtrace") {
  constexpr size_t kSize = 256 * 1024;
  // Mapped in this order, the alternate stack lies above the thread's stack (and its control block, at its top).
  void* alternate = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* own = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(alternate != MAP_FAILED);
  REQUIRE(own != MAP_FAILED);
  REQUIRE(alternate > own);
  g_handler = {};
  g_handled = false;
  g_stop_spinning = false;
  g_spinning = false;
  {
    ScopedHandler handler(SIGUSR2, onSignal, SA_ONSTACK);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, own, kSize);
    pthread_t spinner;
    REQUIRE(pthread_create(
                &spinner, &attr,
                [](void* stack) -> void* {
                  stack_t ss{};
                  ss.ss_sp = stack;
                  ss.ss_size = kSize;
                  // A failure shows in the checks below: the handler then runs on the thread's own stack.
                  sigaltstack(&ss, nullptr);
                  spinUntilStopped(6);
                  ss.ss_flags = SS_DISABLE;
                  sigaltstack(&ss, nullptr);
                  return nullptr;
                },
                alternate) == 0);
    pthread_attr_destroy(&attr);
    while (!g_spinning) usleep(1000);
    REQUIRE(pthread_kill(spinner, SIGUSR2) == 0);
    while (!g_handled) usleep(1000);
    g_stop_spinning = true;
    pthread_join(spinner, nullptr);
  }
  munmap(own, kSize);
  munmap(alternate, kSize);
  const auto on_alternate = [&](uintptr_t address) {
    const auto begin = reinterpret_cast<uintptr_t>(alternate);
    return address >= begin && address < begin + kSize;
  };
  INFO("the walk from inside the handler starts on the alternate stack");
  CHECK(on_alternate(g_handler.handler_sp));
  REQUIRE(g_handler.from_registers.size() >= 8);
  requireSameCallers(g_handler.through_trampoline);
  const std::vector<uintptr_t>& through = g_handler.through_trampoline.ours;
  REQUIRE(through.size() == g_handler.from_registers.size() + 3);
  CHECK(std::equal(through.begin() + 3, through.end(), g_handler.from_registers.begin()));
}

// A function whose first instruction traps (ud2): the pc the trampoline restores is that function's first byte,
// so its rule must be looked up at the pc itself, not just before it as for a return address.
extern "C" void trapAtEntry();
__asm__(
    ".text\n"
    ".type trapAtEntry, @function\n"
    "trapAtEntry:\n"
    "  .cfi_startproc\n"
    "  ud2\n"
    "  ret\n"
    "  .cfi_endproc\n"
    ".size trapAtEntry, .-trapAtEntry\n");

BothWalks g_from_trap;

void onTrap(int, siginfo_t*, void* context) {
  g_from_trap = walkBothHere();
  auto* uc = static_cast<ucontext_t*>(context);
  uc->uc_mcontext.gregs[REG_RIP] += 2;  // on to the ret
}

TEST_CASE("cfiUnwind: through the trampoline to a pc that is its function's first instruction, as backtrace()") {
  g_from_trap = {};
  {
    ScopedHandler handler(SIGILL, onTrap);
    trapAtEntry();
  }
  requireSameCallers(g_from_trap);
  REQUIRE(g_from_trap.ours.size() >= 4);
  CHECK(g_from_trap.ours[3] == reinterpret_cast<uintptr_t>(&trapAtEntry));
}

#endif

// Another thread's stack, walked while it sleeps in read(2) on a pipe, from the pc and sp the kernel reports, with
// words read through process_vm_readv as the agent reads them.
struct Sleeper {
  int fds[2] = {-1, -1};
  std::vector<uintptr_t> libgcc;  // backtrace() in the frame that then sleeps
  std::atomic<pid_t> tid{0};
};

// Records backtrace() from the function it is inlined into, then sleeps there in read(2) through syscall(2), which
// no sanitizer intercepts with a frame of its own and which never saves rbp.
__attribute__((always_inline)) inline void backtraceThenSleep(Sleeper& s) {
  void* frames[kMax];
  const int m = backtrace(frames, static_cast<int>(kMax));
  for (int i = 0; i < m; ++i) s.libgcc.push_back(reinterpret_cast<uintptr_t>(frames[i]));
  s.tid = static_cast<pid_t>(syscall(SYS_gettid));
  char c = 0;
  g_sink += static_cast<int>(syscall(SYS_read, s.fds[0], &c, 1));
}

// The walk needs rbp from the first frame whose base is rbp on (every frame above, in the sanitizer builds, which
// keep frame pointers): this frame keeps none and saves the caller's rbp, as a function that uses rbp as a
// register of its own does.
__attribute__((noinline, optimize("omit-frame-pointer"))) void sleepAfterBacktrace(Sleeper& s) {
  asm volatile("" ::: "rbp");
  backtraceThenSleep(s);
}

// Frame-pointer code with a fixed frame: its CFA is rbp + 16, syscall(2) sleeps right below it, and rsp has not
// moved since the prologue, so the prologue says where rbp is.
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void sleepInFramePointerFrame(Sleeper& s) {
  backtraceThenSleep(s);
}

// The same, shrink-wrapped (GCC, -O1 and up): the test that returns at once comes before the prologue, which is
// then not the function's first instruction.
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void sleepInShrinkWrappedFrame(Sleeper& s) {
  if (s.fds[0] < 0) return;
  backtraceThenSleep(s);
}

// Frame-pointer code: alloca puts the CFA on rbp, and syscall(2), which never saves rbp, sleeps right below it.
// rsp moved after the prologue, so the prologue cannot say where rbp is.
__attribute__((noinline)) void sleepBelowAllocaFrame(Sleeper& s) {
  volatile size_t size = 64;  // not a constant, which the compiler would make part of the fixed frame
  auto* p = static_cast<volatile char*>(alloca(size));
  p[0] = 1;
  s.tid = static_cast<pid_t>(syscall(SYS_gettid));
  char c = 0;
  g_sink += static_cast<int>(syscall(SYS_read, s.fds[0], &c, 1)) + p[0];
}

__attribute__((noinline)) void touch(volatile char* p) { p[0] = 2; }

// The same, with the alloca after a first call: rsp moves in the middle of the function, not in its prologue.
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void sleepBelowAllocaAfterCall(Sleeper& s) {
  char first = 0;
  touch(&first);
  volatile size_t size = 64;
  auto* p = static_cast<volatile char*>(alloca(size));
  touch(p);
  s.tid = static_cast<pid_t>(syscall(SYS_gettid));
  char c = 0;
  g_sink += static_cast<int>(syscall(SYS_read, s.fds[0], &c, 1)) + p[0] + first;
}

__attribute__((noinline)) void sleepDeeper(Sleeper& s, int depth, void (*sleep)(Sleeper&)) {
  auto* p = static_cast<volatile char*>(alloca(static_cast<size_t>(32 + depth)));
  p[0] = 1;
  if (depth == 0)
    sleep(s);
  else
    sleepDeeper(s, depth - 1, sleep);
  g_sink += p[0];
}

bool readOwnMemory(void*, uintptr_t at, uintptr_t* word) {
  iovec local{word, sizeof *word};
  iovec remote{reinterpret_cast<void*>(at), sizeof *word};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(sizeof *word);
}

bool failEveryRead(void*, uintptr_t, uintptr_t*) { return false; }

// The pc and sp of thread `tid` once it sleeps in read(2), from the last two fields of its syscall file.
std::pair<uintptr_t, uintptr_t> sleepingPcAndSp(pid_t tid) {
  for (int attempt = 0; attempt < 5000; ++attempt) {
    std::ifstream file("/proc/self/task/" + std::to_string(tid) + "/syscall");
    std::string line;
    std::getline(file, line);
    std::istringstream fields(line);
    std::vector<std::string> words;
    for (std::string w; fields >> w;) words.push_back(w);
    if (words.size() == 9 && words[0] == std::to_string(SYS_read))
      return {std::stoull(words[8], nullptr, 16), std::stoull(words[7], nullptr, 16)};
    usleep(1000);
  }
  FAIL("thread " << tid << " never slept in read(2)");
  return {};
}

// The sleeper's thread, woken and joined however the test ends (a failed REQUIRE throws past a joinable thread).
class SleeperThread {
 public:
  SleeperThread(Sleeper& s, void (*sleep)(Sleeper&)) : s_(s), thread_([&s, sleep] { sleepDeeper(s, 3, sleep); }) {}
  ~SleeperThread() {
    CHECK(write(s_.fds[1], "x", 1) == 1);
    thread_.join();
    close(s_.fds[0]);
    close(s_.fds[1]);
  }
  SleeperThread(const SleeperThread&) = delete;
  SleeperThread& operator=(const SleeperThread&) = delete;

 private:
  Sleeper& s_;
  std::thread thread_;
};

std::vector<uintptr_t> walkWhileAsleep(void (*sleep)(Sleeper&), const StackReader& reader, Sleeper& s) {
  REQUIRE(pipe(s.fds) == 0);
  size_t n = 0;
  void* pcs[kMax];
  uintptr_t pc = 0;
  {
    SleeperThread thread(s, sleep);
    while (s.tid.load() == 0) usleep(100);
    uintptr_t sp = 0;
    std::tie(pc, sp) = sleepingPcAndSp(s.tid.load());
    INFO("asleep at pc " << std::hex << pc << ", sp " << sp);
    n = cfiUnwindAsleep(pc, sp, reader, pcs, kMax);
  }
  std::vector<uintptr_t> walked;
  for (size_t i = 0; i < n; ++i) walked.push_back(reinterpret_cast<uintptr_t>(pcs[i]));
  if (!walked.empty()) CHECK(walked[0] == pc);
  return walked;
}

// A walk of the thread that `sleep` put to sleep in read(2) is its backtrace() from the sleeping function on.
void checkAsleepWalkIsBacktrace(void (*sleep)(Sleeper&)) {
  Sleeper s;
  const std::vector<uintptr_t> walked = walkWhileAsleep(sleep, StackReader{readOwnMemory, nullptr}, s);
  // The walk starts in syscall(2); backtrace() starts inside itself (under a sanitizer, inside its interceptor
  // too). From the return into sleepDeeper on, both are the same stack.
  REQUIRE(walked.size() >= 4);
  size_t k = 1;
  while (k < walked.size() && std::find(s.libgcc.begin(), s.libgcc.end(), walked[k]) == s.libgcc.end()) ++k;
  REQUIRE(k < walked.size());
  CHECK(k <= 3);
  const auto caller = std::find(s.libgcc.begin(), s.libgcc.end(), walked[k]);
  REQUIRE(caller != s.libgcc.begin());
  // Before it, each list returns into sleepAfterBacktrace: backtrace()'s call comes before read(2)'s.
  CHECK(*(caller - 1) < walked[k - 1]);
  CHECK(walked[k - 1] - *(caller - 1) < 4096);  // the same function (sanitizers make it long)
  REQUIRE(walked.size() - k == static_cast<size_t>(s.libgcc.end() - caller));
  CHECK(walked.size() - k >= 5);  // sleepDeeper 4 times, then the thread's start
  for (size_t i = k; i < walked.size(); ++i) {
    INFO("frame " << i);
    CHECK(walked[i] == caller[static_cast<ptrdiff_t>(i - k)]);
  }
}

TEST_CASE("cfiUnwindAsleep: a thread asleep in read(2) is walked from its kernel pc and sp, as its backtrace()") {
  checkAsleepWalkIsBacktrace(sleepAfterBacktrace);
}

TEST_CASE("cfiUnwindAsleep: a frame-pointer frame that needs rbp is walked through, rbp found from its prologue") {
  checkAsleepWalkIsBacktrace(sleepInFramePointerFrame);
}

TEST_CASE("cfiUnwindAsleep: a shrink-wrapped frame-pointer frame is walked through, rbp found past its early return") {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // The sanitizers' instrumentation sets the frame up first; elsewhere the function must be shrink-wrapped, or
  // this case would test the one above again.
  const auto* code = reinterpret_cast<const uint8_t*>(&sleepInShrinkWrappedFrame);
  const size_t start = std::memcmp(code, "\xf3\x0f\x1e\xfa", 4) == 0 ? 4 : 0;  // endbr64
  REQUIRE(code[start] != 0x55);  // push %rbp
#endif
  checkAsleepWalkIsBacktrace(sleepInShrinkWrappedFrame);
}

TEST_CASE("cfiUnwindAsleep: a frame that needs rbp and moved rsp since its prologue (alloca) gives up (0)") {
  SECTION("before its first call") {
    Sleeper s;
    CHECK(walkWhileAsleep(sleepBelowAllocaFrame, StackReader{readOwnMemory, nullptr}, s).empty());
  }
  SECTION("after a call") {
    Sleeper s;
    CHECK(walkWhileAsleep(sleepBelowAllocaAfterCall, StackReader{readOwnMemory, nullptr}, s).empty());
  }
}

TEST_CASE("cfiUnwindAsleep: a read that fails gives up (0) rather than return part of the stack") {
  Sleeper s;
  CHECK(walkWhileAsleep(sleepAfterBacktrace, StackReader{failEveryRead, nullptr}, s).empty());
}

}  // namespace
