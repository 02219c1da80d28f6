// cppops stack without an agent (ptrace, one thread stopped at a time), and when the agent cannot answer: the
// same answers as the agent path, no thread ever left stopped or traced, and permission problems explained.
#include <dirent.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "proc/process.h"
#include "stack_scenario.h"
#include "subprocess.h"

using namespace cppops;
using namespace cppops::test;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// How long a ptrace dump of the 25-thread scenario target may take on top of the agent deadline before the
// fallback counts as late: a dump takes well under a second, sanitizer builds of the CLI included.
constexpr auto kPtraceDumpAllowance = 10s;

// Every thread of `pid` runs free: nobody traces it and it is not in a ptrace stop ('t').
void checkNobodyTraces(pid_t pid) {
  std::vector<pid_t> tids = tasksOf(pid);
  REQUIRE_FALSE(tids.empty());
  size_t traced = 0, stopped = 0;
  for (pid_t tid : tids) {
    const std::string status = taskFile(pid, tid, "status");
    if (status.find("\nTracerPid:\t0\n") == std::string::npos) ++traced;
    if (status.find("\nState:\tt") != std::string::npos) ++stopped;
  }
  CHECK(traced == 0);
  CHECK(stopped == 0);
}

// Without reaping it, so that the caller's wait() still sees how it ended.
bool hasExited(pid_t child) {
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == child;
}

json dumpJson(const CliResult& r) {
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.out.empty());
  return json::parse(r.out);
}

}  // namespace

TEST_CASE("stack without an agent: every scenario through ptrace, with the agent path's exact answers") {
  Scenario s(ScenarioAgent::kNone);
  const std::string pid = std::to_string(s.target.pid());
  // Twice: the first dump's stops make the kernel resume timed sleeps and futex waits through restart_syscall,
  // which the second must see through.
  for (int round = 0; round < 2; ++round) {
    INFO("dump " << round + 1);
    auto r = runCli({"stack", pid, "--json"}, s.dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 7);  // deadlocks found
    json dump = dumpJson(r);
    CHECK(dump.at("source") == "ptrace");
    checkScenarioDump(dump, s);
    // Blocked signals do not matter to ptrace: this thread has its stack too.
    checkThread(dump, s, "no-signals", "sleep", "sleepWithSignalsBlocked");
    // Built without frame pointers: every sleeping thread is read where it sleeps, and only the spinner stopped.
    checkOnlySpinnerHeld(dump, s);
    checkNobodyTraces(s.target.pid());
  }
  CHECK(s.target.alive());
}

TEST_CASE("stack through ptrace of code built with frame pointers: sleeping threads are read where they sleep") {
  // A frame whose caller is found through rbp needs the thread's rbp, which the kernel does not report of a
  // sleeping thread. It is found from the prologue of the first frame-pointer frame when that frame keeps rsp
  // where its prologue put it; the one thread whose frame moved rsp (alloca) is stopped and read instead. Both
  // ways give the same exact answers.
  Scenario s(ScenarioAgent::kLinked);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--ptrace", "--json"}, s.dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 7);
  json dump = dumpJson(r);
  CHECK(dump.at("source") == "ptrace");
  checkScenarioDump(dump, s);
  checkThread(dump, s, "no-signals", "sleep", "sleepWithSignalsBlocked");
  for (const json& t : dump.at("threads")) {
    INFO(t.dump(1));
    CHECK(t.at("capture") == "captured");
    const bool held = t.at("tid") == s.tids.at("spinner") || t.at("tid") == s.tids.at("no-signals");
    if (!held) CHECK(t.at("pause_ns") == 0);
  }
  CHECK(threadOf(dump, s.tids.at("spinner")).at("pause_ns").get<uint64_t>() > 0);
  // Under ThreadSanitizer the sleep goes through its interceptor, built without frame pointers, which saves rbp
  // on the stack: there the thread is read where it sleeps too.
  const bool tsan = std::string(CPPOPS_TEST_SANITIZE) == "thread";
  if (!tsan) CHECK(threadOf(dump, s.tids.at("no-signals")).at("pause_ns").get<uint64_t>() > 0);
  // Every thread but those two read asleep (under ThreadSanitizer, maybe the second too).
  const size_t read_asleep = dump.at("cost").at("read_asleep").get<size_t>();
  if (tsan)
    CHECK(read_asleep >= dump.at("threads").size() - 2);
  else
    CHECK(read_asleep == dump.at("threads").size() - 2);
  checkNobodyTraces(s.target.pid());
}

