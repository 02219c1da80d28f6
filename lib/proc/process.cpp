#include "proc/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <string_view>

#include "protocol/rendezvous.h"

namespace cppops::proc {

std::optional<std::string> readFile(const std::string& path, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() >= limit) break;
  }
  ::close(fd);
  return out;
}

std::vector<pid_t> listPids() {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  if (d == nullptr) return pids;
  while (dirent* e = readdir(d)) {
    pid_t pid = 0;
    std::string_view name(e->d_name);
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec == std::errc() && p == name.data() + name.size() && pid > 0) pids.push_back(pid);
  }
  closedir(d);
  std::sort(pids.begin(), pids.end());
  return pids;
}

uint64_t namespaceId(pid_t pid, const char* kind) {
  struct stat st{};
  std::string path = "/proc/" + std::to_string(pid) + "/ns/" + kind;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

std::optional<ProcessInfo> readProcess(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  auto stat_line = readFile(dir + "/stat", 4096);
  if (!stat_line) return std::nullopt;
  ProcessInfo info;
  info.pid = pid;
  size_t open = stat_line->find('('), close = stat_line->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  info.name = stat_line->substr(open + 1, close - open - 1);
  // After ") " come state and ppid.
  if (close + 4 < stat_line->size()) info.ppid = static_cast<pid_t>(std::strtol(stat_line->c_str() + close + 4, nullptr, 10));
  info.start_ticks = protocol::startTicksFromStat(*stat_line).value_or(0);

  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) info.uid = st.st_uid;
  char exe[PATH_MAX];
  ssize_t n = ::readlink((dir + "/exe").c_str(), exe, sizeof exe - 1);
  if (n > 0) info.exe.assign(exe, static_cast<size_t>(n));
  info.mount_ns = namespaceId(pid, "mnt");

  info.ns_pid = pid;
  if (auto status = readFile(dir + "/status", 16384)) {
    size_t at = status->find("\nNSpid:");
    if (at != std::string::npos) {
      size_t eol = status->find('\n', at + 1);
      std::string_view line(status->data() + at + 7, (eol == std::string::npos ? status->size() : eol) - at - 7);
      size_t last = line.find_last_of(" \t");
      if (last != std::string_view::npos) line.remove_prefix(last + 1);
      pid_t inner = 0;
      auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), inner);
      if (ec == std::errc() && inner > 0) info.ns_pid = inner;
    }
  }
  return info;
}

std::string userName(uid_t uid) {
  passwd pw{};
  passwd* result = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result != nullptr) return pw.pw_name;
  return std::to_string(uid);
}

std::optional<std::string> environmentVariable(pid_t pid, const std::string& name) {
  auto env = readFile("/proc/" + std::to_string(pid) + "/environ");
  if (!env) return std::nullopt;
  const std::string prefix = name + "=";
  size_t pos = 0;
  while (pos < env->size()) {
    size_t end = env->find('\0', pos);
    if (end == std::string::npos) end = env->size();
    if (env->compare(pos, prefix.size(), prefix) == 0) return env->substr(pos + prefix.size(), end - pos - prefix.size());
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace cppops::proc
