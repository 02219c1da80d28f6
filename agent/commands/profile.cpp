#include "commands.h"
#include "profiler.h"
#include "protocol/messages.h"

namespace cppops::agent {

namespace {

constexpr uint32_t kMaxDurationMs = 3600 * 1000;
constexpr uint32_t kMaxRateHz = 10000;

}  // namespace

// Validates the request and hands the connection to the profiler, whose thread answers when the profile is over:
// the control loop returns to its other clients at once.
Reply handleProfile(wire::Reader& args, const RequestContext& context) {
  protocol::ProfileRequest request;
  if (!request.decode(args)) return errorReply(protocol::Status::kBadRequest, "malformed profile request");
  if (request.duration_ms == 0 || request.duration_ms > kMaxDurationMs)
    return errorReply(protocol::Status::kBadRequest, "profile duration must be 1 ms to 1 hour, not " +
                                                         std::to_string(request.duration_ms) + " ms");
  if (request.rate_hz == 0 || request.rate_hz > kMaxRateHz)
    return errorReply(protocol::Status::kBadRequest,
                      "profile rate must be 1 to 10000 Hz, not " + std::to_string(request.rate_hz) + " Hz");
  if (request.mode != protocol::kProfileCpu && request.mode != protocol::kProfileWall)
    return errorReply(protocol::Status::kBadRequest,
                      "unknown profile mode " + std::to_string(request.mode) + "; 0 is cpu, 1 is wall");
  if (std::string busy = profiler().busyReason(); !busy.empty())
    return errorReply(protocol::Status::kBusy, std::move(busy));
  Reply reply;
  const pid_t requester = context.peer_pid;
  reply.take_connection = [request, requester](int fd) { profiler().start(fd, request, requester); };
  return reply;
}

}  // namespace cppops::agent