TEST_CASE("stack without an agent: threads asleep in calls that a ptrace stop cuts short are read, never stopped") {
  checkUninterruptedDumps(ScenarioAgent::kNone, "ptrace");
}

TEST_CASE("stack without an agent: the same in a program built with frame pointers, whose rbp is found from its code") {
  checkUninterruptedDumps(ScenarioAgent::kNone, "ptrace", "uninterrupted_fp");
}

TEST_CASE("stack without an agent: threads that wake while they are read are stopped instead, every stack holds") {
  checkFlickeringStacksHold(ScenarioAgent::kNone);
}

TEST_CASE("stack without an agent: the same in a program built with frame pointers: every stack holds") {
  checkFlickeringStacksHold(ScenarioAgent::kNone, "uninterrupted_fp");
}

TEST_CASE("stack without an agent: the text view says ptrace and what it cost") {
  Scenario s(ScenarioAgent::kNone);
  auto r = runCli({"stack", std::to_string(s.target.pid())}, s.dir.path());
  CHECK(r.exit_code == 7);
  CHECK(r.out.find(", via ptrace in ") != std::string::npos);
  CHECK(r.out.find("longest thread pause") != std::string::npos);
  CHECK(r.out.find("Found 2 deadlocks") != std::string::npos);
}

TEST_CASE("stack --no-signal without an agent: kernel facts, owners and the stacks of sleeping threads, none stopped") {
  Scenario s(ScenarioAgent::kNone);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--no-signal", "--json"}, s.dir.path());
  REQUIRE(r.exit_code == 7);  // the deadlocks are found from lock owners alone
  json dump = dumpJson(r);
  CHECK(dump.at("source") == "ptrace");
  checkNoSignalDump(dump, s);
  checkNobodyTraces(s.target.pid());
}

TEST_CASE("stack --ptrace and --agent-only force a path") {
  Scenario s(ScenarioAgent::kPreload);
  const std::string pid = std::to_string(s.target.pid());
  auto forced = runCli({"stack", pid, "--ptrace", "--json"}, s.dir.path());
  REQUIRE(forced.exit_code == 7);
  json dump = dumpJson(forced);
  CHECK(dump.at("source") == "ptrace");
  checkScenarioDump(dump, s);
  // The agent's own thread is a thread like any other here.
  CHECK(threadOf(dump, taskNamed(s.target.pid(), "cppops-agent")).at("capture") == "captured");

  auto agent = runCli({"stack", pid, "--agent-only", "--json"}, s.dir.path());
  CHECK(agent.exit_code == 7);
  CHECK(dumpJson(agent).at("source") == "agent");

  auto both = runCli({"stack", pid, "--ptrace", "--agent-only"}, s.dir.path());
  CHECK(both.exit_code == 2);

  TempDir dir;
  TargetProcess plain({"plain_target", {}, false, {}, {}}, dir.path());
  REQUIRE(plain.waitForOutput("ready"));
  auto no_agent = runCli({"stack", std::to_string(plain.pid()), "--agent-only"}, dir.path());
  CHECK(no_agent.exit_code == 3);
  CHECK(no_agent.err.find("has no cppops agent") != std::string::npos);
}

