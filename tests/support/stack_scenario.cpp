#include "stack_scenario.h"

#include <catch2/catch.hpp>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace cppops::test {

using nlohmann::json;

namespace {

TargetOptions scenarioTarget(ScenarioAgent agent) {
  return {agent == ScenarioAgent::kLinked ? "stack_scenarios_linked" : "stack_scenarios",
          {},
          agent == ScenarioAgent::kPreload,
          // The deadlocks are the point here; TSan would otherwise stop the target for them.
          {{"TSAN_OPTIONS", "detect_deadlocks=0"}},
          {}};
}

}  // namespace

Scenario::Scenario(ScenarioAgent agent_kind) : agent(agent_kind), target(scenarioTarget(agent), dir.path()) {
  REQUIRE(target.waitForOutput("ready", 20s));
  if (agent != ScenarioAgent::kNone) REQUIRE_FALSE(target.waitForSocket().empty());
  tids = target.announcedTids();
}

const json& threadOf(const json& dump, pid_t tid) {
  for (const auto& t : dump.at("threads"))
    if (t.at("tid") == tid) return t;
  FAIL("thread " << tid << " is not in the dump");
  throw std::logic_error("unreachable");
}

bool hasFrame(const json& thread, const std::string& function, const std::string& file) {
  for (const auto& f : thread.at("frames")) {
    const std::string fn = f.value("function", "");
    const std::string path = f.value("file", "");
    if (fn.find(function) != std::string::npos && path.size() >= file.size() &&
        path.compare(path.size() - file.size(), file.size(), file) == 0)
      return true;
  }
  return false;
}

void checkThread(const json& dump, const Scenario& s, const std::string& role, const std::string& state,
                 const std::string& function, const std::string& owner_role) {
  INFO("role " << role << ": " << threadOf(dump, s.tids.at(role)).dump(1));
  const json& t = threadOf(dump, s.tids.at(role));
  CHECK(t.at("name") == role);
  CHECK(t.at("state") == state);
  if (!owner_role.empty()) {
    REQUIRE(t.contains("owner_tid"));
    CHECK(t.at("owner_tid") == s.tids.at(owner_role));
  }
  if (!function.empty()) CHECK(hasFrame(t, function));
}

std::set<std::set<pid_t>> deadlockSets(const json& dump) {
  std::set<std::set<pid_t>> out;
  for (const auto& d : dump.at("deadlocks")) out.insert(d.at("tids").get<std::set<pid_t>>());
  return out;
}

void checkScenarioDump(const json& dump, const Scenario& s) {
  CHECK(dump.at("schema_version") == 1);
  CHECK(dump.at("pid") == s.target.pid());

  checkThread(dump, s, "dl2-a", "mutex", "deadlockTwoA", "dl2-b");
  checkThread(dump, s, "dl2-b", "mutex", "deadlockTwoB", "dl2-a");
  checkThread(dump, s, "dl3-a", "mutex", "deadlockRing", "dl3-b");
  checkThread(dump, s, "dl3-b", "mutex", "deadlockRing", "dl3-c");
  checkThread(dump, s, "dl3-c", "mutex", "deadlockRing", "dl3-a");
  checkThread(dump, s, "waiter", "mutex", "waitForHeldMutex", "holder");
  checkThread(dump, s, "holder", "sleep", "holdWhileSleeping");
  checkThread(dump, s, "rec-waiter", "mutex", "waitForRecursiveMutex", "rec-holder");
  checkThread(dump, s, "timed-waiter", "mutex", "waitForTimedMutex", "rec-holder");
  checkThread(dump, s, "pi-waiter", "mutex", "waitForPiMutex", "pi-holder");
  checkThread(dump, s, "rw-reader", "rwlock_read", "readerWaits", "rw-writer");
  checkThread(dump, s, "rw-writer2", "rwlock_write", "writerWaits", "rw-writer");
  checkThread(dump, s, "condvar", "condvar", "waitOnCondition");
  checkThread(dump, s, "sleeper", "sleep", "sleepLong");
  checkThread(dump, s, "pipe-reader", "read", "readFromPipe");
  CHECK(threadOf(dump, s.tids.at("pipe-reader")).at("wait").get<std::string>().find("pipe") != std::string::npos);
  checkThread(dump, s, "epoller", "poll", "waitOnEpoll");
  checkThread(dump, s, "acceptor", "accept", "acceptConnection");
  CHECK(threadOf(dump, s.tids.at("acceptor")).at("wait").get<std::string>().find("LISTEN") != std::string::npos);
  checkThread(dump, s, "spinner", "running", "spinForever");

  CHECK(deadlockSets(dump) == std::set<std::set<pid_t>>{{s.tids.at("dl2-a"), s.tids.at("dl2-b")},
                                                         {s.tids.at("dl3-a"), s.tids.at("dl3-b"), s.tids.at("dl3-c")}});
  CHECK(dump.at("cost").at("max_pause_ns").get<uint64_t>() > 0);
  CHECK(dump.at("cost").at("capture_ns").get<uint64_t>() >= dump.at("cost").at("max_pause_ns").get<uint64_t>());
}

