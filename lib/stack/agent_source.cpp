#include "stack/agent_source.h"

#include <future>
#include <map>

#include "client/client.h"
#include "proc/task.h"
#include "protocol/messages.h"
#include "stack/analyze.h"
#include "symbolize/symbolizer.h"

namespace cppops::stack {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t elapsedNs(Clock::time_point since) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count());
}

std::map<pid_t, proc::TaskStat> readTaskStats(pid_t pid) {
  std::map<pid_t, proc::TaskStat> stats;
  for (pid_t tid : proc::listTasks(pid))
    if (auto s = proc::readTaskStat(pid, tid)) stats.emplace(tid, std::move(*s));
  return stats;
}

RawDump toRaw(pid_t pid, protocol::StackReply reply) {
  RawDump raw;
  raw.pid = pid;
  raw.source = "agent";
  raw.agent_tid = static_cast<pid_t>(reply.agent_tid);
  raw.total_ns = reply.total_ns;
  raw.max_pause_ns = reply.max_handler_ns;
  raw.notes = std::move(reply.notes);
  raw.threads.reserve(reply.threads.size());
  for (auto& t : reply.threads) {
    RawThread r;
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
  const auto start = Clock::now();
  auto conn = client::Connection::open(pid, options.timeout);
  if (!conn) return conn.error();
  if (!conn->supports(protocol::Command::kStack))
    return makeError(ErrorKind::kAgent, "the agent in process " + std::to_string(pid) + " (version " +
                                            conn->hello().agent_version +
                                            ") cannot take stack dumps; restart the process with a newer agent");

  auto stats = std::async(std::launch::async, readTaskStats, pid);
  auto symbolizer = std::async(std::launch::async, [pid] {
    auto s = Symbolizer::forProcess(pid);
    if (s) (*s)->loadDebugInfo();
    return s;
  });

  protocol::StackRequest request;
  request.timeout_ms = static_cast<uint32_t>(options.capture_timeout.count());
  request.use_signals = options.use_signals ? 1 : 0;
  wire::Writer w;
  request.encode(w);
  auto payload = conn->call(protocol::Command::kStack, w.take());
  auto task_stats = stats.get();
  auto sym = symbolizer.get();
  if (!payload) return payload.error();
  auto reply = client::decode<protocol::StackReply>(*payload);
  if (!reply) return reply.error();

  const int signal = static_cast<int>(reply->signal);
  RawDump raw = toRaw(pid, std::move(*reply));
  if (!sym) raw.notes.push_back("frames are not symbolized: " + sym.error().message);
  StackDump dump = analyze(raw, task_stats, sym ? sym->get() : nullptr, signal);
  dump.cost.total_ns = elapsedNs(start);
  return dump;
}

}  // namespace cppops::stack
