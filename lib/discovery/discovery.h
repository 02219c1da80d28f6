// Finding the agents on this host: which processes carry one and where their sockets are.
//
// Sockets are named "<pid>-<start_ticks>.sock" (protocol/rendezvous.h), so liveness is decided from /proc alone:
// a socket whose process is gone, or whose PID now belongs to a process that started later, is stale and is
// removed when we may. Agents in other mount namespaces (containers) are reached through /proc/PID/root.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace cppops::discovery {

struct Endpoint {
  pid_t pid = 0;             // as this CLI sees it
  pid_t ns_pid = 0;          // as the agent sees itself (differs inside a PID namespace)
  uint64_t start_ticks = 0;
  std::string socket_path;   // usable from this CLI's mount namespace
};

// Every live agent we can see, ascending by PID. Removes stale sockets found on the way.
std::vector<Endpoint> findAgents();

// The agent of one process, or an error saying why there is none and what to do.
Result<Endpoint> findAgent(pid_t pid);

// The directories this CLI looks in (for messages and the man page's FILES section).
std::vector<std::string> searchDirectories();

}  // namespace cppops::discovery