void checkOnlySpinnerHeld(const json& dump, const Scenario& s) {
  for (const json& t : dump.at("threads")) {
    INFO(t.dump(1));
    CHECK(t.at("capture") == "captured");
    if (t.at("tid") != s.tids.at("spinner")) CHECK(t.at("pause_ns") == 0);
  }
  CHECK(threadOf(dump, s.tids.at("spinner")).at("pause_ns").get<uint64_t>() > 0);
  CHECK(dump.at("cost").at("read_asleep") == dump.at("threads").size() - 1);
}

void checkNoSignalDump(const json& dump, const Scenario& s) {
  checkThread(dump, s, "waiter", "mutex", "waitForHeldMutex", "holder");
  checkThread(dump, s, "sleeper", "sleep", "sleepLong");
  CHECK(threadOf(dump, s.tids.at("waiter")).at("pause_ns") == 0);
  // The one thread that runs cannot be read where it is without interrupting it.
  const json& spinner = threadOf(dump, s.tids.at("spinner"));
  CHECK(spinner.at("capture") == "not_requested");
  CHECK(spinner.at("frames").empty());
  CHECK(spinner.at("state") == "running");
  CHECK(dump.at("cost").at("max_pause_ns") == 0);
  CHECK(dump.at("cost").at("read_asleep") == dump.at("threads").size() - 1);
}

TracedByTest::TracedByTest(pid_t tid, Hold hold) : tid_(tid) {
  REQUIRE(ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) == 0);
  if (hold == Hold::kStopped) stop();
}

TracedByTest::~TracedByTest() {
  if (!stopped_) stop();  // a tracee is detached from a ptrace stop only
  ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
}

void TracedByTest::stop() {
  REQUIRE(ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) == 0);
  int status = 0;
  REQUIRE(waitpid(tid_, &status, __WALL) == tid_);
  REQUIRE(WIFSTOPPED(status));
  stopped_ = true;
}

Uninterrupted::Uninterrupted(ScenarioAgent agent, std::vector<std::string> args, const std::string& program)
    : target({program, std::move(args), agent == ScenarioAgent::kPreload, {}, {}}, dir.path()) {
  REQUIRE(agent != ScenarioAgent::kLinked);  // the target has no linked build
  REQUIRE(target.waitForOutput("ready"));
  if (agent == ScenarioAgent::kPreload) REQUIRE_FALSE(target.waitForSocket().empty());
}

