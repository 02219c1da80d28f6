#include "profile/agent_source.h"

#include <utility>

#include "client/client.h"
#include "profile/wall_state.h"
#include "protocol/messages.h"

namespace cppops::profile {

namespace {

RawProfile toRaw(pid_t pid, Mode mode, protocol::ProfileReply& reply, Symbolizer* symbolizer) {
  RawProfile raw;
  raw.pid = pid;
  raw.mode = mode;
  raw.period_ns = reply.period_ns;
  raw.duration_ns = reply.duration_ns;
  raw.dropped = reply.dropped;
  for (auto& t : reply.threads) raw.thread_names.emplace_back(static_cast<pid_t>(t.tid), std::move(t.name));
  raw.samples.reserve(reply.samples.size());
  for (auto& s : reply.samples) {
    RawSample r;
    r.tid = static_cast<pid_t>(s.tid);
    r.weight = s.weight;
    if (mode == Mode::kWall) r.state = wallState(s.syscall_line, s.pcs, symbolizer);
    r.pcs = std::move(s.pcs);
    raw.samples.push_back(std::move(r));
  }
  return raw;
}

}  // namespace

Result<Capture> profileThroughAgent(pid_t pid, const CaptureOptions& options) {
  auto conn = client::Connection::open(pid, options.timeout);
  if (!conn) return conn.error();
  if (!conn->supports(protocol::Command::kProfile))
    return makeError(ErrorKind::kAgent, "the agent in process " + std::to_string(pid) + " (version " +
                                            conn->hello().agent_version +
                                            ") cannot take profiles; restart the process with a newer agent");

  protocol::ProfileRequest request;
  request.duration_ms = static_cast<uint32_t>(options.duration.count());
  request.rate_hz = options.rate_hz;
  request.mode = options.mode == Mode::kWall ? protocol::kProfileWall : protocol::kProfileCpu;
  wire::Writer w;
  request.encode(w);
  // The reply comes after the whole duration; the agent's own reply deadline bounds how long it then waits.
  conn->setTimeout(options.duration + std::max(options.timeout, std::chrono::milliseconds(5000)));
  auto payload = conn->call(protocol::Command::kProfile, w.take());
  if (!payload) return payload.error();
  auto reply = client::decode<protocol::ProfileReply>(*payload);
  if (!reply) return reply.error();

  Capture capture;
  capture.notes = std::move(reply->notes);
  // After the profile, so that libraries loaded while it ran are known. Libraries unloaded meanwhile are not:
  // their frames stay addresses.
  auto symbolizer = Symbolizer::forProcess(pid);
  if (symbolizer)
    capture.symbolizer = std::move(*symbolizer);
  else
    capture.notes.push_back("frames are not symbolized: " + symbolizer.error().message);
  capture.raw = toRaw(pid, options.mode, *reply, capture.symbolizer.get());
  return capture;
}

}  // namespace cppops::profile
