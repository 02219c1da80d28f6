// What the kernel says about a whole process, read from /proc without touching the process itself.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cppops::proc {

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  uid_t uid = 0;            // effective uid, from the owner of /proc/PID
  std::string name;         // comm: the kernel's 15-character name
  std::string exe;          // readlink /proc/PID/exe; "" when we may not read it
  uint64_t start_ticks = 0;
  uint64_t mount_ns = 0;    // inode of /proc/PID/ns/mnt; 0 when unreadable
  pid_t ns_pid = 0;         // the PID as the process sees itself (last NSpid entry); == pid outside containers
};

// All PIDs in /proc, ascending.
std::vector<pid_t> listPids();

// nullopt when the process is gone. Fields we may not read are left empty rather than failing the whole read.
std::optional<ProcessInfo> readProcess(pid_t pid);

// Namespace inode of /proc/PID/ns/<kind> ("mnt", "pid"), 0 when unreadable.
uint64_t namespaceId(pid_t pid, const char* kind);

// Login name for uid, or the number when there is none.
std::string userName(uid_t uid);

// Reads a whole (small) file; nullopt when it cannot be opened. errno is left as the open/read failed.
std::optional<std::string> readFile(const std::string& path, size_t limit = 1 << 20);

// One variable from /proc/PID/environ (readable by the owner and root), nullopt when unset or unreadable.
std::optional<std::string> environmentVariable(pid_t pid, const std::string& name);

}  // namespace cppops::proc
