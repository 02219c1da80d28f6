// Stack analysis as a pure function of its inputs: RawDumps are made up here, frames come from a made-up program
// instead of a symbolizer, and the target pid does not exist, so every /proc read about it fails as it does for a
// process that is gone. One test parks a real thread to check the kernel facts that analysis reads itself.
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "proc/task.h"
#include "stack/analyze.h"
#include "stack/model.h"
#include "stack/render.h"

namespace cppops::stack {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

// Above PID_MAX_LIMIT, so no process ever has it.
constexpr pid_t kNoSuchPid = 99999999;

// The made-up program: each pc is one function, as a symbolizer would name it.
constexpr uint64_t kFutexWaitCommon = 0x1000;
constexpr uint64_t kLllLockWait = 0x1100;
constexpr uint64_t kMutexLock = 0x1200;
constexpr uint64_t kMutexLockFull = 0x1300;
constexpr uint64_t kLllLockWaitPrivate = 0x1400;
constexpr uint64_t kRwlockRdlock = 0x1500;
constexpr uint64_t kRwlockWrlockFull = 0x1600;
constexpr uint64_t kCondWait = 0x1700;
constexpr uint64_t kCxxCondWait = 0x1800;
constexpr uint64_t kSemWaitSlow = 0x1900;
constexpr uint64_t kPlatformWait = 0x1a00;
constexpr uint64_t kHandleRequest = 0x2000;
constexpr uint64_t kWorkerMain = 0x2100;
constexpr uint64_t kTicker = 0x2200;
constexpr uint64_t kInlinedLock = 0x3000;  // std::mutex::lock inlined into handleRequest()
constexpr uint64_t kUnknownPc = 0x7f0000001234;

const std::map<uint64_t, std::string> kFunctions = {
    {kFutexWaitCommon, "__futex_abstimed_wait_common"},
    {kLllLockWait, "__lll_lock_wait"},
    {kMutexLock, "___pthread_mutex_lock@@GLIBC_2.2.5"},
    {kMutexLockFull, "__pthread_mutex_lock_full"},
    {kLllLockWaitPrivate, "__GI___lll_lock_wait_private"},
    {kRwlockRdlock, "___pthread_rwlock_rdlock"},
    {kRwlockWrlockFull, "__pthread_rwlock_wrlock_full64"},
    {kCondWait, "pthread_cond_wait@@GLIBC_2.3.2"},
    {kCxxCondWait, "void std::condition_variable::wait<main::{lambda()#1}>(std::unique_lock<std::mutex>&, "
                   "main::{lambda()#1})"},
    {kSemWaitSlow, "__new_sem_wait_slow64.constprop.0"},
    {kPlatformWait, "void std::__detail::__platform_wait<int>(int const*, int)"},
    {kHandleRequest, "(anonymous namespace)::handleRequest()"},
    {kWorkerMain, "worker(int)"},
    {kTicker, "ticker()"},
};

SourceFrame sourceFrame(uint64_t pc, std::string function, int line, bool inlined = false) {
  SourceFrame frame;
  frame.address = pc;
  frame.function = std::move(function);
  frame.file = "/src/service/demo_service.cpp";
  frame.line = line;
  frame.module = "/usr/bin/demo_service";
  frame.module_offset = pc;
  frame.inlined = inlined;
  return frame;
}

std::vector<SourceFrame> fakeSymbolize(uint64_t pc, bool /*is_return_address*/) {
  if (pc == kInlinedLock) {
    return {sourceFrame(pc, "std::mutex::lock()", 12, true), sourceFrame(pc, "handleRequest()", 25)};
  }
  auto function = kFunctions.find(pc);
  if (function == kFunctions.end()) return {};
  return {sourceFrame(pc, function->second, static_cast<int>(pc % 97) + 1)};
}

// Bytes of target memory starting at `start`, zero unless set.
struct LockWindow {
  uint64_t start = 0;
  std::vector<uint8_t> bytes = std::vector<uint8_t>(64);

