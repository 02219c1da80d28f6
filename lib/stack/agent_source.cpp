#include "stack/agent_source.h"

#include "client/client.h"
#include "protocol/messages.h"
#include "stack/agent_names.h"
#include "stack/dump_pipeline.h"

namespace cppops::stack {

namespace {

RawDump toRaw(pid_t pid, protocol::StackReply reply) {
  RawDump raw;
  raw.pid = pid;
  raw.source = "agent";
  raw.agent_tid = static_cast<pid_t>(reply.agent_tid);
  raw.total_ns = reply.total_ns;
  raw.max_pause_ns = reply.max_handler_ns;
  raw.read_asleep = reply.read_asleep;
  raw.notes = std::move(reply.notes);
  raw.threads.reserve(reply.threads.size());
  for (size_t i = 0; i < reply.threads.size(); ++i) {
    auto& t = reply.threads[i];
    RawThread r;
    if (i < reply.thread_names.size()) r.name = std::move(reply.thread_names[i]);
    r.tid = static_cast<pid_t>(t.tid);
    r.status = t.status <= 3 ? static_cast<CaptureStatus>(t.status) : CaptureStatus::kNoAnswer;
    r.pcs = std::move(t.pcs);
    r.syscall_line = std::move(t.syscall_line);
    r.lock_window_address = t.lock_window_address;
    r.lock_window.assign(t.lock_window.begin(), t.lock_window.end());
    r.handler_ns = t.handler_ns;
    raw.threads.push_back(std::move(r));
  }
  return raw;
}

}  // namespace

Result<StackDump> dumpThroughAgent(pid_t pid, const DumpOptions& options) {
  DumpPipeline::Clock::time_point start = DumpPipeline::Clock::now();
  auto conn = client::Connection::open(pid, options.timeout);
  if (!conn) return conn.error();
  if (!conn->supports(protocol::Command::kStack))
    return makeError(ErrorKind::kAgent, "the agent in process " + std::to_string(pid) + " (version " +
                                            conn->hello().agent_version +
                                            ") cannot take stack dumps; restart the process with a newer agent");

  DumpPipeline pipeline(pid, start, options.exits_after);
  protocol::StackRequest request;
  request.timeout_ms = static_cast<uint32_t>(options.capture_timeout.count());
  request.use_signals = options.use_signals ? 1 : 0;
  wire::Writer w;
  request.encode(w);
  auto payload = conn->call(protocol::Command::kStack, w.take());
  if (!payload) return payload.error();
  auto reply = client::decode<protocol::StackReply>(*payload);
  if (!reply) return reply.error();

  const int signal = static_cast<int>(reply->signal);
  client::Connection& agent = *conn;
  return pipeline.finish(toRaw(pid, std::move(*reply)), signal, [&agent](const RawDump& raw, FrameSource frames) {
    return agentNames(agent, raw, std::move(frames));
  });
}

}  // namespace cppops::stack
