// The agent processes on this host together with what their handshake says: the data behind `cppops ps` and
// `cppops tree`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "discovery/discovery.h"
#include "proc/process.h"

namespace cppops::discovery {

struct AgentProcess {
  proc::ProcessInfo process;
  Endpoint endpoint;
  std::optional<protocol::HelloReply> hello;  // nullopt when the agent did not answer
  std::string problem;                        // why not, for the human view
};

// Handshakes run concurrently, so one wedged agent costs the listing `timeout` once, not once per agent.
std::vector<AgentProcess> listAgentProcesses(client::Milliseconds timeout);

}  // namespace cppops::discovery
