#include "stack/dump_source.h"

#include <fmt/format.h>

#include "discovery/discovery.h"
#include "proc/process.h"
#include "stack/ptrace_source.h"

namespace cppops::stack {

Result<StackDump> takeDump(pid_t pid, const DumpOptions& options, const SourceChoice& choice) {
  if (choice.path == DumpPath::kPtrace) return dumpThroughPtrace(pid, options);
  if (choice.path == DumpPath::kAgentOnly) return dumpThroughAgent(pid, options);
  auto agent = discovery::findAgent(pid);
  if (!agent) {
    if (!proc::readProcess(pid)) return agent.error();
    return dumpThroughPtrace(pid, options);
  }
  DumpOptions agent_options = options;
  agent_options.timeout = choice.agent_deadline;
  auto dump = dumpThroughAgent(pid, agent_options);
  if (dump || dump.error().kind == ErrorKind::kUsage) return dump;

  const std::string why = dump.error().kind == ErrorKind::kTimeout
                              ? fmt::format("the agent did not answer within {} ms", choice.agent_deadline.count())
                              : "the agent could not answer (" + dump.error().message + ")";
  auto fallback = dumpThroughPtrace(pid, options);
  if (!fallback) return makeError(fallback.error().kind, why + "; " + fallback.error().message);
  fallback->notes.insert(fallback->notes.begin(), why + "; answered through ptrace");
  return fallback;
}

}  // namespace cppops::stack
