#include "discovery/discovery.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>

#include "proc/process.h"
#include "protocol/rendezvous.h"

namespace cppops::discovery {

namespace {

constexpr const char* kAgentHint =
    "start it with LD_PRELOAD=libcppops_agent.so, or link cppops::agent and call cppops_agent_start(); "
    "`cppops stack`, `profile` (cpu and wall), `watch`, `top` and `heap` (the kernel's view) work without one";

// Directories that may hold sockets, relative to a root ("" for ours, "/proc/PID/root" for a container's): the
// conventional places for every user, since we cannot know each target's environment up front.
std::vector<std::string> conventionalDirectories(const std::string& root) {
  std::vector<std::string> dirs;
  // Only "<prefix><uid>" entries: other names are not ours and may belong to anyone.
  auto addMatching = [&](const std::string& parent, const std::string& prefix, const std::string& suffix) {
    DIR* d = opendir((root + parent).c_str());
    if (d == nullptr) return;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
      if (name.find_first_not_of("0123456789", prefix.size()) != std::string::npos) continue;
      dirs.push_back(root + parent + "/" + name + suffix);
    }
    closedir(d);
  };
  addMatching("/tmp", "cppops-", "");
  addMatching("/run/user", "", "/cppops");
  return dirs;
}

std::string ownDirectory() {
  return protocol::socketDir(geteuid(), std::getenv(protocol::kSocketDirEnv), std::getenv("XDG_RUNTIME_DIR"));
}

struct Found {
  protocol::SocketName name;
  std::string path;
};

// The sockets in dir; and, when `staging` is given, the staging names there (an agent between bind and rename, or
// the leftover of one that died there).
std::vector<Found> listSockets(const std::string& dir, std::vector<Found>* staging = nullptr) {
  std::vector<Found> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (auto name = protocol::parseSocketFileName(e->d_name)) out.push_back({*name, dir + "/" + e->d_name});
    else if (staging == nullptr) continue;
    else if (auto staged = protocol::parseStagingFileName(e->d_name)) staging->push_back({*staged, dir + "/" + e->d_name});
  }
  closedir(d);
  return out;
}

bool isRunning(const protocol::SocketName& name) {
  auto start = protocol::processStartTicks(name.pid);
  return start && *start == name.start_ticks;
}

bool isSocket(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// Removal is best effort: the directory may belong to another user, and then it is theirs to clean.
void removeStale(const std::string& path) { ::unlink(path.c_str()); }

}  // namespace

std::vector<std::string> searchDirectories() {
  std::vector<std::string> dirs{ownDirectory()};
  for (auto& d : conventionalDirectories(""))
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  return dirs;
}

std::vector<Endpoint> findAgents() {
  std::map<pid_t, Endpoint> found;

  // Our own mount namespace: PIDs in socket names are ours.
  for (const auto& dir : searchDirectories()) {
    std::vector<Found> staging;
    for (const auto& s : listSockets(dir, &staging)) {
      if (!isRunning(s.name)) {
        removeStale(s.path);
        continue;
      }
      found[s.name.pid] = Endpoint{s.name.pid, s.name.pid, s.name.start_ticks, s.path};
    }
    // A live process's staging name is its agent starting: not listed yet, and left alone.
    for (const auto& s : staging)
      if (!isRunning(s.name)) removeStale(s.path);
  }

  // Other mount namespaces (containers), one representative process each. The PID in a socket name is the one
  // the agent sees; map it back through NSpid and the start time, which the kernel reports the same everywhere.
  const uint64_t own_mnt = proc::namespaceId(getpid(), "mnt");
  std::map<uint64_t, std::vector<proc::ProcessInfo>> by_namespace;
  for (pid_t pid : proc::listPids()) {
    uint64_t mnt = proc::namespaceId(pid, "mnt");
    if (mnt == 0 || mnt == own_mnt) continue;
    if (auto info = proc::readProcess(pid)) by_namespace[mnt].push_back(std::move(*info));
  }
  for (const auto& [mnt, members] : by_namespace) {
    const std::string root = "/proc/" + std::to_string(members.front().pid) + "/root";
    for (const auto& dir : conventionalDirectories(root)) {
      for (const auto& s : listSockets(dir)) {
        auto member = std::find_if(members.begin(), members.end(), [&](const proc::ProcessInfo& p) {
          return p.ns_pid == s.name.pid && p.start_ticks == s.name.start_ticks;
        });
        if (member == members.end()) continue;  // stale, or another PID namespace sharing this mount namespace
        found.try_emplace(member->pid, Endpoint{member->pid, s.name.pid, s.name.start_ticks, s.path});
      }
    }
  }

  std::vector<Endpoint> out;
  for (auto& [pid, e] : found) out.push_back(std::move(e));
  return out;
}

Result<Endpoint> findAgent(pid_t pid) {
  auto info = proc::readProcess(pid);
  if (!info)
    return makeError(ErrorKind::kNoProcess,
                     "process " + std::to_string(pid) + " does not exist; list agent processes with `cppops ps`");

  const bool other_user = info->uid != geteuid() && geteuid() != 0;
  const bool in_container = info->mount_ns != 0 && info->mount_ns != proc::namespaceId(getpid(), "mnt");
  const std::string root = in_container ? "/proc/" + std::to_string(pid) + "/root" : "";

  // The target's own environment decides where its agent put the socket; read it where we may.
  std::vector<std::string> dirs;
  auto env_dir = proc::environmentVariable(pid, protocol::kSocketDirEnv);
  auto env_xdg = proc::environmentVariable(pid, "XDG_RUNTIME_DIR");
  dirs.push_back(root + protocol::socketDir(info->uid, env_dir ? env_dir->c_str() : nullptr,
                                            env_xdg ? env_xdg->c_str() : nullptr));
  dirs.push_back(root + protocol::socketDir(info->uid, nullptr, nullptr));
  if (!in_container) dirs.push_back(ownDirectory());

  const std::string name = protocol::socketFileName(info->ns_pid, info->start_ticks);
  bool denied = false;
  for (const auto& dir : dirs) {
    const std::string path = dir + "/" + name;
    if (isSocket(path)) return Endpoint{pid, info->ns_pid, info->start_ticks, path};
    if (errno == EACCES) denied = true;
    // A socket for the same PID but another start time is a predecessor's leftover.
    for (const auto& s : listSockets(dir))
      if (s.name.pid == info->ns_pid && s.name.start_ticks != info->start_ticks) removeStale(s.path);
  }

  if (other_user || denied)
    return makeError(ErrorKind::kPermission, "permission denied: process " + std::to_string(pid) + " (" + info->name +
                                                 ") belongs to user " + proc::userName(info->uid) +
                                                 "; run cppops as that user or as root");
  return makeError(ErrorKind::kNoProcess, "process " + std::to_string(pid) + " (" + info->name +
                                              ") has no cppops agent: " + kAgentHint);
}

}  // namespace cppops::discovery
