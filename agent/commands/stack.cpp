#include "commands.h"
#include "protocol/messages.h"
#include "stack_capture.h"

namespace cppops::agent {

Reply handleStack(wire::Reader& args, const RequestContext&) {
  protocol::StackRequest request;
  if (!request.decode(args)) return errorReply(protocol::Status::kBadRequest, "malformed stack request");
  // Bounded so that one request cannot hold the control thread (and every other client) for long.
  request.timeout_ms = std::min<uint32_t>(std::max<uint32_t>(request.timeout_ms, 10), 10000);
  wire::Writer w;
  stackCapture().capture(request).encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
