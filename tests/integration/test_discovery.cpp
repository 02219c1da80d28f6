// Discovery, listing, tree and the per-process commands, against real targets and the real CLI.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "proc/process.h"
#include "protocol/rendezvous.h"
#include "raw_client.h"
#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

json listJson(const std::string& dir) {
  auto r = runCli({"--json"}, dir);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

const json* findPid(const json& list, pid_t pid) {
  for (const auto& row : list)
    if (row.at("pid") == pid) return &row;
  return nullptr;
}

const json* findInTree(const json& nodes, pid_t pid) {
  for (const auto& n : nodes) {
    if (n.at("pid") == pid) return &n;
    if (const json* found = findInTree(n.at("children"), pid)) return found;
  }
  return nullptr;
}

// A socket bound at path and closed without listening: what an agent that died leaves behind.
bool bindAndClose(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return bound;
}

// The start time of a target started without an agent, once it is ready: what its agent would name a socket with.
uint64_t startTicksOf(TargetProcess& target) {
  REQUIRE(target.waitForOutput("ready"));
  auto start = cppops::protocol::processStartTicks(target.pid());
  REQUIRE(start);
  return *start;
}

}  // namespace

TEST_CASE("cppops lists a preloaded C program and a linked C++ program, sorted by PID") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, true, {}, {}}, dir.path());
  TargetProcess linked({"linked_target", {}, false, {}, {}}, dir.path());
  REQUIRE_FALSE(plain.waitForSocket().empty());
  REQUIRE_FALSE(linked.waitForSocket().empty());

  json list = listJson(dir.path());
  REQUIRE(list.is_array());
  REQUIRE(list.size() == 2);
  CHECK(list[0].at("pid").get<int>() < list[1].at("pid").get<int>());
  const json* p = findPid(list, plain.pid());
  REQUIRE(p != nullptr);
  CHECK(p->at("name") == "plain_target");
  CHECK(p->at("ppid") == getpid());
  CHECK(p->at("agent_version") == "0.1.0");
  CHECK(p->at("path") == targetPath("plain_target"));
  CHECK(p->at("user") == (getuid() == 0 ? "root" : p->at("user").get<std::string>()));
  const json* l = findPid(list, linked.pid());
  REQUIRE(l != nullptr);
  CHECK(l->at("name") == "linked_target");

  auto human = runCli({}, dir.path());
  CHECK(human.exit_code == 0);
  CHECK(human.out.rfind("PID", 0) == 0);
  for (const char* column : {"PPID", "USER", "NAME", "AGENT", "PATH"}) CHECK(human.out.find(column) != std::string::npos);
  CHECK(human.out.find(std::to_string(plain.pid()) + "  ") != std::string::npos);
  CHECK(runCli({"ps"}, dir.path()).out == human.out);
}

TEST_CASE("cppops tree nests agent processes under their ancestors") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE_FALSE(plain.waitForSocket().empty());
  auto r = runCli({"tree", "--json"}, dir.path());
  REQUIRE(r.exit_code == 0);
  json tree = json::parse(r.out);
  const json* parent = findInTree(tree, getpid());  // the test binary started the target
  REQUIRE(parent != nullptr);
  CHECK(parent->at("agent") == false);
  REQUIRE(parent->at("children").size() == 1);
  const json& child = parent->at("children")[0];
  CHECK(child.at("pid") == plain.pid());
  CHECK(child.at("name") == "plain_target");
  CHECK(child.at("agent") == true);
  CHECK(child.at("children").empty());

  auto human = runCli({"tree"}, dir.path());
  CHECK(human.out.find("plain_target (" + std::to_string(plain.pid()) + ")  [cppops 0.1.0]") != std::string::npos);
}

TEST_CASE("stats, version and the summary report the target's real figures") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE_FALSE(plain.waitForSocket().empty());
  const std::string pid = std::to_string(plain.pid());

  auto stats = runCli({"stats", pid, "--json"}, dir.path());
  REQUIRE(stats.exit_code == 0);
  json s = json::parse(stats.out);
  CHECK(s.at("pid") == plain.pid());
  CHECK(s.at("threads") == 2);  // main + the agent's control thread
  CHECK(s.at("rss_bytes").get<uint64_t>() > 100 * 1024);
  CHECK(s.at("open_fds").get<int>() >= 3);
  CHECK(s.at("uptime_seconds").get<double>() >= 0);
  CHECK(s.at("uptime_seconds").get<double>() < 60);
  CHECK(s.contains("cpu_user_seconds"));
  CHECK(s.contains("voluntary_context_switches"));

  auto version = runCli({"version", pid, "--json"}, dir.path());
  REQUIRE(version.exit_code == 0);
  json v = json::parse(version.out);
  CHECK(v.at("agent_version") == "0.1.0");
  CHECK(v.at("protocol_version") == 1);
  CHECK(v.at("load_mode") == "preload");
  CHECK(v.at("executable") == targetPath("plain_target"));
  CHECK(v.at("build_id").get<std::string>().size() == 40);
  CHECK(v.at("compiler").get<std::string>().find("GCC") != std::string::npos);

  auto summary = runCli({pid}, dir.path());
  REQUIRE(summary.exit_code == 0);
  CHECK(summary.out.find("plain_target") != std::string::npos);
  CHECK(summary.out.find("threads") != std::string::npos);
  CHECK(summary.out.find("0.1.0 (protocol 1, preload)") != std::string::npos);
}

