// The agent is a polite guest: the host's output, exceptions, signals and exported symbols are unchanged.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "proc/process.h"
#include "proc/task.h"
#include "protocol/protocol.h"
#include "raw_client.h"
#include "subprocess.h"

using namespace cppops;
using namespace cppops::test;

namespace {

struct GuestRun {
  std::string out;
  std::string err;
  int status = -1;
  bool had_agent = false;
};

GuestRun runGuest(bool preload) {
  TempDir dir;
  TargetProcess t({"polite_guest", {}, preload, {}, {}}, dir.path());
  GuestRun run;
  REQUIRE(t.waitForOutput("waiting for SIGTERM"));
  run.had_agent = !t.waitForSocket(preload ? 5000ms : 100ms).empty();
  t.kill(SIGTERM);
  auto status = t.wait();
  REQUIRE(status);
  run.status = *status;
  run.out = t.out();
  run.err = t.err();
  return run;
}

std::string taskStatus(pid_t pid, pid_t tid) {
  return proc::readFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status").value_or("");
}

uint64_t statusNumber(const std::string& status, const std::string& key, int base = 10) {
  size_t at = status.find(key);
  return at == std::string::npos ? ~0ull : std::stoull(status.substr(at + key.size()), nullptr, base);
}

std::vector<pid_t> tasksNamed(pid_t pid, const std::string& name) {
  std::vector<pid_t> named;
  for (pid_t tid : proc::listTasks(pid))
    if (proc::readFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm").value_or("") ==
        name + "\n")
      named.push_back(tid);
  return named;
}

// A thread names itself once it runs: look for it a while.
pid_t waitForTaskNamed(pid_t pid, const std::string& name) {
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (auto named = tasksNamed(pid, name); !named.empty()) return named.front();
    std::this_thread::sleep_for(10ms);
  }
  return 0;
}

void checkBlocksHostSignals(const std::string& status) {
  const uint64_t blocked = statusNumber(status, "SigBlk:\t", 16);
  CHECK((blocked & (1ull << (SIGTERM - 1))) != 0);
  CHECK((blocked & (1ull << (SIGUSR1 - 1))) != 0);
  CHECK((blocked & (1ull << (SIGINT - 1))) != 0);
}

}  // namespace

TEST_CASE("exceptions and the host's SIGTERM/SIGUSR1 handlers behave identically with the agent preloaded") {
  GuestRun without = runGuest(false);
  GuestRun with = runGuest(true);
  CHECK_FALSE(without.had_agent);
  CHECK(with.had_agent);
  CHECK(with.out == without.out);
  CHECK(with.err == without.err);
  CHECK(with.status == without.status);
  CHECK(WIFEXITED(with.status));
  CHECK(WEXITSTATUS(with.status) == 0);
  CHECK(with.out.find("caught 'deep failure' from depth 17") != std::string::npos);
  CHECK(with.out.find("usr1 handled 2 times") != std::string::npos);
  CHECK(with.out.find("SIGTERM handled") != std::string::npos);
}

TEST_CASE("the shared agent exports only its public C API and the entry points it interposes") {
  auto nm = runProgram({"/usr/bin/nm", "-D", "--defined-only", agentLibraryPath()}, {});
  REQUIRE(nm.exit_code == 0);
  // The heap profiler's entry points (agent/heap/hooks.cpp): the C allocator (not malloc_usable_size, whose answer
  // the allocator's own is), the sized frees of jemalloc, tcmalloc and C23, and every replaceable operator new and
  // delete, exactly these.
  std::set<std::string> allocator{"malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "aligned_alloc",
                                  "posix_memalign", "valloc", "pvalloc", "sdallocx", "free_sized", "free_aligned_sized", "tc_free_sized", "tc_delete_sized", "tc_deletearray_sized",
                                  "tc_delete_sized_aligned", "tc_deletearray_sized_aligned",
                                  "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
                                  "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
                                  "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm",
                                  "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t",
                                  "_ZdaPvmSt11align_val_t", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
                                  "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t"};
  std::istringstream lines(nm.out);
  std::string line;
  int api = 0;
  std::set<std::string> interposed;
  while (std::getline(lines, line)) {
    std::string symbol = line.substr(line.rfind(' ') + 1);
    INFO("exported: " << line);
    if (symbol.rfind("cppops_agent_", 0) == 0) {
      ++api;
      continue;
    }
    // pthread_create is interposed on purpose, to count thread creations (agent/metrics/thread_interpose.cpp).
    if (symbol == "pthread_create") continue;
    CHECK(allocator.count(symbol) == 1);
    interposed.insert(symbol);
  }
  CHECK(api == 11);
  CHECK(interposed == allocator);
}

