// cppops watch and cppops stack --diff against a preloaded program that knows nothing of cppops and leaks
// threads behind one lock: the growing group must be named, with its stack, not just counted.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

// thread_leak.cpp: the handler threads block in lookupSession() (line 18) called from handleRequest() (line 21).
const std::string kLeakFile = "tests/targets/thread_leak.cpp";

bool namesTheLeak(const json& frames) {
  for (size_t i = 0; i + 1 < frames.size(); ++i) {
    const std::string inner = frames[i].get<std::string>();
    const std::string outer = frames[i + 1].get<std::string>();
    if (inner.find("lookupSession()  ") != std::string::npos && inner.find(kLeakFile + ":18") != std::string::npos &&
        outer.find("handleRequest()  ") != std::string::npos && outer.find(kLeakFile + ":21") != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace

namespace {

// Three dumps of a thread_leak target a second apart, and then two in text: each comparison names the leak.
void checkWatchNamesTheLeak(const TargetProcess& t, const TempDir& dir, const std::string& source) {
  auto r = runCli({"watch", std::to_string(t.pid()), "--interval", "1s", "--count", "3", "--json"}, dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.out);
  std::string line;
  int reports = 0;
  while (std::getline(lines, line)) {
    json report = json::parse(line);
    ++reports;
    CHECK(report.at("pid") == t.pid());
    CHECK(report.at("source") == source);
    CHECK(report.at("threads_after").get<int>() > report.at("threads_before").get<int>());
    // Exactly one group grows by more than one thread, and it is the leak: mutex waiters in lookupSession, each new
    // thread in it (a thread every 200 ms, a dump every second). A dump that catches main inside pthread_create, or
    // a new thread on its way to the lock, sees one more group of one thread, which is right, and rare.
    const json& grown = report.at("grown");
    std::vector<json> leaks;
    for (const json& group : grown) {
      if (group.at("delta").get<int>() >= 2) leaks.push_back(group);
      else CHECK(group.at("delta") == 1);
    }
    REQUIRE(leaks.size() == 1);
    CHECK(leaks[0].at("state") == "mutex");
    CHECK(leaks[0].at("new_tids").size() == leaks[0].at("delta").get<size_t>());
    CHECK(namesTheLeak(leaks[0].at("frames")));
  }
  CHECK(reports == 2);  // three dumps, two comparisons

  auto text = runCli({"watch", std::to_string(t.pid()), "--interval", "500ms", "--count", "2"}, dir.path());
  INFO(text.out << text.err);
  REQUIRE(text.exit_code == 0);
  CHECK(text.out.find("watching process " + std::to_string(t.pid()) +
                      (source == "ptrace" ? " through ptrace: " : ": ")) != std::string::npos);
  CHECK(text.out.find("; growing:\n+") != std::string::npos);
  CHECK(text.out.find("  mutex  (") != std::string::npos);
  CHECK(text.out.find("lookupSession()  " + sourceDir() + "/" + kLeakFile + ":18") != std::string::npos);
}

}  // namespace

TEST_CASE("cppops watch names the stack group that grows, with its stack") {
  TempDir dir;
  TargetProcess t({"thread_leak", {"200"}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  REQUIRE_FALSE(t.waitForSocket().empty());
  checkWatchNamesTheLeak(t, dir, "agent");
}

TEST_CASE("cppops watch without an agent watches through ptrace, and names the leak the same") {
  TempDir dir;
  TargetProcess t({"thread_leak", {"200"}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  checkWatchNamesTheLeak(t, dir, "ptrace");
  CHECK(t.alive());
}

TEST_CASE("cppops stack --diff compares with a saved --json dump") {
  TempDir dir;
  TargetProcess t({"thread_leak", {"200"}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  REQUIRE_FALSE(t.waitForSocket().empty());
  auto saved = runCli({"stack", std::to_string(t.pid()), "--json"}, dir.path());
  REQUIRE(saved.exit_code == 0);
  const std::string file = dir.path() + "/before.json";
  std::ofstream(file) << saved.out;
  const size_t before = json::parse(saved.out).at("threads").size();
  std::this_thread::sleep_for(1s);

  // A handler thread caught between its start and the lock (running, under load for milliseconds) is a second,
  // real change; the next dump a moment later finds it blocked like the others.
  CliResult r;
  json doc;
  for (int attempt = 0; attempt < 3; ++attempt) {
    r = runCli({"stack", std::to_string(t.pid()), "--diff", file, "--json"}, dir.path());
    REQUIRE(r.exit_code == 0);
    doc = json::parse(r.out);
    if (doc.at("changes").size() == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  INFO(r.out << r.err);
  CHECK(doc.at("threads_before") == before);
  const json& changes = doc.at("changes");
  REQUIRE(changes.size() == 1);  // the pollers and main did not change
  CHECK(changes[0].at("state") == "mutex");
  CHECK(changes[0].at("after").get<int>() - changes[0].at("before").get<int>() ==
        doc.at("threads_after").get<int>() - doc.at("threads_before").get<int>());
  CHECK(namesTheLeak(changes[0].at("frames")));

  auto text = runCli({"stack", std::to_string(t.pid()), "--diff", file}, dir.path());
  CHECK(text.exit_code == 0);
  CHECK(text.out.rfind("Compared with " + file + ": " + std::to_string(before) + " threads then, ", 0) == 0);

  // Not a dump: a usage error that says how to make one.
  auto bad = runCli({"stack", std::to_string(t.pid()), "--diff", sourceDir() + "/" + kLeakFile}, dir.path());
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("is not a cppops stack dump") != std::string::npos);
  CHECK(bad.err.find("cppops stack PID --json > FILE") != std::string::npos);
  auto missing = runCli({"stack", std::to_string(t.pid()), "--diff", dir.path() + "/nope.json"}, dir.path());
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("cannot read " + dir.path() + "/nope.json") != std::string::npos);
}

TEST_CASE("cppops watch: a bad interval is a usage error") {
  TempDir dir;
  auto r = runCli({"watch", "1", "--interval", "soon"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--interval 'soon' is not a duration; write it like 10s, 500ms or 2m") != std::string::npos);
}
