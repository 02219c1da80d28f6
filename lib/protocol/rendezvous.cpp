#include "protocol/rendezvous.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

namespace cppops::protocol {

std::string socketDir(uid_t uid, const char* socket_dir_env, const char* xdg_runtime_dir_env) {
  if (socket_dir_env != nullptr && socket_dir_env[0] != '\0') return socket_dir_env;
  // XDG_RUNTIME_DIR is private to the user by construction (systemd creates it 0700), so it is preferred to /tmp.
  if (xdg_runtime_dir_env != nullptr && xdg_runtime_dir_env[0] == '/') return std::string(xdg_runtime_dir_env) + "/cppops";
  return "/tmp/cppops-" + std::to_string(uid);
}

std::string socketFileName(pid_t pid, uint64_t start_ticks) {
  return std::to_string(pid) + "-" + std::to_string(start_ticks) + ".sock";
}

std::string stagingFileName(pid_t pid, uint64_t start_ticks) {
  return std::to_string(pid) + "-" + std::to_string(start_ticks) + ".new";
}

namespace {

std::optional<SocketName> parseFileName(std::string_view name, std::string_view suffix) {
  if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix) return std::nullopt;
  name.remove_suffix(suffix.size());
  size_t dash = name.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  SocketName out;
  auto [p1, e1] = std::from_chars(name.data(), name.data() + dash, out.pid);
  auto [p2, e2] = std::from_chars(name.data() + dash + 1, name.data() + name.size(), out.start_ticks);
  if (e1 != std::errc() || p1 != name.data() + dash || e2 != std::errc() || p2 != name.data() + name.size() ||
      out.pid <= 0)
    return std::nullopt;
  return out;
}

}  // namespace

std::optional<SocketName> parseSocketFileName(std::string_view name) { return parseFileName(name, ".sock"); }

std::optional<SocketName> parseStagingFileName(std::string_view name) { return parseFileName(name, ".new"); }

std::optional<uint64_t> startTicksFromStat(std::string_view line) {
  size_t close = line.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  // Fields after the name start at field 3 (state); starttime is field 22, the 20th of them.
  std::string_view rest = line.substr(close + 1);
  int field = 2;
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\n') ++i;
    if (start == i) break;
    if (++field == 22) {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(rest.data() + start, rest.data() + i, v);
      if (ec != std::errc()) return std::nullopt;
      return v;
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> processStartTicks(pid_t pid, const char* proc_root) {
  char path[128];
  std::snprintf(path, sizeof path, "%s/%d/stat", proc_root, static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // A stat line is at most a few hundred bytes (comm is 16 bytes at most).
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  return startTicksFromStat(std::string_view(buf, static_cast<size_t>(n)));
}

}  // namespace cppops::protocol
