// cppops stack against a target with every scenario the command must recognise: exact states, owners, the
// frame that made the call (function and file), and both deadlocks.
#include <catch2/catch.hpp>
#include <string>
#include <nlohmann/json.hpp>
#include <set>

#include "stack_scenario.h"
#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

void checkScenarios(ScenarioAgent agent) {
  Scenario s(agent);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--json"}, s.dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 7);  // deadlocks found
  json dump = json::parse(r.out);
  CHECK(dump.at("source") == "agent");
  checkScenarioDump(dump, s);

  const json& blocked = threadOf(dump, s.tids.at("no-signals"));
  CHECK(blocked.at("capture") == "no_answer");
  CHECK(blocked.at("state") == "sleep");
  CHECK(blocked.at("reason").get<std::string>().find("blocks signal") != std::string::npos);
  CHECK(blocked.at("frames").empty());
}

}  // namespace

TEST_CASE("stack: every scenario in a preloaded target has its exact state, owner, frame and deadlock") {
  checkScenarios(ScenarioAgent::kPreload);
}

TEST_CASE("stack: the same through the linked agent (sanitized with the target in sanitizer builds)") {
  // ThreadSanitizer runs a sanitized thread's asynchronous signal handlers only at its own interceptors, so many
  // threads of a TSan-built target cannot unwind themselves on request. The ASan tree covers this test; the
  // other linked-agent tests still run the agent under TSan.
  if (std::string(CPPOPS_TEST_SANITIZE) == "thread") {
    WARN("skipped under ThreadSanitizer: it defers signal handlers of sanitized threads to its interceptors");
    return;
  }
  checkScenarios(ScenarioAgent::kLinked);
}

TEST_CASE("stack: the human view leads with deadlocks, then groups, and --threads lists every thread") {
  Scenario s(ScenarioAgent::kPreload);
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
  Scenario s(ScenarioAgent::kPreload);
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
  Scenario s(ScenarioAgent::kPreload);
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
