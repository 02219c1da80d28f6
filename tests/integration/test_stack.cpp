// cppops stack against a target with every scenario the command must recognise: exact states, owners, the
// frame that made the call (function and file), and both deadlocks.
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

struct Scenario {
  explicit Scenario(bool preload)
      : target({preload ? "stack_scenarios" : "stack_scenarios_linked", {}, preload,
                // The deadlocks are the point here; TSan would otherwise stop the target for them.
                {{"TSAN_OPTIONS", "detect_deadlocks=0"}}, {}},
               dir.path()) {
    REQUIRE(target.waitForOutput("ready", 20s));
    REQUIRE_FALSE(target.waitForSocket().empty());
    std::istringstream lines(target.out());
    std::string word, role;
    long tid = 0;
    while (lines >> word)
      if (word == "tid" && lines >> role >> tid) tids[role] = static_cast<pid_t>(tid);
  }
  TempDir dir;
  TargetProcess target;
  std::map<std::string, pid_t> tids;
};

const json& threadOf(const json& dump, pid_t tid) {
  for (const auto& t : dump.at("threads"))
    if (t.at("tid") == tid) return t;
  FAIL("thread " << tid << " is not in the dump");
  throw std::logic_error("unreachable");
}

bool hasFrame(const json& thread, const std::string& function, const std::string& file = "stack_scenarios.cpp") {
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
                 const std::string& function, const std::string& owner_role = "") {
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

void checkScenarios(bool preload) {
  Scenario s(preload);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--json"}, s.dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 7);  // deadlocks found
  json dump = json::parse(r.out);
  CHECK(dump.at("schema_version") == 1);
  CHECK(dump.at("pid") == s.target.pid());
  CHECK(dump.at("source") == "agent");

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

  const json& blocked = threadOf(dump, s.tids.at("no-signals"));
  CHECK(blocked.at("capture") == "no_answer");
  CHECK(blocked.at("state") == "sleep");
  CHECK(blocked.at("reason").get<std::string>().find("blocks signal") != std::string::npos);
  CHECK(blocked.at("frames").empty());

  CHECK(deadlockSets(dump) == std::set<std::set<pid_t>>{{s.tids.at("dl2-a"), s.tids.at("dl2-b")},
                                                         {s.tids.at("dl3-a"), s.tids.at("dl3-b"), s.tids.at("dl3-c")}});
  CHECK(dump.at("cost").at("max_pause_ns").get<uint64_t>() > 0);
  CHECK(dump.at("cost").at("capture_ns").get<uint64_t>() >= dump.at("cost").at("max_pause_ns").get<uint64_t>());
}

}  // namespace

TEST_CASE("stack: every scenario in a preloaded target has its exact state, owner, frame and deadlock") {
  checkScenarios(true);
}

TEST_CASE("stack: the same through the linked agent (sanitized with the target in sanitizer builds)") {
  checkScenarios(false);
}

TEST_CASE("stack: the human view leads with deadlocks, then groups, and --threads lists every thread") {
  Scenario s(true);
  const std::string pid = std::to_string(s.target.pid());
  auto r = runCli({"stack", pid}, s.dir.path());
  CHECK(r.exit_code == 7);
  CHECK(r.out.find("Found 2 deadlocks") != std::string::npos);
  CHECK(r.out.find("Found 2 deadlocks") < r.out.find("deadlockRing", r.out.find("Found 2 deadlocks")));
  CHECK(r.out.find("states: ") != std::string::npos);

  auto every = runCli({"stack", pid, "--threads", "--state", "condvar"}, s.dir.path());
  CHECK(every.out.find("waitOnCondition") != std::string::npos);
  CHECK(every.out.find("sleepLong") == std::string::npos);

  auto bad = runCli({"stack", pid, "--state", "napping"}, s.dir.path());
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("unknown state 'napping'") != std::string::npos);
}

TEST_CASE("stack --no-signal: kernel facts and owners without touching any thread") {
  Scenario s(true);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--no-signal", "--json"}, s.dir.path());
  REQUIRE(r.exit_code == 7);  // the deadlocks are found from lock owners alone
  json dump = json::parse(r.out);
  const json& waiter = threadOf(dump, s.tids.at("waiter"));
  CHECK(waiter.at("capture") == "not_requested");
  CHECK(waiter.at("frames").empty());
  CHECK(waiter.at("state") == "mutex");
  CHECK(waiter.at("owner_tid") == s.tids.at("holder"));
  CHECK(threadOf(dump, s.tids.at("sleeper")).at("state") == "sleep");
}

TEST_CASE("stack --json filters threads by state, name and tid") {
  Scenario s(true);
  const std::string pid = std::to_string(s.target.pid());
  auto by_state = json::parse(runCli({"stack", pid, "--json", "--state", "rwlock_read,rwlock_write"}, s.dir.path()).out);
  std::set<pid_t> tids;
  for (const auto& t : by_state.at("threads")) tids.insert(t.at("tid").get<pid_t>());
  CHECK(tids == std::set<pid_t>{s.tids.at("rw-reader"), s.tids.at("rw-writer2")});
  auto by_tid = json::parse(
      runCli({"stack", pid, "--json", "--tid", std::to_string(s.tids.at("sleeper"))}, s.dir.path()).out);
  REQUIRE(by_tid.at("threads").size() == 1);
  CHECK(by_tid.at("threads")[0].at("name") == "sleeper");
  auto by_name = json::parse(runCli({"stack", pid, "--json", "--name", "dl3-"}, s.dir.path()).out);
  CHECK(by_name.at("threads").size() == 3);
}
