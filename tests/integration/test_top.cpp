// cppops top in a real terminal (tmux: send-keys and capture-pane) and without one (one frame, then exit).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

// The first thread row of a top frame (the line after the column header).
std::string firstRow(const std::string& screen) {
  const size_t header = screen.find("CPU%  FRAME\n");
  if (header == std::string::npos) return "";
  const size_t start = header + 12;
  return screen.substr(start, screen.find('\n', start) - start);
}

// A tmux server of the test's own (-L), so nothing touches the user's sessions.
struct Tmux {
  std::string socket = "cppops-test-" + std::to_string(::getpid());
  CliResult run(std::vector<std::string> args) const {
    args.insert(args.begin(), {"/usr/bin/tmux", "-L", socket});
    return runProgram(args, {});
  }
  ~Tmux() { run({"kill-server"}); }
};

}  // namespace

TEST_CASE("cppops top in a terminal: busiest thread first, states, frames, and q quits") {
  if (runProgram({"/bin/sh", "-c", "command -v tmux"}, {}).exit_code != 0)
    FAIL("tmux is missing: run scripts/setup.sh");
  TempDir dir;
  TargetProcess t({"cpu_burner", {"--threads", "1"}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  REQUIRE_FALSE(t.waitForSocket().empty());
  Tmux tmux;
  const std::string command = "env CPPOPS_SOCKET_DIR=" + dir.path() + " " + cliPath() + " top " +
                              std::to_string(t.pid()) + " --interval 500ms";
  REQUIRE(tmux.run({"new-session", "-d", "-s", "top", "-x", "160", "-y", "30", command}).exit_code == 0);

  std::string screen;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(100ms);
    screen = tmux.run({"capture-pane", "-p", "-t", "top"}).out;
    // A second frame: CPU% measured over a whole interval.
    if (screen.find("every 0.5s") != std::string::npos && firstRow(screen).find("burner-0") != std::string::npos)
      break;
  }
  INFO(screen);
  CHECK(screen.find("cppops top  pid " + std::to_string(t.pid()) + " (cpu_burner)") != std::string::npos);
  CHECK(screen.find("states: ") != std::string::npos);
  CHECK(screen.find("sleep") != std::string::npos);  // the sleeper thread and main
  const std::string row = firstRow(screen);
  CHECK(row.find("burner-0") != std::string::npos);
  CHECK(row.find("running") != std::string::npos);
  CHECK((row.find("hotFunction") != std::string::npos || row.find("coldFunction") != std::string::npos));
  CHECK(row.find("cpu_burner.cpp:") != std::string::npos);

  REQUIRE(tmux.run({"send-keys", "-t", "top", "q"}).exit_code == 0);
  bool ended = false;
  for (int i = 0; i < 50 && !ended; ++i) {
    std::this_thread::sleep_for(100ms);
    ended = tmux.run({"has-session", "-t", "top"}).exit_code != 0;
  }
  CHECK(ended);
  CHECK(t.alive());
}

TEST_CASE("cppops top without a terminal prints one frame and exits, also as --json for scripts") {
  TempDir dir;
  TargetProcess t({"metrics_app", {}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  auto r = runCli({"top", std::to_string(t.pid()), "--interval", "200ms"}, dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("cppops top  pid " + std::to_string(t.pid()) + " (metrics_app)  8 threads", 0) == 0);
  CHECK(r.out.find("\x1b") == std::string::npos);  // no terminal codes in a pipe
  CHECK(r.out.find("blockOnTheLock()  metrics_app.cpp:") != std::string::npos);

  auto j = runCli({"top", std::to_string(t.pid()), "--interval", "200ms", "--json"}, dir.path());
  REQUIRE(j.exit_code == 0);
  json doc = json::parse(j.out);
  CHECK(doc.at("source") == "agent");
  CHECK(doc.at("by_state").at("mutex") == 3);
  CHECK(doc.at("threads").size() == 8);
  size_t blocked_rows = 0;
  for (const json& row : doc.at("threads"))
    if (row.at("state") == "mutex") {
      ++blocked_rows;
      CHECK(row.at("frame").get<std::string>().rfind("(anonymous namespace)::blockOnTheLock()  metrics_app.cpp:", 0) == 0);
    }
  CHECK(blocked_rows == 3);
}

TEST_CASE("cppops top without an agent measures through ptrace: the burner first, in its hot code") {
  TempDir dir;
  TargetProcess t({"cpu_burner", {"--threads", "1"}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  auto r = runCli({"top", std::to_string(t.pid()), "--interval", "300ms"}, dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("cppops top  pid " + std::to_string(t.pid()) + " (cpu_burner)  3 threads via ptrace  every", 0) ==
        0);
  const std::string row = firstRow(r.out);
  CHECK(row.find("burner-0") != std::string::npos);
  CHECK(row.find("running") != std::string::npos);
  CHECK((row.find("hotFunction") != std::string::npos || row.find("coldFunction") != std::string::npos));
  CHECK(r.out.find("sleeper          sleep") != std::string::npos);
  CHECK(r.out.find("(anonymous namespace)::sleepForever()  cpu_burner.cpp:") != std::string::npos);

  auto j = runCli({"top", std::to_string(t.pid()), "--interval", "300ms", "--json"}, dir.path());
  REQUIRE(j.exit_code == 0);
  json doc = json::parse(j.out);
  CHECK(doc.at("source") == "ptrace");
  CHECK(doc.at("threads").size() == 3);
  CHECK(doc.at("threads")[0].at("name") == "burner-0");
  CHECK(t.alive());
}