  LockWindow& set(uint64_t address, uint32_t value) {
    std::memcpy(bytes.data() + (address - start), &value, sizeof(value));
    return *this;
  }
};

// Blocked in futex(uaddr, op | FUTEX_PRIVATE_FLAG, 2, ...), as /proc/PID/task/TID/syscall shows it.
std::string futexLine(uint64_t uaddr, int op) {
  return fmt::format("{} {:#x} {:#x} 0x2 0x0 0x0 0x0 0x7ffc0000f000 0x7f00000a1b2c", SYS_futex, uaddr,
                     op | FUTEX_PRIVATE_FLAG);
}

RawThread lockWaiter(pid_t tid, uint64_t uaddr, std::vector<uint64_t> pcs, const LockWindow& window,
                     int op = FUTEX_WAIT) {
  RawThread thread;
  thread.tid = tid;
  thread.pcs = std::move(pcs);
  thread.syscall_line = futexLine(uaddr, op);
  thread.lock_window_address = window.start;
  thread.lock_window = window.bytes;
  return thread;
}

RawThread sleeper(pid_t tid, std::vector<uint64_t> pcs = {kTicker}) {
  RawThread thread;
  thread.tid = tid;
  thread.pcs = std::move(pcs);
  thread.syscall_line = fmt::format("{} 0x1 0x0 0x7ffc0000f100 0x0 0x0 0x0 0x7ffc0000f000 0x7f1", SYS_clock_nanosleep);
  return thread;
}

// A thread of `tid` blocked in pthread_mutex_lock on the mutex at `mutex`, which `owner` holds.
RawThread mutexWaiter(pid_t tid, uint64_t mutex, pid_t owner, uint64_t caller = kHandleRequest) {
  LockWindow window{mutex};
  window.set(mutex + 8, static_cast<uint32_t>(owner));
  return lockWaiter(tid, mutex, {kFutexWaitCommon, kLllLockWait, kMutexLock, caller, kWorkerMain}, window);
}

RawDump dumpOf(std::vector<RawThread> threads) {
  RawDump raw;
  raw.pid = kNoSuchPid;
  raw.source = "agent";
  raw.threads = std::move(threads);
  raw.total_ns = 3'200'000;
  raw.max_pause_ns = 45'000;
  raw.read_asleep = 8;
  return raw;
}

// Every thread a sleeping "worker"; tests change what they need.
std::map<pid_t, proc::TaskStat> statsOf(const RawDump& raw) {
  std::map<pid_t, proc::TaskStat> stats;
  for (const RawThread& thread : raw.threads) {
    proc::TaskStat stat;
    stat.tid = thread.tid;
    stat.name = "worker";
    stat.state = 'S';
    stats[thread.tid] = stat;
  }
  return stats;
}

StackDump analyzeFake(const RawDump& raw) { return analyze(raw, statsOf(raw), fakeSymbolize, 0); }

// A copy, so that it outlives the dump: threadOf(analyzeFake(raw), tid) is handy.
Thread threadOf(const StackDump& dump, pid_t tid) {
  auto thread = std::find_if(dump.threads.begin(), dump.threads.end(), [&](const Thread& t) { return t.tid == tid; });
  REQUIRE(thread != dump.threads.end());
  return *thread;
}

std::vector<std::vector<pid_t>> deadlockTids(const StackDump& dump) {
  std::vector<std::vector<pid_t>> cycles;
  for (const Deadlock& deadlock : dump.deadlocks) cycles.push_back(deadlock.tids);
  return cycles;
}

std::vector<size_t> groupSizes(const StackDump& dump) {
  std::vector<size_t> sizes;
  for (const Group& group : dump.groups) sizes.push_back(group.members.size());
  return sizes;
}

TEST_CASE("state names round-trip", "[stack]") {
  for (int i = 0; i <= static_cast<int>(ThreadState::kUnknown); ++i) {
    auto state = static_cast<ThreadState>(i);
    REQUIRE(stateFromName(stateName(state)) == state);
  }
  REQUIRE(std::string(stateName(ThreadState::kCondition)) == "condvar");
  REQUIRE_FALSE(stateFromName("blocked").has_value());
}

TEST_CASE("frames: innermost first, inlined frames expanded, frame 0 exact", "[stack]") {
  std::vector<bool> return_flags;
  FrameSource frames = [&](uint64_t pc, bool is_return_address) {
    return_flags.push_back(is_return_address);
    return fakeSymbolize(pc, is_return_address);
  };
  RawThread thread = sleeper(1, {kTicker, kInlinedLock, kUnknownPc});
  StackDump dump = analyze(dumpOf({thread}), {}, frames, 0);
  const Thread& analyzed = dump.threads.at(0);
  REQUIRE(return_flags == std::vector<bool>{false, true, true});
  REQUIRE(analyzed.frames.size() == 4);
  REQUIRE(analyzed.frames[0].function == "ticker()");
  REQUIRE(analyzed.frames[1].function == "std::mutex::lock()");
  REQUIRE(analyzed.frames[1].inlined);
  REQUIRE(analyzed.frames[2].function == "handleRequest()");
  REQUIRE(analyzed.frames[3].function.empty());  // unknown to the symbolizer: kept as a bare address
  REQUIRE(analyzed.frames[3].address == kUnknownPc);
  REQUIRE(analyzed.kernel_state == '?');  // no stat for it
  REQUIRE(analyzed.state == ThreadState::kSleep);
  REQUIRE(analyzed.syscall == "clock_nanosleep");
}

TEST_CASE("without a symbolizer frames are bare addresses", "[stack]") {
  RawDump raw = dumpOf({sleeper(7, {0x10, 0x20}), sleeper(8, {0x10, 0x30})});
  StackDump dump = analyze(raw, statsOf(raw), nullptr, 0);
  Thread thread = threadOf(dump, 7);
  REQUIRE(thread.frames.size() == 2);
  REQUIRE(thread.frames[1].address == 0x20);
  REQUIRE(thread.frames[1].module.empty());
  REQUIRE(thread.frames[1].function.empty());
  // Different addresses are different stacks, even with nothing else known.
  REQUIRE(groupSizes(dump) == std::vector<size_t>{1, 1});
}

TEST_CASE("mutex owner is read from the lock window", "[stack]") {
  RawDump raw = dumpOf({mutexWaiter(101, 0x5000, 102), sleeper(102)});
  StackDump dump = analyzeFake(raw);
  Thread waiter = threadOf(dump, 101);
  REQUIRE(waiter.state == ThreadState::kMutex);
  REQUIRE(waiter.owner_tid == 102);
  REQUIRE(waiter.wait == "mutex 0x5000");
  REQUIRE(waiter.syscall == "futex");
  REQUIRE(dump.deadlocks.empty());
}

TEST_CASE("a window too short for the owner field leaves the owner unknown", "[stack]") {
  LockWindow window{0x5000};
  window.bytes.resize(10);  // __owner would be at +8..+12
  RawThread waiter = lockWaiter(101, 0x5000, {kLllLockWait, kMutexLock}, window);
  Thread thread = analyzeFake(dumpOf({waiter})).threads.at(0);
  REQUIRE(thread.state == ThreadState::kMutex);
  REQUIRE_FALSE(thread.owner_tid.has_value());
}

TEST_CASE("PI mutex owner is the futex word's tid", "[stack]") {
  LockWindow window{0x6000};
  window.set(0x6000, FUTEX_WAITERS | 103);
  window.set(0x6008, 999);  // __owner is not what a PI futex is decided by
  SECTION("with a stack") {
    RawDump raw = dumpOf({lockWaiter(104, 0x6000, {kMutexLockFull}, window, FUTEX_LOCK_PI), sleeper(103)});
    Thread thread = threadOf(analyzeFake(raw), 104);
    REQUIRE(thread.state == ThreadState::kMutex);
    REQUIRE(thread.owner_tid == 103);
  }
  SECTION("without one: only mutexes use PI futexes") {
    RawDump raw = dumpOf({lockWaiter(104, 0x6000, {}, window, FUTEX_LOCK_PI2), sleeper(103)});
    Thread thread = threadOf(analyzeFake(raw), 104);
    REQUIRE(thread.state == ThreadState::kMutex);
    REQUIRE(thread.owner_tid == 103);
    REQUIRE(thread.wait == "mutex 0x6000");
  }
}

TEST_CASE("an owner that is gone makes an abandoned lock", "[stack]") {
  RawDump raw = dumpOf({mutexWaiter(101, 0x5000, 30001)});
  Thread thread = threadOf(analyzeFake(raw), 101);
  REQUIRE(thread.owner_tid == 30001);
  REQUIRE(thread.wait == "mutex 0x5000 (owner thread 30001 has exited: the lock was abandoned)");
}

TEST_CASE("glibc internal locks have no owner field", "[stack]") {
  LockWindow window{0x5000};
  window.set(0x5008, 102);  // stdio keeps a pointer there, malloc something else: not a tid
  RawDump raw = dumpOf({lockWaiter(101, 0x5000, {kLllLockWaitPrivate, kHandleRequest}, window), sleeper(102)});
  Thread thread = threadOf(analyzeFake(raw), 101);
  REQUIRE(thread.state == ThreadState::kMutex);
  REQUIRE_FALSE(thread.owner_tid.has_value());
}

TEST_CASE("rwlock writer owner from either futex a writer sleeps on", "[stack]") {
  constexpr uint64_t kBase = 0x7000;
  LockWindow window{kBase - 16};
  window.set(kBase + 24, 201);  // __cur_writer
  SECTION("__writers_futex, another writer holds it") {
    RawDump raw = dumpOf({lockWaiter(202, kBase + 12, {kRwlockWrlockFull}, window), sleeper(201)});
    Thread thread = threadOf(analyzeFake(raw), 202);
    REQUIRE(thread.state == ThreadState::kRwlockWrite);
    REQUIRE(thread.owner_tid == 201);
    REQUIRE(thread.wait == "rwlock 0x7000");
  }
  SECTION("__wrphase_futex") {
    RawDump raw = dumpOf({lockWaiter(202, kBase + 8, {kRwlockWrlockFull}, window), sleeper(201)});
    Thread thread = threadOf(analyzeFake(raw), 202);
    REQUIRE(thread.state == ThreadState::kRwlockWrite);
    REQUIRE(thread.owner_tid == 201);
    REQUIRE(thread.wait == "rwlock 0x7000");
  }
  SECTION("a reader on __wrphase_futex") {
    RawDump raw = dumpOf({lockWaiter(203, kBase + 8, {kFutexWaitCommon, kRwlockRdlock}, window), sleeper(201)});
    Thread thread = threadOf(analyzeFake(raw), 203);
    REQUIRE(thread.state == ThreadState::kRwlockRead);
    REQUIRE(thread.owner_tid == 201);
    REQUIRE(thread.wait == "rwlock 0x7000");
  }
  SECTION("a __cur_writer that is not one of our threads is not trusted") {
    RawDump raw = dumpOf({lockWaiter(202, kBase + 12, {kRwlockWrlockFull}, window)});
    REQUIRE_FALSE(threadOf(analyzeFake(raw), 202).owner_tid.has_value());
  }
}

TEST_CASE("rwlock writer held off by readers", "[stack]") {
  constexpr uint64_t kBase = 0x7000;
  LockWindow window{kBase - 16};
  window.set(kBase, (2u << 3) | 0x2);  // two readers, WRLOCKED
  SECTION("a writer waits for the readers to drain") {
    RawDump raw = dumpOf({lockWaiter(202, kBase + 8, {kRwlockWrlockFull}, window)});
    Thread thread = threadOf(analyzeFake(raw), 202);
    REQUIRE(thread.state == ThreadState::kRwlockWrite);
    REQUIRE(thread.held_by_readers);
    REQUIRE_FALSE(thread.owner_tid.has_value());
    REQUIRE(thread.wait == "rwlock 0x7000");
  }
  SECTION("a waiting reader has counted itself: not held by readers") {
    RawDump raw = dumpOf({lockWaiter(203, kBase + 8, {kRwlockRdlock}, window)});
    REQUIRE_FALSE(threadOf(analyzeFake(raw), 203).held_by_readers);
  }
}

TEST_CASE("futex waits are told apart by the functions on the stack", "[stack]") {
  LockWindow window{0x8000};
  auto stateFor = [&](std::vector<uint64_t> pcs) {
    return analyzeFake(dumpOf({lockWaiter(1, 0x8000, std::move(pcs), window)})).threads.at(0);
  };
  Thread condvar = stateFor({kFutexWaitCommon, kCondWait, kWorkerMain});
  REQUIRE(condvar.state == ThreadState::kCondition);
  REQUIRE(condvar.wait == "condition variable 0x8000");
  REQUIRE(stateFor({kFutexWaitCommon, kCxxCondWait}).state == ThreadState::kCondition);
  REQUIRE(stateFor({kSemWaitSlow}).state == ThreadState::kSemaphore);
  Thread atomic = stateFor({kPlatformWait, kWorkerMain});
  REQUIRE(atomic.state == ThreadState::kAtomicWait);
  REQUIRE(atomic.wait == "futex 0x8000");
  REQUIRE(stateFor({}).state == ThreadState::kAtomicWait);
  // A condition variable re-taking its mutex waits for the mutex: the innermost match decides.
  REQUIRE(stateFor({kLllLockWait, kCondWait}).state == ThreadState::kMutex);
}

TEST_CASE("kernel facts classify threads outside futexes", "[stack]") {
  RawThread running;
  running.tid = 1;
  running.syscall_line = "running";
  RawThread reader;
  reader.tid = 2;
  reader.syscall_line = "0 0x5 0x7ffc0000e000 0x40 0x0 0x0 0x0 0x7ffc0000f000 0x7f1";
  RawThread other;
  other.tid = 3;
  other.syscall_line = "16 0x9 0x5401 0x0 0x0 0x0 0x0 0x7ffc0000f000 0x7f1";  // ioctl
  RawThread stopped = sleeper(4);
  RawThread zombie;
  zombie.tid = 5;
  RawDump raw = dumpOf({running, reader, other, stopped, zombie});
  auto stats = statsOf(raw);
  stats[4].state = 't';
  stats[5].state = 'Z';
  StackDump dump = analyze(raw, stats, fakeSymbolize, 0);
  REQUIRE(threadOf(dump, 1).state == ThreadState::kRunning);
  REQUIRE(threadOf(dump, 2).state == ThreadState::kRead);
  REQUIRE(threadOf(dump, 2).wait == "fd 5");  // the process is gone, so nothing more to say about the fd
  REQUIRE(threadOf(dump, 3).state == ThreadState::kSyscall);
  REQUIRE(threadOf(dump, 3).syscall == "ioctl");
  REQUIRE(threadOf(dump, 4).state == ThreadState::kStopped);
  REQUIRE(threadOf(dump, 5).state == ThreadState::kZombie);
}

TEST_CASE("threads without frames say why", "[stack]") {
  RawThread no_answer = sleeper(1, {});
  no_answer.status = CaptureStatus::kNoAnswer;
  RawThread stopped = no_answer;
  stopped.tid = 2;
  RawThread exited;
  exited.tid = 3;
  exited.status = CaptureStatus::kExited;
  RawThread not_requested = sleeper(4, {});
  not_requested.status = CaptureStatus::kNotRequested;
  RawDump raw = dumpOf({no_answer, stopped, exited, not_requested});
  auto stats = statsOf(raw);
  stats[2].state = 'T';
  StackDump dump = analyze(raw, stats, fakeSymbolize, 40);
  REQUIRE(threadOf(dump, 1).no_stack_reason == "did not answer within the deadline");
  REQUIRE(threadOf(dump, 2).no_stack_reason == "stopped");
  REQUIRE(threadOf(dump, 3).no_stack_reason == "exited during the capture");
  REQUIRE(threadOf(dump, 4).no_stack_reason == "stack not captured: no signal was sent (see the notes)");
  REQUIRE(threadOf(dump, 4).state == ThreadState::kSleep);  // kernel facts still classify it
}

TEST_CASE("a two-thread deadlock", "[stack]") {
  RawDump raw = dumpOf({mutexWaiter(301, 0x5100, 300), mutexWaiter(300, 0x5000, 301), sleeper(302)});
  StackDump dump = analyzeFake(raw);
  REQUIRE(deadlockTids(dump) == std::vector<std::vector<pid_t>>{{300, 301}});
  REQUIRE(dump.threads.front().tid == 300);  // ascending, whatever order the source delivered
}

TEST_CASE("deadlocks of three threads and of one, each found once and rotated to its smallest tid", "[stack]") {
  RawDump raw = dumpOf({
      mutexWaiter(402, 0xa000, 401),
      mutexWaiter(403, 0xa100, 402),
      mutexWaiter(401, 0xa200, 403),
      mutexWaiter(404, 0xa300, 402),  // waits on the cycle without being part of it
      mutexWaiter(399, 0xa400, 399),  // re-locks its own non-recursive mutex
  });
  StackDump dump = analyzeFake(raw);
  REQUIRE(deadlockTids(dump) == std::vector<std::vector<pid_t>>{{399}, {401, 403, 402}});
}

TEST_CASE("a chain of waiters ending at a thread that waits for nothing is no deadlock", "[stack]") {
  RawDump raw = dumpOf({mutexWaiter(500, 0x5000, 501), sleeper(501), mutexWaiter(502, 0x5100, 500)});
  StackDump dump = analyzeFake(raw);
  REQUIRE(dump.deadlocks.empty());
  REQUIRE(threadOf(dump, 502).owner_tid == 500);
}

// Five workers waiting for a mutex held by a sixth, which runs on the same stack; two tickers; two threads that did
// not answer.
RawDump mixedDump() {
  std::vector<RawThread> threads;
  for (pid_t tid = 10; tid < 15; ++tid) threads.push_back(mutexWaiter(tid, 0x5000, 30));
  threads.push_back(sleeper(21));
  threads.push_back(sleeper(20));
  for (pid_t tid : {40, 41}) {
    RawThread silent = sleeper(tid, {});
    silent.status = CaptureStatus::kNoAnswer;
    threads.push_back(silent);
  }
  RawThread running = mutexWaiter(30, 0x5000, 0);
  running.syscall_line = "running";
  threads.push_back(running);
  return dumpOf(threads);
}

TEST_CASE("identical stacks in the same state are grouped, largest first", "[stack]") {
  StackDump dump = analyzeFake(mixedDump());
  REQUIRE(groupSizes(dump) == std::vector<size_t>{5, 2, 2, 1});
  REQUIRE(dump.groups[0].state == ThreadState::kMutex);
  REQUIRE(dump.threads[dump.groups[0].members.front()].tid == 10);
  // Equal sizes: the smaller first tid first.
  REQUIRE(dump.groups[1].state == ThreadState::kSleep);
  REQUIRE(dump.threads[dump.groups[1].members.front()].tid == 20);
  REQUIRE(dump.groups[2].state == ThreadState::kSleep);  // no frames, grouped by reason
  REQUIRE(dump.threads[dump.groups[2].members.front()].tid == 40);
  REQUIRE(dump.groups[3].state == ThreadState::kRunning);  // same stack as the workers, another state
}

TEST_CASE("notes and cost come from the source", "[stack]") {
  RawDump raw = dumpOf({sleeper(1)});
  raw.notes = {"signal 40 taken over by the host"};
  StackDump dump = analyze(raw, {}, nullptr, 40);
  REQUIRE(dump.notes == raw.notes);
  REQUIRE(dump.cost.capture_ns == 3'200'000);
  REQUIRE(dump.cost.max_pause_ns == 45'000);
  REQUIRE(dump.cost.total_ns == 0);  // the caller's to fill in
}

TEST_CASE("every thread on its own", "[stack][render]") {
  StackDump dump = analyzeFake(mixedDump());
  RenderOptions options;
  options.every_thread = true;
  std::string text = renderText(dump, options);
  INFO(text);
  REQUIRE_THAT(text, Contains("\nthread 10 \"worker\"  mutex (owner 30)  [mutex 0x5000]\n"
                              "    #0  __futex_abstimed_wait_common  demo_service.cpp:"));
  REQUIRE_THAT(text, Contains("\nthread 41 \"worker\"  sleep\n    (no stack: did not answer within the deadline)\n"));
  REQUIRE(text.find("threads  ") == std::string::npos);
}

StackDump deadlockedMixedDump() {
  RawDump raw = mixedDump();
  raw.threads.push_back(mutexWaiter(300, 0x6000, 301, kInlinedLock));
  raw.threads.push_back(mutexWaiter(301, 0x6100, 300, kInlinedLock));
  raw.notes = {"no debug info for /usr/bin/demo_service"};
  auto stats = statsOf(raw);
  stats[20].name = stats[21].name = "ticker";
  StackDump dump = analyze(raw, stats, fakeSymbolize, 0);
  dump.cost.total_ns = 5'000'000;
  return dump;
}

TEST_CASE("text view", "[stack][render]") {
  std::string text = renderText(deadlockedMixedDump(), {});
  INFO(text);
  REQUIRE_THAT(text, StartsWith("process 99999999: 12 threads, via agent in 3.2 ms "
                                "(longest thread pause 45 us, 8 read asleep)\n"
                                "states: 7 mutex, 4 sleep, 1 running\n"));
  REQUIRE_THAT(text, Contains("Found 1 deadlock:\n"));
  REQUIRE_THAT(text, Contains("\nthread 300 \"worker\" waits for mutex 0x6000 held by thread 301 \"worker\"\n"
                              "    #0  __futex_abstimed_wait_common  demo_service.cpp:"));
  REQUIRE_THAT(text, Contains("\n5 threads  mutex (owner 30)  worker: 10, 11, 12 and 2 more  [mutex 0x5000]\n"));
  REQUIRE_THAT(text, Contains("\n2 threads  sleep  worker: 40, 41\n"
                              "    (no stack: did not answer within the deadline)\n"));
  REQUIRE_THAT(text, Contains("  (demo_service)\n"));
  REQUIRE_THAT(text, EndsWith("\nnote: no debug info for /usr/bin/demo_service\n"));
  REQUIRE(text.find("Found 1 deadlock") < text.find("5 threads"));
}

TEST_CASE("JSON view", "[stack][render]") {
  nlohmann::json json = nlohmann::json::parse(renderJson(deadlockedMixedDump(), {}));
  INFO(json.dump(2));
  REQUIRE(json["schema_version"] == 1);
  REQUIRE(json["pid"] == kNoSuchPid);
  REQUIRE(json["source"] == "agent");
  REQUIRE(json["threads"].size() == 12);

  const nlohmann::json& waiter = json["threads"][0];
  REQUIRE(waiter["tid"] == 10);
  REQUIRE(waiter["name"] == "worker");
  REQUIRE(waiter["state"] == "mutex");
  REQUIRE(waiter["kernel_state"] == "S");
  REQUIRE(waiter["owner_tid"] == 30);
  REQUIRE(waiter["wait"] == "mutex 0x5000");
  REQUIRE(waiter["syscall"] == "futex");
  REQUIRE(waiter["capture"] == "captured");
  REQUIRE_FALSE(waiter.contains("reason"));
  REQUIRE_FALSE(waiter.contains("held_by_readers"));
  REQUIRE(waiter["frames"].size() == 5);
  REQUIRE(waiter["frames"][0] == nlohmann::json{{"function", "__futex_abstimed_wait_common"},
                                                {"file", "/src/service/demo_service.cpp"},
                                                {"line", kFutexWaitCommon % 97 + 1},
                                                {"module", "/usr/bin/demo_service"},
                                                {"address", "0x1000"},
                                                {"inlined", false}});

  const nlohmann::json& running = json["threads"][7];
  REQUIRE(running["tid"] == 30);
  REQUIRE(running["state"] == "running");
  REQUIRE_FALSE(running.contains("owner_tid"));
  REQUIRE_FALSE(running.contains("wait"));
  REQUIRE_FALSE(running.contains("syscall"));

  const nlohmann::json& silent = json["threads"][8];
  REQUIRE(silent["tid"] == 40);
  REQUIRE(silent["capture"] == "no_answer");
  REQUIRE(silent["reason"] == "did not answer within the deadline");
  REQUIRE(silent["frames"] == nlohmann::json::array());

  REQUIRE(json["deadlocks"] == nlohmann::json::parse(R"([{"tids": [300, 301]}])"));
  REQUIRE(json["groups"][0] ==
          nlohmann::json::parse(R"({"count": 5, "state": "mutex", "tids": [10, 11, 12, 13, 14]})"));
  REQUIRE(json["groups"].size() == 5);
  REQUIRE(json["cost"] ==
          nlohmann::json::parse(
              R"({"total_ns": 5000000, "capture_ns": 3200000, "max_pause_ns": 45000, "read_asleep": 8})"));
  REQUIRE(json["notes"] == nlohmann::json::parse(R"(["no debug info for /usr/bin/demo_service"])"));
}

std::vector<pid_t> jsonTids(const nlohmann::json& threads) {
  std::vector<pid_t> tids;
  for (const nlohmann::json& thread : threads) tids.push_back(thread["tid"].get<pid_t>());
  return tids;
}

TEST_CASE("filters restrict threads and groups, never deadlocks", "[stack][render]") {
  StackDump dump = deadlockedMixedDump();
  Filter filter;
  SECTION("by state") {
    filter.states = {ThreadState::kSleep, ThreadState::kRunning};
    nlohmann::json json = nlohmann::json::parse(renderJson(dump, filter));
    REQUIRE(jsonTids(json["threads"]) == std::vector<pid_t>{20, 21, 30, 40, 41});
    REQUIRE(json["groups"].size() == 3);
    REQUIRE(json["deadlocks"].size() == 1);

    RenderOptions options;
    options.filter = filter;
    std::string text = renderText(dump, options);
    INFO(text);
    REQUIRE_THAT(text, Contains("\nstates: 4 sleep, 1 running (filtered from 12)\n"));
    REQUIRE_THAT(text, Contains("Found 1 deadlock:\n"));
    REQUIRE_THAT(text, Contains("\n2 threads  sleep  ticker: 20, 21\n"));
    REQUIRE(text.find("5 threads") == std::string::npos);
  }
  SECTION("by part of the name") {
    filter.name = "tick";
    REQUIRE(jsonTids(nlohmann::json::parse(renderJson(dump, filter))["threads"]) == std::vector<pid_t>{20, 21});
  }
  SECTION("by tid: groups shrink to the threads shown") {
    filter.tids = {12, 10, 30};
    nlohmann::json json = nlohmann::json::parse(renderJson(dump, filter));
    REQUIRE(jsonTids(json["threads"]) == std::vector<pid_t>{10, 12, 30});
    REQUIRE(json["groups"] == nlohmann::json::parse(R"([{"count": 2, "state": "mutex", "tids": [10, 12]},
                                                        {"count": 1, "state": "running", "tids": [30]}])"));
  }
  SECTION("nothing matches") {
    filter.name = "nobody";
    RenderOptions options;
    options.filter = filter;
    REQUIRE_THAT(renderText(dump, options), Contains("\nstates: none (filtered from 12)\n"));
    REQUIRE(nlohmann::json::parse(renderJson(dump, filter))["threads"].empty());
  }
}

// Keeps a thread of this process blocked in read() on a pipe, with `blocked_signal` blocked, until destroyed.
class ParkedReader {
 public:
  explicit ParkedReader(int blocked_signal) {
    REQUIRE(::pipe(fds_) == 0);
    thread_ = std::thread([this, blocked_signal] {
      sigset_t signals;
      sigemptyset(&signals);
      sigaddset(&signals, blocked_signal);
      pthread_sigmask(SIG_BLOCK, &signals, nullptr);
      tid_ = gettid();
      char byte = 0;
      [[maybe_unused]] ssize_t n = ::read(fds_[0], &byte, 1);
    });
  }
  ~ParkedReader() {
    [[maybe_unused]] ssize_t n = ::write(fds_[1], "x", 1);
    thread_.join();
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  int readFd() const { return fds_[0]; }

  // The thread's syscall line once it sits in read(), or "" if it never gets there.
  std::string syscallLineInRead() const {
    using namespace std::chrono_literals;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream file("/proc/self/task/" + std::to_string(tid_.load()) + "/syscall");
      std::string line;
      std::getline(file, line);
      if (tid_ != 0 && line.rfind(std::to_string(SYS_read) + " ", 0) == 0) return line;
      std::this_thread::sleep_for(1ms);
    }
    return {};
  }

  pid_t tid() const { return tid_; }

 private:
  int fds_[2] = {-1, -1};
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

TEST_CASE("a live thread: its fd described, its blocked stack signal named", "[stack]") {
  constexpr int kStackSignal = 40;
  ParkedReader reader(kStackSignal);
  std::string syscall_line = reader.syscallLineInRead();
  REQUIRE_FALSE(syscall_line.empty());

  RawDump raw;
  raw.pid = getpid();
  raw.source = "agent";
  RawThread thread;
  thread.tid = reader.tid();
  thread.status = CaptureStatus::kNoAnswer;
  thread.syscall_line = syscall_line;
  raw.threads.push_back(thread);
  Result<proc::TaskStat> stat = proc::readTaskStat(raw.pid, thread.tid);
  REQUIRE(stat.ok());

  // Blocked but not pending, as inside a handler: no evidence that the mask kept the dump out.
  StackDump dump = analyze(raw, {{thread.tid, *stat}}, nullptr, kStackSignal);
  REQUIRE(dump.threads.at(0).no_stack_reason == "did not answer within the deadline");

  // Sent, as a dump sends it, the signal stays pending.
  REQUIRE(::syscall(SYS_tgkill, getpid(), reader.tid(), kStackSignal) == 0);
  dump = analyze(raw, {{thread.tid, *stat}}, nullptr, kStackSignal);
  const Thread& analyzed = dump.threads.at(0);
  REQUIRE(analyzed.state == ThreadState::kRead);
  REQUIRE(analyzed.syscall == "read");
  REQUIRE_THAT(analyzed.wait, StartsWith("fd " + std::to_string(reader.readFd()) + ": pipe (inode "));
  REQUIRE(analyzed.no_stack_reason == "blocks signal 40, so it could not unwind itself");
}

TEST_CASE("a wait resumed through restart_syscall is named by the wrapper that made it", "[stack]") {
  // After a stop (ptrace, or a handler), the kernel resumes timed sleeps and futex waits through restart_syscall
  // with the original arguments still in the registers.
  auto restarted = [](RawThread thread) {
    thread.syscall_line.replace(0, thread.syscall_line.find(' '), std::to_string(SYS_restart_syscall));
    return thread;
  };
  RawDump raw = dumpOf({restarted(mutexWaiter(101, 0x5000, 102)), sleeper(102), restarted(sleeper(103))});
  StackDump dump = analyzeFake(raw);
  Thread waiter = threadOf(dump, 101);
  REQUIRE(waiter.state == ThreadState::kMutex);
  REQUIRE(waiter.owner_tid == 102);
  REQUIRE(waiter.wait == "mutex 0x5000");
  REQUIRE(waiter.syscall == "futex");
  // ticker() is no libc wrapper: the frames decide, not the arguments, so this stays what the kernel says.
  Thread unknown = threadOf(dump, 103);
  REQUIRE(unknown.syscall == "restart_syscall");
  REQUIRE(unknown.state == ThreadState::kSyscall);
}

}  // namespace
}  // namespace cppops::stack
