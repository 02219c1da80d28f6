#include <unistd.h>

#include "commands.h"
#include "protocol/messages.h"
#include "protocol/rendezvous.h"
#include "core/version.h"

namespace cppops::agent {

Reply handleHello(wire::Reader&, const RequestContext&) {
  protocol::HelloReply hello;
  hello.agent_version = kAgentVersion;
  hello.protocol_version = protocol::kProtocolVersion;
  hello.pid = static_cast<uint32_t>(getpid());
  hello.start_ticks = protocol::processStartTicks(getpid()).value_or(0);
  hello.capabilities = capabilities();
  wire::Writer w;
  hello.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
