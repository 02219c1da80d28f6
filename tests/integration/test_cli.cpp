// The CLI's contract with scripts: exit codes, error messages that say what to do, JSON errors, help text.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

TEST_CASE("a process without an agent: exit 3 and how to add one") {
  TempDir dir;
  TargetProcess t({"plain_target", {}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  for (const char* command : {"stats", "version"}) {
    auto r = runCli({command, std::to_string(t.pid())}, dir.path());
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("process " + std::to_string(t.pid()) + " (plain_target) has no cppops agent") != std::string::npos);
    CHECK(r.err.find("LD_PRELOAD=libcppops_agent.so") != std::string::npos);
    CHECK(r.err.find("`cppops stack`, `profile` (cpu and wall), `watch`, `top` and `heap` (the kernel's view) work "
                     "without one") !=
          std::string::npos);
  }
  auto r = runCli({std::to_string(t.pid()), "--json"}, dir.path());
  CHECK(r.exit_code == 3);
  json err = json::parse(r.out);
  CHECK(err.at("error").at("kind") == "no_agent");
  CHECK(err.at("error").at("message").get<std::string>().find("has no cppops agent") != std::string::npos);
}

TEST_CASE("a PID that does not exist: exit 3") {
  TempDir dir;
  auto r = runCli({"stats", "999999999"}, dir.path());
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("process 999999999 does not exist") != std::string::npos);
  CHECK(r.err.find("cppops ps") != std::string::npos);
}

TEST_CASE("usage errors: exit 2, what was wrong, and a pointer to the command's --help") {
  TempDir dir;
  const std::string commands =
      " (commands: ps, tree, version, stats, stack, profile, metrics, watch, exporter, top, heap, gc)";
  const std::string list = "; `cppops` lists the processes with an agent";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"stats"}, "cppops stats: PID is required" + list + "\nRun `cppops stats --help` for usage.\n"},
      {{"stak", "123"},
       "cppops: 'stak' is neither a command nor a process ID; did you mean `cppops stack`?" + commands +
           "\nRun `cppops --help` for usage.\n"},
      {{"bogus"}, "cppops: 'bogus' is neither a command nor a process ID" + commands +
                      "\nRun `cppops --help` for usage.\n"},
      {{"stats", "abc"}, "cppops stats: 'abc' is not a process ID (a positive number)" + list +
                             "\nRun `cppops stats --help` for usage.\n"},
      {{"heap", "0"}, "cppops heap: '0' is not a process ID (a positive number)" + list +
                          "\nRun `cppops heap --help` for usage.\n"},
      {{"stack", "99999999999"}, "cppops stack: '99999999999' is not a process ID (a positive number)" + list +
                                     "\nRun `cppops stack --help` for usage.\n"},
      {{"stats", "1", "--timeout", "0"},
       "cppops stats: --timeout: Value 0 not in range 10 to 600000\nRun `cppops stats --help` for usage.\n"},
      {{"--no-such-flag"},
       "cppops: The following argument was not expected: --no-such-flag\nRun `cppops --help` for usage.\n"},
  };
  for (const auto& [args, expected] : cases) {
    auto r = runCli(args, dir.path());
    INFO(args[0]);
    CHECK(r.exit_code == 2);
    CHECK(r.err == expected);
    CHECK(r.out.empty());
  }
}

TEST_CASE("a target that cannot answer: exit 6 after --timeout, and it says what to do") {
  TempDir dir;
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE_FALSE(t.waitForSocket().empty());
  t.kill(SIGSTOP);  // the whole process, agent thread included, is frozen
  auto r = runCli({"stats", std::to_string(t.pid()), "--timeout", "300"}, dir.path());
  t.kill(SIGCONT);
  CHECK(r.exit_code == 6);
  CHECK(r.err.find("did not answer within 300 ms") != std::string::npos);
  CHECK(r.err.find("--timeout") != std::string::npos);
  // Once thawed it answers again: nothing was left half-done in the agent.
  CHECK(runCli({"stats", std::to_string(t.pid())}, dir.path()).exit_code == 0);
}

TEST_CASE("every command has --help with examples, and --version names the CLI") {
  TempDir dir;
  for (const char* command : {"ps", "tree", "version", "stats"}) {
    auto r = runCli({command, "--help"}, dir.path());
    INFO(command);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("Examples:") != std::string::npos);
    CHECK(r.out.find("--json") != std::string::npos);
  }
  auto top = runCli({"--help"}, dir.path());
  CHECK(top.exit_code == 0);
  CHECK(top.out.find("Exit status") != std::string::npos);
  CHECK(runCli({"--version"}, dir.path()).out == "cppops 0.1.0\n");
}

TEST_CASE("an empty host lists just the header, and JSON is an empty array") {
  TempDir dir;
  auto r = runCli({"ps"}, dir.path());
  CHECK(r.exit_code == 0);
  auto j = runCli({"--json"}, dir.path());
  CHECK(j.exit_code == 0);
  // Agents of other users or earlier runs may exist on a shared machine; only ours are in this directory.
  CHECK(json::parse(j.out).is_array());
}
