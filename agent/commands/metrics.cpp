// METRICS: the process figures of STATS, the agent's own counters, thread and allocator totals, every thread's
// kernel wait facts (the same no-signal capture as `cppops stack --no-signal`: no thread is interrupted) and the
// application's registered metrics. The CLI turns the thread facts into states.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "agent_state.h"
#include "commands.h"
#include "metrics/allocator_figures.h"
#include "metrics/registry.h"
#include "metrics/thread_counts.h"
#include "protocol/messages.h"
#include "stack_capture.h"

namespace cppops::agent {

namespace {

// The scheduler state letter of one thread: the field after the parenthesised name, which may itself hold spaces
// and parentheses.
char schedulerState(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return '?';
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  return close != nullptr && close[1] == ' ' && close[2] != '\0' ? close[2] : '?';
}

}  // namespace

Reply handleMetrics(wire::Reader&, const RequestContext& context) {
  protocol::MetricsReply m;
  {
    wire::Reader none(nullptr, 0);
    Reply stats = handleStats(none, context);
    wire::Reader r(stats.payload);
    if (stats.status != protocol::Status::kOk || !m.process.decode(r))
      return errorReply(protocol::Status::kInternal, "the agent could not read its own /proc figures");
  }
  m.requests_served = requestsServed();
  m.requests_refused = requestsRefused();
  m.thread_counts_known = metrics::threadCreationVisible() ? 1 : 0;
  if (m.thread_counts_known) metrics::readThreadCounts(m.process.threads, m.threads_created, m.threads_exited);
  metrics::readAllocatorFigures(m);

  protocol::StackRequest kernel_only;
  kernel_only.use_signals = 0;
  protocol::StackReply facts = stackCapture().capture(kernel_only);
  m.agent_tid = facts.agent_tid;
  m.threads = std::move(facts.threads);
  m.thread_states.reserve(m.threads.size());
  for (const auto& t : m.threads) m.thread_states.push_back(schedulerState(static_cast<pid_t>(t.tid)));
  m.app = metrics::snapshot();

  wire::Writer w;
  m.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
