#include "subprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "proc/process.h"
#include "protocol/rendezvous.h"

extern char** environ;

namespace cppops::test {

namespace {

// Whole files: a --json stack dump of a thousand threads is several MiB.
std::string slurp(const std::string& path) { return proc::readFile(path, size_t{256} << 20).value_or(""); }

std::vector<std::string> environmentWith(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  // Leave sanitizer settings of the test binary out of targets that are not sanitized themselves.
  env.erase("LD_PRELOAD");
  for (const auto& [k, v] : extra) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// fork + exec with stdout/stderr redirected to files. Only async-signal-safe calls after fork.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& out_path,
            const std::string& err_path, std::optional<RunAs> run_as) {
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0) throw std::runtime_error("cannot create output files for a test process");
  if (run_as) {
    // The unprivileged child must be able to write its own output.
    (void)fchown(out_fd, run_as->uid, run_as->gid);
    (void)fchown(err_fd, run_as->uid, run_as->gid);
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    int null_fd = ::open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    if (run_as) {
      if (setgroups(0, nullptr) != 0 || setgid(run_as->gid) != 0 || setuid(run_as->uid) != 0) _exit(126);
    }
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  return pid;
}

std::optional<int> waitWithLimit(pid_t pid, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(2ms);
  }
}

}  // namespace

std::string cliPath() { return CPPOPS_TEST_CLI; }
std::string agentLibraryPath() { return CPPOPS_TEST_AGENT_SO; }
std::string targetPath(const std::string& name) { return std::string(CPPOPS_TEST_TARGETS_DIR) + "/" + name; }
std::string sourceDir() { return CPPOPS_TEST_SOURCE_DIR; }
std::vector<pid_t> tasksOf(pid_t pid) {
  std::vector<pid_t> tids;
  if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/task").c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') tids.push_back(static_cast<pid_t>(std::stol(e->d_name)));
    closedir(d);
  }
  return tids;
}

std::string taskFile(pid_t pid, pid_t tid, const std::string& name) {
  return proc::readFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + name).value_or("");
}

pid_t taskNamed(pid_t pid, const std::string& name) {
  for (pid_t tid : tasksOf(pid))
    if (taskFile(pid, tid, "comm") == name + "\n") return tid;
  return 0;
}

bool runningAsRoot() { return geteuid() == 0; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/cppopstest-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

namespace {

void removeTree(const std::string& path) {
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      const std::string child = path + "/" + e->d_name;
      if (e->d_type == DT_DIR)
        removeTree(child);
      else
        ::unlink(child.c_str());
    }
    closedir(d);
  }
  ::rmdir(path.c_str());
}

}  // namespace

TempDir::~TempDir() { removeTree(path_); }

TargetProcess::TargetProcess(TargetOptions options, const std::string& socket_dir) : socket_dir_(socket_dir) {
  auto env_map = options.env;
  env_map.emplace("CPPOPS_SOCKET_DIR", socket_dir);
  if (options.preload) env_map["LD_PRELOAD"] = agentLibraryPath();
  std::vector<std::string> argv{options.program[0] == '/' ? options.program : targetPath(options.program)};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  if (options.run_as) chmod(files_.path().c_str(), 0755);
  pid_ = spawn(argv, environmentWith(env_map), files_.path() + "/out", files_.path() + "/err", options.run_as);
}

TargetProcess::~TargetProcess() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitWithLimit(pid_, 10s);
  }
}

std::string TargetProcess::waitForSocket(std::chrono::milliseconds limit) const {
  const std::string prefix = std::to_string(pid_) + "-";
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (DIR* d = opendir(socket_dir_.c_str())) {
      std::string found;
      while (dirent* e = readdir(d))
        if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0 && protocol::parseSocketFileName(e->d_name))
          found = socket_dir_ + "/" + e->d_name;
      closedir(d);
      if (!found.empty()) return found;
    }
    if (!alive()) return "";
    std::this_thread::sleep_for(5ms);
  }
  return "";
}

bool TargetProcess::waitForOutput(const std::string& text, std::chrono::milliseconds limit) const {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (out().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(5ms);
  }
  // The test's REQUIRE names only the call: what the target said (or why it is stuck) goes to the test's log.
  std::cerr << "target " << pid_ << " did not print \"" << text << "\" within " << limit.count() << " ms ("
            << (alive() ? "still running" : "exited") << ")\n--- its stdout:\n" << out() << "--- its stderr:\n"
            << err() << "---\n";
  return false;
}

std::string TargetProcess::out() const { return slurp(files_.path() + "/out"); }
std::string TargetProcess::err() const { return slurp(files_.path() + "/err"); }

std::map<std::string, pid_t> TargetProcess::announcedTids() const {
  std::map<std::string, pid_t> tids;
  std::istringstream lines(out());
  std::string word, role;
  long tid = 0;
  while (lines >> word)
    if (word == "tid" && lines >> role >> tid) tids[role] = static_cast<pid_t>(tid);
  return tids;
}

bool TargetProcess::alive() const {
  if (reaped_) return false;
  // A zombie still answers kill(0); waitid with WNOWAIT tells exited children apart without reaping them.
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_)
    return false;
  return ::kill(pid_, 0) == 0;
}

std::optional<int> TargetProcess::wait(std::chrono::milliseconds limit) {
  auto status = waitWithLimit(pid_, limit);
  if (status) reaped_ = true;
  return status;
}

void TargetProcess::kill(int signal) { ::kill(pid_, signal); }

namespace {

CliResult runCaptured(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                      std::optional<RunAs> run_as, std::chrono::milliseconds limit) {
  TempDir files;
  if (run_as) chmod(files.path().c_str(), 0755);
  CliResult r;
  pid_t pid = spawn(argv, environmentWith(env), files.path() + "/out", files.path() + "/err", run_as);
  if (auto status = waitWithLimit(pid, limit)) {
    r.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  } else {
    ::kill(pid, SIGKILL);
    waitWithLimit(pid, 10s);
  }
  r.out = slurp(files.path() + "/out");
  r.err = slurp(files.path() + "/err");
  return r;
}

}  // namespace

BackgroundCli::BackgroundCli(const std::vector<std::string>& args, const std::string& socket_dir) {
  std::vector<std::string> argv{cliPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_ = spawn(argv, environmentWith({{"CPPOPS_SOCKET_DIR", socket_dir}}), files_.path() + "/out",
               files_.path() + "/err", std::nullopt);
}

BackgroundCli::~BackgroundCli() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitWithLimit(pid_, 10s);
  }
}

std::optional<int> BackgroundCli::wait(std::chrono::milliseconds limit) {
  auto status = waitWithLimit(pid_, limit);
  if (status) reaped_ = true;
  return status;
}

std::string BackgroundCli::out() const { return slurp(files_.path() + "/out"); }

CliResult runProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                     std::chrono::milliseconds limit) {
  return runCaptured(argv, env, std::nullopt, limit);
}

CliResult runCli(const std::vector<std::string>& args, const std::string& socket_dir, std::optional<RunAs> run_as,
                 std::chrono::milliseconds limit) {
  std::vector<std::string> argv{cliPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCaptured(argv, {{"CPPOPS_SOCKET_DIR", socket_dir}}, run_as, limit);
}

std::string findTool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return name;
}

}  // namespace cppops::test