TEST_CASE("stack falls back to ptrace when the agent does not answer within the deadline") {
  Scenario s(ScenarioAgent::kPreload);
  const pid_t agent_tid = taskNamed(s.target.pid(), "cppops-agent");
  REQUIRE(agent_tid != 0);
  const std::string pid = std::to_string(s.target.pid());
  TracedByTest wedged(agent_tid, TracedByTest::Hold::kStopped);

  const auto start = Clock::now();
  auto r = runCli({"stack", pid, "--json", "--agent-deadline", "500"}, s.dir.path());
  const auto took = Clock::now() - start;
  INFO(r.err);
  REQUIRE(r.exit_code == 7);
  CHECK(took < 500ms + kPtraceDumpAllowance);
  json dump = dumpJson(r);
  CHECK(dump.at("source") == "ptrace");
  REQUIRE_FALSE(dump.at("notes").empty());
  CHECK(dump.at("notes")[0] == "the agent did not answer within 500 ms; answered through ptrace");
  checkScenarioDump(dump, s);
  // The wedged thread stands still in its stop: its stack is read where it stands, where it waits for clients.
  const json& agent = threadOf(dump, agent_tid);
  INFO(agent.dump(1));
  CHECK(agent.at("capture") == "captured");
  CHECK(agent.at("state") == "stopped");
  CHECK(agent.at("pause_ns") == 0);
  CHECK(hasFrame(agent, "cppops::agent::Server::run()", "agent/server.cpp"));

  // Forced to the agent, the same process times out instead (exit 6).
  auto agent_only = runCli({"stack", pid, "--agent-only", "--timeout", "300"}, s.dir.path());
  CHECK(agent_only.exit_code == 6);
}

TEST_CASE("stack without an agent: a running thread that a debugger traces is listed with who traces it") {
  Scenario s(ScenarioAgent::kNone);
  TracedByTest debugged(s.tids.at("spinner"), TracedByTest::Hold::kRunning);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--json"}, s.dir.path());
  REQUIRE(r.exit_code == 7);
  json dump = dumpJson(r);
  const json& spinner = threadOf(dump, s.tids.at("spinner"));
  INFO(spinner.dump(1));
  CHECK(spinner.at("capture") == "no_answer");
  CHECK(spinner.at("state") == "running");
  std::string comm = proc::readFile("/proc/self/comm").value_or("");
  if (!comm.empty()) comm.pop_back();
  CHECK(spinner.at("reason") == "already traced by process " + std::to_string(getpid()) + " (" + comm +
                                    ") (a debugger?), so it could not be stopped");
  checkThread(dump, s, "waiter", "mutex", "waitForHeldMutex", "holder");
}

TEST_CASE("stack through ptrace killed mid-dump leaves every thread of a 1,000-thread target running, untraced") {
  TempDir dir;
  TargetProcess target({"stack_scenarios", {"--extra", "975"}, false, {{"TSAN_OPTIONS", "detect_deadlocks=0"}}, {}},
                       dir.path());
  REQUIRE(target.waitForOutput("ready", 60s));
  const std::string pid = std::to_string(target.pid());

  for (int signal : {SIGKILL, SIGTERM}) {
    INFO("signal " << signal);
    // The walk's threads are named cppops-ptrace and live only while threads are being stopped: killing the CLI
    // once one exists is killing it mid-dump. A run that finishes before it is seen is retried.
    bool killed_mid_dump = false;
    for (int attempt = 0; attempt < 5 && !killed_mid_dump; ++attempt) {
      BackgroundCli cli({"stack", pid, "--ptrace"}, dir.path());
      const auto give_up = Clock::now() + 60s;
      while (!killed_mid_dump && Clock::now() < give_up) {
        if (taskNamed(cli.pid(), "cppops-ptrace") != 0) {
          ::kill(cli.pid(), signal);
          killed_mid_dump = true;
        } else if (hasExited(cli.pid())) {
          break;  // finished before the walk was seen
        }
      }
      auto status = cli.wait(10s);
      REQUIRE(status);
      if (!killed_mid_dump) continue;
      // SIGTERM is held until no thread is stopped, then takes effect as usual: no dump, death by SIGTERM.
      CHECK(WIFSIGNALED(*status));
      CHECK(WTERMSIG(*status) == signal);
      CHECK(cli.out().empty());
    }
    REQUIRE(killed_mid_dump);
    CHECK(target.alive());
    checkNobodyTraces(target.pid());
  }
  // And it still answers a complete dump, and lives on.
  auto r = runCli({"stack", pid, "--ptrace", "--json"}, dir.path());
  CHECK(r.exit_code == 7);
  const size_t tasks = tasksOf(target.pid()).size();
  // Once (ThreadSanitizer tree, loaded machine) the target was down to one task right after this dump, and
  // nothing said why: what ended it, if anything did.
  if (!target.alive()) {
    const std::optional<int> status = target.wait(1s);
    const std::string how = !status                ? "not reaped"
                            : WIFSIGNALED(*status) ? "by signal " + std::to_string(WTERMSIG(*status))
                                                   : "with exit code " + std::to_string(WEXITSTATUS(*status));
    FAIL_CHECK("the target ended after the dump, " << how << "; its stderr: " << target.err());
  }
  CHECK(dumpJson(r).at("threads").size() == tasks);
  checkNobodyTraces(target.pid());
}