TEST_CASE("a SIGKILLed target disappears from the list and its socket is cleaned up") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, true, {}, {}}, dir.path());
  std::string socket = plain.waitForSocket();
  REQUIRE_FALSE(socket.empty());
  REQUIRE(findPid(listJson(dir.path()), plain.pid()) != nullptr);
  plain.kill(SIGKILL);
  REQUIRE(plain.wait());
  struct stat st{};
  REQUIRE(::stat(socket.c_str(), &st) == 0);  // SIGKILL gave the agent no chance to clean up

  CHECK(listJson(dir.path()).empty());
  CHECK(::stat(socket.c_str(), &st) != 0);
  auto r = runCli({"stats", std::to_string(plain.pid())}, dir.path());
  CHECK(r.exit_code == 3);
}

TEST_CASE("a socket whose PID now belongs to another process is never used") {
  TempDir dir;
  // Our own PID, with a start time that is not ours: what a recycled PID looks like.
  std::string fake = dir.path() + "/" + std::to_string(getpid()) + "-1.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", fake.c_str());
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  listen(fd, 1);

  CHECK(listJson(dir.path()).empty());
  struct stat st{};
  CHECK(::stat(fake.c_str(), &st) != 0);
  auto r = runCli({"stats", std::to_string(getpid())}, dir.path());
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("has no cppops agent") != std::string::npos);
  close(fd);
}

TEST_CASE("a live PID with a socket nobody listens on is reported and cleaned, not hung on") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, false, {}, {}}, dir.path());
  // Name it exactly as the agent would, then close the listener: an agent that died without cleaning up.
  const std::string path = dir.path() + "/" + cppops::protocol::socketFileName(plain.pid(), startTicksOf(plain));
  REQUIRE(bindAndClose(path));

  auto r = runCli({"stats", std::to_string(plain.pid())}, dir.path());
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("stale") != std::string::npos);
  struct stat st{};
  CHECK(::stat(path.c_str(), &st) != 0);
}

TEST_CASE("a staging name left by an agent that died before its rename is cleaned up and a starting agent's is not") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, false, {}, {}}, dir.path());
  const uint64_t start = startTicksOf(plain);
  // This process, as if its agent were between bind and rename; and a predecessor with the same PID that died there.
  const std::string starting = dir.path() + "/" + cppops::protocol::stagingFileName(plain.pid(), start);
  const std::string abandoned = dir.path() + "/" + cppops::protocol::stagingFileName(plain.pid(), start - 1);
  REQUIRE(bindAndClose(starting));
  REQUIRE(bindAndClose(abandoned));

  CHECK(findPid(listJson(dir.path()), plain.pid()) == nullptr);
  struct stat st{};
  CHECK(::stat(abandoned.c_str(), &st) != 0);
  CHECK(::stat(starting.c_str(), &st) == 0);
}

// A CLI that finds a socket refusing connections reports it stale and removes it, so the real name must appear
// only once the agent listens. listen() is slowed by 300 ms, so a name that appeared before it would be seen.
TEST_CASE("an agent's socket accepts from the instant it appears under its name") {
  TempDir dir;
  TargetProcess plain(
      {"plain_target", {}, false, {{"LD_PRELOAD", targetPath("libslow_listen.so") + " " + agentLibraryPath()}}, {}},
      dir.path());
  std::string socket = plain.waitForSocket();
  REQUIRE_FALSE(socket.empty());
  RawClient c(socket);
  CHECK(c.connected());
  auto r = runCli({"stats", std::to_string(plain.pid())}, dir.path());
  INFO(r.err);
  CHECK(r.exit_code == 0);
}

TEST_CASE("CPPOPS_AGENT=0 disables the agent entirely") {
  TempDir dir;
  TargetProcess plain({"plain_target", {}, true, {{"CPPOPS_AGENT", "0"}}, {}}, dir.path());
  REQUIRE(plain.waitForOutput("ready"));
  CHECK(plain.waitForSocket(300ms).empty());
  auto tasks = cppops::proc::readFile("/proc/" + std::to_string(plain.pid()) + "/status");
  REQUIRE(tasks);
  CHECK(tasks->find("Threads:\t1\n") != std::string::npos);
  CHECK(listJson(dir.path()).empty());
}

TEST_CASE("a linked agent can be stopped and started again, and survives a forked child's exit") {
  TempDir dir;
  SECTION("restart") {
    TargetProcess t({"linked_target", {"restart"}, false, {}, {}}, dir.path());
    REQUIRE(t.waitForOutput("ready"));
    CHECK(t.out().find("start=0") != std::string::npos);
    CHECK(runCli({"stats", std::to_string(t.pid())}, dir.path()).exit_code == 0);
  }
  SECTION("fork") {
    TargetProcess t({"linked_target", {"fork"}, false, {}, {}}, dir.path());
    REQUIRE(t.waitForOutput("ready"));
    CHECK_FALSE(t.waitForSocket(1s).empty());
    auto r = runCli({"version", std::to_string(t.pid()), "--json"}, dir.path());
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out).at("load_mode") == "linked");
  }
}
