#include "metrics/collect.h"

#include <map>

#include "client/client.h"
#include "proc/process.h"
#include "stack/analyze.h"

namespace cppops::metrics {

const char* categoryName(ThreadCategory category) {
  switch (category) {
    case ThreadCategory::kRunning: return "running";
    case ThreadCategory::kBlocked: return "blocked";
    case ThreadCategory::kWaiting: return "waiting";
    case ThreadCategory::kIo: return "io";
    case ThreadCategory::kSleeping: return "sleeping";
    case ThreadCategory::kOther: return "other";
  }
  return "other";
}

ThreadCategory categoryOf(stack::ThreadState state) {
  using stack::ThreadState;
  switch (state) {
    case ThreadState::kRunning: return ThreadCategory::kRunning;
    case ThreadState::kMutex:
    case ThreadState::kRwlockRead:
    case ThreadState::kRwlockWrite: return ThreadCategory::kBlocked;
    case ThreadState::kCondition:
    case ThreadState::kSemaphore:
    case ThreadState::kAtomicWait:
    case ThreadState::kSignalWait:
    case ThreadState::kWaitChild: return ThreadCategory::kWaiting;
    case ThreadState::kRead:
    case ThreadState::kWrite:
    case ThreadState::kPoll:
    case ThreadState::kAccept:
    case ThreadState::kConnect:
    case ThreadState::kDiskWait: return ThreadCategory::kIo;
    case ThreadState::kSleep: return ThreadCategory::kSleeping;
    case ThreadState::kStopped:
    case ThreadState::kZombie:
    case ThreadState::kSyscall:
    case ThreadState::kUnknown: return ThreadCategory::kOther;
  }
  return ThreadCategory::kOther;
}

std::array<uint32_t, kThreadCategories> classifyThreads(pid_t pid, const protocol::MetricsReply& reply) {
  // The same analysis as `cppops stack --no-signal`, with no frames: a futex wait is told apart by the lock word
  // the agent sent (a contended mutex names its owner), everything else by the syscall.
  stack::RawDump raw;
  raw.pid = pid;
  raw.source = "agent";
  raw.agent_tid = static_cast<pid_t>(reply.agent_tid);
  std::map<pid_t, proc::TaskStat> stats;
  for (size_t i = 0; i < reply.threads.size(); ++i) {
    const protocol::StackThread& t = reply.threads[i];
    stack::RawThread r;
    r.tid = static_cast<pid_t>(t.tid);
    r.status = stack::CaptureStatus::kNotRequested;
    r.syscall_line = t.syscall_line;
    r.lock_window_address = t.lock_window_address;
    r.lock_window.assign(t.lock_window.begin(), t.lock_window.end());
    raw.threads.push_back(std::move(r));
    proc::TaskStat stat;
    stat.tid = static_cast<pid_t>(t.tid);
    stat.state = i < reply.thread_states.size() ? reply.thread_states[i] : '?';
    stats[stat.tid] = stat;
  }
  const stack::FrameSource no_frames = [](uint64_t, bool) { return std::vector<SourceFrame>{}; };
  const stack::StackDump dump = stack::analyze(raw, stats, no_frames, 0);
  std::array<uint32_t, kThreadCategories> counts{};
  for (const stack::Thread& t : dump.threads) ++counts[static_cast<size_t>(categoryOf(t.state))];
  return counts;
}

namespace {

// The unified (v2) hierarchy's line "0::/path"; on a v1-only host the first named hierarchy's path.
std::string cgroupOf(pid_t pid) {
  auto text = proc::readFile("/proc/" + std::to_string(pid) + "/cgroup", 64 * 1024);
  if (!text) return "";
  std::string first;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    const std::string line = text->substr(start, end - start);
    start = end + 1;
    const size_t colon = line.find(':', line.find(':') + 1);
    if (colon == std::string::npos) continue;
    if (line.compare(0, 3, "0::") == 0) return line.substr(colon + 1);
    if (first.empty()) first = line.substr(colon + 1);
  }
  return first;
}

}  // namespace

Result<ProcessMetrics> collect(const discovery::Endpoint& endpoint, std::chrono::milliseconds timeout) {
  auto conn = client::Connection::open(endpoint, timeout);
  if (!conn) return conn.error();
  if (!conn->supports(protocol::Command::kMetrics))
    return makeError(ErrorKind::kAgent, "the agent in process " + std::to_string(endpoint.pid) + " (version " +
                                            conn->hello().agent_version +
                                            ") has no metrics; restart the process with a newer agent");
  auto payload = conn->call(protocol::Command::kMetrics);
  if (!payload) return payload.error();
  auto reply = client::decode<protocol::MetricsReply>(*payload);
  if (!reply) return reply.error();

  ProcessMetrics m;
  m.pid = endpoint.pid;
  if (auto info = proc::readProcess(endpoint.pid)) m.name = info->name;
  m.cgroup = cgroupOf(endpoint.pid);
  m.threads_by_category = classifyThreads(endpoint.pid, *reply);
  m.reply = std::move(*reply);
  return m;
}

Result<ProcessMetrics> collect(pid_t pid, std::chrono::milliseconds timeout) {
  auto endpoint = discovery::findAgent(pid);
  if (!endpoint) return endpoint.error();
  return collect(*endpoint, timeout);
}

}  // namespace cppops::metrics