TEST_CASE("profile through ptrace, interrupted or killed, leaves every thread of the target running, untraced") {
  TempDir dir;
  TargetProcess target({"cpu_burner", {}, false, {}, {}}, dir.path());
  REQUIRE(target.waitForOutput("ready"));
  const std::string pid = std::to_string(target.pid());
  for (int signal : {SIGINT, SIGKILL}) {
    INFO("signal " << signal);
    BackgroundCli cli({"profile", pid, "-d", "30s", "-r", "1000"}, dir.path());
    // The sampling thread is named cppops-profile: once it exists, threads are being stopped a thousand times a
    // second each.
    const auto give_up = Clock::now() + 20s;
    while (taskNamed(cli.pid(), "cppops-profile") == 0 && Clock::now() < give_up) std::this_thread::sleep_for(10ms);
    REQUIRE(taskNamed(cli.pid(), "cppops-profile") != 0);
    std::this_thread::sleep_for(300ms);
    const auto sent = Clock::now();
    ::kill(cli.pid(), signal);
    auto status = cli.wait(10s);
    REQUIRE(status);
    CHECK(Clock::now() - sent < 5s);  // between two samples, not at the end of the 30 s profile
    CHECK(WIFSIGNALED(*status));
    CHECK(WTERMSIG(*status) == signal);
    CHECK(target.alive());
    checkNobodyTraces(target.pid());
  }
}

