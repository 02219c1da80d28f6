// What the agent answers. Each command is one function in its own file (commands/<name>.cpp); this table is
// the only place that knows them all, and the handshake's capability list is read from it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "protocol/protocol.h"
#include "protocol/wire.h"

namespace cppops::agent {

struct Reply {
  protocol::Status status = protocol::Status::kOk;
  std::vector<uint8_t> payload;
  // For long requests (a 30 s profile): when set, the control loop gives up the connection instead of replying,
  // and calls this with the socket, which the callee now owns (it replies and closes, typically from a thread of
  // its own). The control loop goes straight back to serving everyone else.
  std::function<void(int fd)> take_connection;
};

struct RequestContext {
  pid_t peer_pid = 0;
  uid_t peer_uid = 0;
};

Reply errorReply(protocol::Status status, std::string message);
Reply okReply(std::vector<uint8_t> payload);

// Runs on the control thread. Never throws: failures become error replies. Async-signal-safe: no.
Reply dispatch(protocol::Command command, wire::Reader& args, const RequestContext& context);

std::vector<std::string> capabilities();

// The individual commands (one file each under agent/commands/).
Reply handleHello(wire::Reader& args, const RequestContext& context);
Reply handleStats(wire::Reader& args, const RequestContext& context);
Reply handleVersion(wire::Reader& args, const RequestContext& context);
Reply handleStack(wire::Reader& args, const RequestContext& context);
Reply handleSymbols(wire::Reader& args, const RequestContext& context);
Reply handleProfile(wire::Reader& args, const RequestContext& context);
Reply handleMetrics(wire::Reader& args, const RequestContext& context);
Reply handleHeap(wire::Reader& args, const RequestContext& context);
Reply handleGc(wire::Reader& args, const RequestContext& context);
Reply handleHeapProfile(wire::Reader& args, const RequestContext& context);

}  // namespace cppops::agent
