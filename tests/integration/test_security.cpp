// Who may talk to an agent: only the same uid or root, enforced by directory and socket modes and, behind
// them, by the agent's SO_PEERCRED check.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "protocol/protocol.h"
#include "raw_client.h"
#include "subprocess.h"

using namespace cppops;
using namespace cppops::test;

TEST_CASE("the socket directory is 0700 and the socket 0600") {
  TempDir parent;
  const std::string dir = parent.path() + "/sockets";  // let the agent create it
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir);
  std::string socket = t.waitForSocket();
  REQUIRE_FALSE(socket.empty());
  struct stat st{};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  REQUIRE(::stat(socket.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  t.kill(SIGKILL);
  t.wait();
  ::unlink(socket.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("an agent refuses a socket directory others can enter") {
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  CHECK(t.waitForSocket(300ms).empty());
  CHECK(t.err().find("is not private") != std::string::npos);
  CHECK(t.err().find("mode 0755") != std::string::npos);
}

TEST_CASE("a connection from another uid is refused by SO_PEERCRED and logged once per second") {
  if (!runningAsRoot()) {
    WARN("skipped: needs root to connect as another uid (run the suite as root to cover it)");
    return;
  }
  TempDir dir;
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir.path());
  std::string socket = t.waitForSocket();
  REQUIRE_FALSE(socket.empty());

  // A child that is uid 65534 for SO_PEERCRED but keeps CAP_DAC_OVERRIDE, so the file modes let it reach the
  // socket and the agent's own check is what must refuse it.
  auto connectAsNobody = [&]() -> int {
    pid_t child = fork();
    if (child == 0) {
      prctl(PR_SET_KEEPCAPS, 1);
      if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
      __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[2]{};
      data[0].effective = data[0].permitted = 1u << CAP_DAC_OVERRIDE;
      if (syscall(SYS_capset, &header, data) != 0) _exit(11);
      RawClient c(socket);
      if (!c.connected()) _exit(12);
      c.sendFrame(static_cast<uint16_t>(protocol::Command::kStats), {});
      auto reply = c.receive();
      if (!reply) _exit(13);
      if (reply->status != protocol::Status::kPermissionDenied) _exit(14);
      if (reply->message.find("run cppops as that user or as root") == std::string::npos) _exit(15);
      _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  CHECK(connectAsNobody() == 0);
  for (int i = 0; i < 5; ++i) connectAsNobody();
  CHECK(t.alive());
  std::string err = t.err();
  CHECK(err.find("refused a connection from uid 65534") != std::string::npos);
  // Six refusals within a second: rate-limited to one line.
  size_t lines = 0;
  for (size_t at = err.find("refused a connection"); at != std::string::npos; at = err.find("refused a connection", at + 1)) ++lines;
  CHECK(lines <= 2);
}

TEST_CASE("the CLI run by another user explains the permission problem") {
  if (!runningAsRoot()) {
    WARN("skipped: needs root to run the CLI as another user");
    return;
  }
  TempDir dir;
  TargetProcess t({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE_FALSE(t.waitForSocket().empty());
  auto r = runCli({"stats", std::to_string(t.pid())}, dir.path(), kNobody);
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("permission denied") != std::string::npos);
  CHECK(r.err.find("run cppops as that user or as root") != std::string::npos);
  auto j = runCli({"stats", std::to_string(t.pid()), "--json"}, dir.path(), kNobody);
  CHECK(j.exit_code == 4);
  CHECK(nlohmann::json::parse(j.out).at("error").at("kind") == "permission");
  CHECK(t.alive());
}