TEST_CASE("the agent's thread blocks the host's signals and sleeps without periodic wake-ups") {
  TempDir dir;
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir.path());
  const std::string socket = t.waitForSocket();
  REQUIRE_FALSE(socket.empty());
  // The socket is listening before the agent's thread has started and named itself.
  const pid_t agent_tid = waitForTaskNamed(t.pid(), "cppops-agent");
  REQUIRE(agent_tid != 0);
  std::string status = taskStatus(t.pid(), agent_tid);
  checkBlocksHostSignals(status);

  // Idle means asleep in the kernel: the context-switch count does not move while nobody talks to it. Counted
  // from the first sleep after a served request: before its first poll the thread may still block while starting.
  {
    RawClient hello(socket);
    REQUIRE(hello.sendFrame(static_cast<uint16_t>(protocol::Command::kHello), {}));
    REQUIRE(hello.receive());
  }
  for (int attempt = 0; attempt < 500; ++attempt) {
    status = taskStatus(t.pid(), agent_tid);
    if (status.find("State:\tS (sleeping)") != std::string::npos) break;
    std::this_thread::sleep_for(1ms);
  }
  uint64_t before = statusNumber(status, "voluntary_ctxt_switches:\t");
  std::this_thread::sleep_for(1500ms);
  status = taskStatus(t.pid(), agent_tid);
  CHECK(statusNumber(status, "voluntary_ctxt_switches:\t") == before);
  CHECK(status.find("State:\tS (sleeping)") != std::string::npos);
}

TEST_CASE("the heap sampler's thread lives while sampling is on, blocks the host's signals and is no part of a stack dump") {
  TempDir dir;
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE_FALSE(t.waitForSocket().empty());
  CHECK(tasksNamed(t.pid(), "cppops-heap").empty());
  const std::string pid = std::to_string(t.pid());
  auto heap = [&](const char* switch_) {
    auto r = runCli({"profile", pid, "--heap", switch_, "--format", "top"}, dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  };
  // After each session the process has the threads it had before it: the thread ends with its session.
  auto waitUntilGone = [&] {
    for (int attempt = 0; attempt < 500 && !tasksNamed(t.pid(), "cppops-heap").empty(); ++attempt)
      std::this_thread::sleep_for(10ms);
    return tasksNamed(t.pid(), "cppops-heap").empty();
  };
  for (int session = 0; session < 3; ++session) {
    heap("--start");
    REQUIRE(waitForTaskNamed(t.pid(), "cppops-heap") != 0);
    heap("--stop");
    CHECK(waitUntilGone());
  }
  heap("--start");
  const pid_t heap_tid = waitForTaskNamed(t.pid(), "cppops-heap");
  REQUIRE(heap_tid != 0);
  CHECK(tasksNamed(t.pid(), "cppops-heap").size() == 1);
  std::string status;
  for (int attempt = 0; attempt < 500; ++attempt) {
    status = taskStatus(t.pid(), heap_tid);
    if (status.find("State:\tS (sleeping)") != std::string::npos) break;
    std::this_thread::sleep_for(1ms);
  }
  CHECK(status.find("State:\tS (sleeping)") != std::string::npos);
  checkBlocksHostSignals(status);

  // Not the program's thread: a stack dump leaves it out, as it leaves out the control thread, and never sends it
  // the dump's signal (which it blocks, so the signal would stay queued for good).
  auto dump = runCli({"stack", pid, "--json"}, dir.path());
  INFO(dump.err);
  REQUIRE(dump.exit_code == 0);
  const nlohmann::json parsed = nlohmann::json::parse(dump.out);
  std::set<pid_t> dumped;
  for (const auto& thread : parsed.at("threads")) dumped.insert(thread.at("tid").get<pid_t>());
  CHECK(dumped.count(t.pid()) == 1);
  CHECK(dumped.count(heap_tid) == 0);
  CHECK(dumped.count(waitForTaskNamed(t.pid(), "cppops-agent")) == 0);
  CHECK(statusNumber(taskStatus(t.pid(), heap_tid), "SigPnd:\t", 16) == 0);

  heap("--stop");
  CHECK(waitUntilGone());

  // Sampling from start-up starts it from the host's own thread, in the agent's constructor.
  TargetProcess from_start({"plain_target", {}, true, {{"CPPOPS_HEAP_PROFILE", "4096"}}, {}}, dir.path());
  REQUIRE_FALSE(from_start.waitForSocket().empty());
  const pid_t from_start_tid = waitForTaskNamed(from_start.pid(), "cppops-heap");
  REQUIRE(from_start_tid != 0);
  checkBlocksHostSignals(taskStatus(from_start.pid(), from_start_tid));
}