TEST_CASE("stack and profile through ptrace let go at once of a thread that does not stop in time") {
  // The starved thread shares CPU 0 with burners under SCHED_IDLE, so it runs a few milliseconds a second and a
  // stop asked of it is rarely reached within the limit (--capture-timeout in a dump, 100 ms in a profile). Such a
  // thread stays attached to the thread that asked, enters its stop when it next runs, and is let go only when
  // that thread ends: so the walk and the sampler end it at once, and carry on from a new one.
  TempDir dir;
  TargetProcess target({"cpu_burner", {"--threads", "1", "--starved", "1"}, false, {}, {}}, dir.path());
  REQUIRE(target.waitForOutput("ready", 20s));
  const std::string pid = std::to_string(target.pid());
  const std::map<std::string, pid_t> tids = target.announcedTids();
  const pid_t starved = tids.at("starved");

  SECTION("stack: the thread is named with the limit it missed, the others have their stacks") {
    json dump;
    bool missed = false;
    // It may get CPU 0 within the 10 ms by chance: five dumps in a row would mean it is not starved at all.
    for (int attempt = 0; attempt < 5 && !missed; ++attempt) {
      dump = dumpJson(runCli({"stack", pid, "--ptrace", "--capture-timeout", "10", "--json"}, dir.path()));
      missed = threadOf(dump, starved).at("capture") == "no_answer";
    }
    INFO(dump.dump(1));
    REQUIRE(missed);
    const json& late = threadOf(dump, starved);
    CHECK(late.at("reason") == "did not stop within 10 ms (--capture-timeout)");
    CHECK(late.at("frames").empty());
    CHECK(late.at("state") == "running");
    const json& burner = threadOf(dump, tids.at("burner-0"));
    CHECK(burner.at("capture") == "captured");
    CHECK((hasFrame(burner, "hotFunction", "cpu_burner.cpp") || hasFrame(burner, "coldFunction", "cpu_burner.cpp")));
    CHECK(hasFrame(threadOf(dump, tids.at("sleeper")), "sleepForever", "cpu_burner.cpp"));
    checkNobodyTraces(target.pid());
  }

  SECTION("profile: the thread is never held stopped while the profile goes on") {
    // The target's own burner is stopped with the rest at every sample, leaving CPU 0 free for the starved thread
    // to reach its stop in time; a burner in another process, which nobody stops, keeps it busy then too. (Not in
    // the dump above: beside it, the target's burner could miss the dump's 10 ms itself.)
    TargetProcess hog({"cpu_burner", {"--threads", "1", "--cpu0", "1"}, false, {}, {}}, dir.path());
    REQUIRE(hog.waitForOutput("ready", 20s));
    const std::string stat = "/proc/" + pid + "/task/" + std::to_string(starved) + "/stat";
    bool missed = false;
    for (int attempt = 0; attempt < 3 && !missed; ++attempt) {
      BackgroundCli cli({"profile", pid, "-d", "3s", "--json"}, dir.path());
      // The longest the starved thread was seen in a ptrace stop ('t') without a break.
      auto longest = Clock::duration::zero();
      Clock::time_point held_since{};
      bool was_held = false;
      while (!hasExited(cli.pid())) {
        const std::string line = proc::readFile(stat).value_or("");
        const size_t close = line.rfind(')');
        const bool held = close != std::string::npos && close + 2 < line.size() && line[close + 2] == 't';
        const auto now = Clock::now();
        if (held && !was_held) held_since = now;
        if (held) longest = std::max(longest, now - held_since);
        was_held = held;
        std::this_thread::sleep_for(1ms);
      }
      auto status = cli.wait(20s);
      REQUIRE(status);
      REQUIRE(WIFEXITED(*status));
      REQUIRE(WEXITSTATUS(*status) == 0);
      const json summary = json::parse(cli.out());
      // Nothing else in the target can be dropped: no thread is in uninterruptible sleep or traced by another.
      missed = summary.at("dropped").get<uint64_t>() > 0;
      if (!missed) continue;
      INFO("held stopped for " << std::chrono::duration<double>(longest).count() << " s at most");
      // Let go at once, it does not stop at all; left attached, it would be held from its next slice of CPU 0
      // (within a second) to the end of the profile.
      CHECK(longest < 1s);
    }
    REQUIRE(missed);
    checkNobodyTraces(target.pid());
    CHECK(target.alive());
  }
}

TEST_CASE("stack through ptrace on another user's process says why it cannot and what to do") {
  if (!runningAsRoot()) {
    WARN("skipped: needs root to start a target as one user and cppops as another");
    return;
  }
  TempDir dir;
  TargetProcess target({"plain_target", {}, false, {}, {}}, dir.path());
  REQUIRE(target.waitForOutput("ready"));
  auto r = runCli({"stack", std::to_string(target.pid())}, dir.path(), kNobody);
  CHECK(r.exit_code == 4);
  INFO(r.err);
  CHECK(r.err.find("cannot ptrace process " + std::to_string(target.pid())) != std::string::npos);
  CHECK(r.err.find("belongs to user root") != std::string::npos);
  CHECK(r.err.find("sudo cppops stack " + std::to_string(target.pid())) != std::string::npos);
}
