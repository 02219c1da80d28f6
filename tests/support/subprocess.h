// Real processes for tests: targets carrying an agent, and the real `cppops` binary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cppops::test {

using namespace std::chrono_literals;

// Paths baked in by CMake.
std::string cliPath();
std::string agentLibraryPath();
std::string targetPath(const std::string& name);
std::string sourceDir();

// A private directory (0700) removed with everything in it when the object dies; every test gets its own
// socket directory so tests can run in parallel without seeing each other's agents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct RunAs {
  uid_t uid;
  gid_t gid;
};
inline constexpr RunAs kNobody{65534, 65534};

struct TargetOptions {
  std::string program;                // a name in tests/targets (built next to the tests), or an absolute path
  std::vector<std::string> args;
  bool preload = false;               // LD_PRELOAD the shared agent
  std::map<std::string, std::string> env;  // added to (or replacing) the test's environment
  std::optional<RunAs> run_as;
};

// Starts a target, captures its stdout and stderr to files, and kills it (SIGKILL) in the destructor.
class TargetProcess {
 public:
  explicit TargetProcess(TargetOptions options, const std::string& socket_dir);
  ~TargetProcess();
  TargetProcess(const TargetProcess&) = delete;
  TargetProcess& operator=(const TargetProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits (bounded retry) until the agent's socket appears in the socket directory; returns its path or "".
  std::string waitForSocket(std::chrono::milliseconds limit = 10s) const;
  // Waits until stdout contains `text`.
  bool waitForOutput(const std::string& text, std::chrono::milliseconds limit = 10s) const;
  std::string out() const;
  std::string err() const;
  // The thread ids the target announced on stdout as "tid ROLE N" lines, by role.
  std::map<std::string, pid_t> announcedTids() const;
  bool alive() const;
  // Waits for exit; returns the raw wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds limit = 10s);
  void kill(int signal);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string socket_dir_;
  TempDir files_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the real cppops binary with CPPOPS_SOCKET_DIR=socket_dir.
CliResult runCli(const std::vector<std::string>& args, const std::string& socket_dir,
                 std::optional<RunAs> run_as = std::nullopt, std::chrono::milliseconds limit = 60s);

// The real cppops binary running in the background, for tests that act on it while it works (signals, timing).
// Killed (SIGKILL) in the destructor if still running.
class BackgroundCli {
 public:
  BackgroundCli(const std::vector<std::string>& args, const std::string& socket_dir);
  ~BackgroundCli();
  BackgroundCli(const BackgroundCli&) = delete;
  BackgroundCli& operator=(const BackgroundCli&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for exit; returns the raw wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds limit = 10s);
  std::string out() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  TempDir files_;
};

// Runs any command line and captures its output (for comparisons against programs without the agent).
CliResult runProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                     std::chrono::milliseconds limit = 60s);

bool runningAsRoot();

// The threads of process `pid`, as /proc lists them.
std::vector<pid_t> tasksOf(pid_t pid);
// The file /proc/PID/task/TID/NAME, "" when unreadable.
std::string taskFile(pid_t pid, pid_t tid, const std::string& name);
// The thread of `pid` named `name`, or 0.
pid_t taskNamed(pid_t pid, const std::string& name);

// The full path of a program on $PATH (runProgram does not search it), or the bare name when it is not there.
std::string findTool(const std::string& name);

}  // namespace cppops::test