void checkNoWaitReturnedEarly(const Uninterrupted& u) {
  usleep(200'000);
  INFO(u.target.out());
  CHECK(u.target.out().find("returned early") == std::string::npos);
  CHECK(u.target.alive());
}


void checkUninterruptedDumps(ScenarioAgent agent, const std::string& source, const std::string& program) {
  // Each thread sleeps in a call that a signal handler makes return early with EINTR whatever SA_RESTART says
  // (pause, epoll_wait, poll, sleep), or that a ptrace stop does (epoll_wait: ptrace(2), BUGS), and says so on
  // stdout if it ever does. One more sleeps in futex(2) through syscall(2), whose seventh argument is on the stack.
  // In the frame-pointer build, those two and a second poll sleep below frames that locate rbp differently: a
  // shrink-wrapped function, and one whose stack arguments take the prologue's sub as padding.
  Uninterrupted u(agent, {}, program);
  const std::map<std::string, pid_t> tids = u.target.announcedTids();
  REQUIRE(tids.size() == 6);
  // The function and line of each call in tests/targets/uninterrupted.cpp.
  const std::map<std::string, std::pair<std::string, int>> sleeps_in = {
      {"pause", {"waitInPause()", 33}},
      {"epoll", {"waitInEpoll()", 42}},
      {"poll", {"waitInPoll()", 47}},
      {"sleep", {"waitInSleep()", 52}},
      {"shrink-wrapped", {"pollUnlessStopping(int)", 77}},
      {"futex", {"futexWait(int*)", 85}}};
  const std::string pid = std::to_string(u.target.pid());
  for (const bool touch : {true, true, false}) {
    std::vector<std::string> args{"stack", pid, "--json"};
    if (!touch) args.push_back("--no-signal");
    auto r = runCli(args, u.dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json dump = json::parse(r.out);
    CHECK(dump.at("source") == source);
    CHECK(dump.at("cost").at("read_asleep") == 7);  // main too, in pthread_join
    CHECK(dump.at("cost").at("max_pause_ns") == 0);
    for (const auto& [role, site] : sleeps_in) {
      const json& thread = threadOf(dump, tids.at(role));
      INFO(role << ": " << thread.dump(1));
      CHECK(thread.at("capture") == "captured");
      CHECK(thread.at("pause_ns") == 0);
      const json& frames = thread.at("frames");
      auto caller = std::find_if(frames.begin(), frames.end(), [&](const json& f) {
        return f.at("function") == "(anonymous namespace)::" + site.first;
      });
      REQUIRE(caller != frames.end());
      CHECK(caller->at("file").get<std::string>().find("tests/targets/uninterrupted.cpp") != std::string::npos);
      CHECK(caller->at("line") == site.second);
    }
  }
  const auto human = runCli({"stack", pid}, u.dir.path());
  CHECK(human.out.find("(longest thread pause 0 us, 7 read asleep)") != std::string::npos);
  checkNoWaitReturnedEarly(u);
}

void checkFlickeringStacksHold(ScenarioAgent agent, const std::string& program) {
  // Three threads sleep 20 us at a time, calling down 1 to 6 levels between sleeps. A stack read while its thread
  // ran would mix two of those calls. Two more nap along two chains of the same shape in turn, so that their syscall
  // line reads the same in both: only the count of the times they got a CPU tells that they ran, and a stack read
  // while one went from one chain to the other would mix the chains.
  Uninterrupted u(agent, {"flicker"}, program);
  const std::string pid = std::to_string(u.target.pid());
  int read_asleep = 0;
  int held = 0;
  int alternates_read_asleep = 0;
  for (int round = 0; round < 60; ++round) {
    auto r = runCli({"stack", pid, "--json"}, u.dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json dump = json::parse(r.out);
    for (const json& thread : dump.at("threads")) {
      const json& frames = thread.at("frames");
      auto function = [&](size_t i) { return frames.at(i).at("function").get<std::string>(); };
      const std::string ns = "(anonymous namespace)::";
      auto alternate = std::find_if(frames.begin(), frames.end(), [&](const json& f) {
        return f.at("function").get<std::string>().rfind(ns + "alternate", 0) == 0;
      });
      if (alternate != frames.end()) {
        INFO(thread.dump(1));
        // Each inner function returns into its own outer one, and each outer one into alternate(), wherever the
        // thread was caught.
        for (size_t i = static_cast<size_t>(alternate - frames.begin()); i + 1 < frames.size(); ++i) {
          const std::string caller = function(i + 1);
          if (function(i) == ns + "alternateInner1()") CHECK(caller == ns + "alternateOuter1()");
          if (function(i) == ns + "alternateInner2()") CHECK(caller == ns + "alternateOuter2()");
          if (function(i).rfind(ns + "alternateOuter", 0) == 0) CHECK(caller == ns + "alternate()");
        }
        if (thread.at("pause_ns") == 0) ++alternates_read_asleep;
        continue;
      }
      size_t down = 0;
      while (down < frames.size() && function(down).find("flickerDown") == std::string::npos) ++down;
      if (down == frames.size()) continue;
      INFO(thread.dump(1));
      // The sleep in libc, 1 to 6 levels of flickerDown (the deepest at its call of nanosleep), flicker, and the
      // thread's start. A thread held while it ran may be in flickerDown itself, anywhere in it.
      for (size_t i = 0; i < down; ++i)
        CHECK(frames.at(i).at("module").get<std::string>().find("/libc.so.6") != std::string::npos);
      size_t levels = 0;
      while (down + levels < frames.size() && function(down + levels) == "(anonymous namespace)::flickerDown(int)") {
        if (levels > 0 || down > 0) CHECK(frames.at(down + levels).at("line") == (levels == 0 ? 63 : 58));
        ++levels;
      }
      CHECK(levels >= 1);
      CHECK(levels <= 6);
      REQUIRE(down + levels < frames.size());
      CHECK(function(down + levels) == "(anonymous namespace)::flicker()");
      CHECK(function(frames.size() - 1) == "__clone3");
      (thread.at("pause_ns") == 0 ? read_asleep : held) += 1;
    }
  }
  // Both ways were taken: the test saw threads read asleep, and threads that ran and were held instead. A CLI built
  // with ThreadSanitizer reads too slowly to finish within one 20 us sleep, so through ptrace it may never read one
  // asleep there: every stack must still hold.
  if (agent == ScenarioAgent::kNone && std::string(CPPOPS_TEST_SANITIZE) == "thread")
    WARN(read_asleep << " of the flickering threads' stacks read asleep by the ThreadSanitizer-built CLI");
  else
    CHECK(read_asleep > 0);
  CHECK(held > 0);
  INFO(alternates_read_asleep << " of the alternating threads' stacks read asleep");
  if (!(agent == ScenarioAgent::kNone && std::string(CPPOPS_TEST_SANITIZE) == "thread"))
    CHECK(alternates_read_asleep > 0);
  CHECK(u.target.alive());
}

}  // namespace cppops::test
