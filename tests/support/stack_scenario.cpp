#include "stack_scenario.h"

#include <catch2/catch.hpp>
#include <unistd.h>

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

Uninterrupted::Uninterrupted(std::vector<std::string> args)
    : target({"uninterrupted", std::move(args), true, {}, {}}, dir.path()) {
  REQUIRE(target.waitForOutput("ready"));
  REQUIRE_FALSE(target.waitForSocket().empty());
}

void checkNoWaitReturnedEarly(const Uninterrupted& u) {
  usleep(200'000);
  INFO(u.target.out());
  CHECK(u.target.out().find("returned early") == std::string::npos);
  CHECK(u.target.alive());
}

}  // namespace cppops::test
