#include "discovery/agent_list.h"

#include <future>

namespace cppops::discovery {

std::vector<AgentProcess> listAgentProcesses(client::Milliseconds timeout) {
  std::vector<AgentProcess> out;
  std::vector<std::future<Result<client::Connection>>> handshakes;
  for (auto& endpoint : findAgents()) {
    auto info = proc::readProcess(endpoint.pid);
    if (!info) continue;  // exited since discovery
    out.push_back(AgentProcess{std::move(*info), endpoint, std::nullopt, {}});
    handshakes.push_back(std::async(std::launch::async, [endpoint, timeout] {
      return client::Connection::open(endpoint, timeout);
    }));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    auto conn = handshakes[i].get();
    if (conn)
      out[i].hello = conn->hello();
    else
      out[i].problem = conn.error().message;
  }
  // A connection that found a stale socket means the process no longer carries a live agent.
  std::vector<AgentProcess> live;
  for (auto& a : out)
    if (a.hello || a.problem.find("stale") == std::string::npos) live.push_back(std::move(a));
  return live;
}

}  // namespace cppops::discovery
