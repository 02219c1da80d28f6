// Which source answers a stack dump: the process's agent when it has one that answers in time, ptrace otherwise.
// What `cppops stack` does, and with it every command built on dumps (watch, top).
#pragma once

#include <sys/types.h>

#include <chrono>

#include "core/result.h"
#include "stack/agent_source.h"
#include "stack/model.h"

namespace cppops::stack {

enum class DumpPath {
  kAuto,       // the agent; ptrace when there is none, or when it does not answer within agent_deadline
  kAgentOnly,  // the agent or an error (no agent, or a timeout)
  kPtrace,     // ptrace, even if the process has an agent
};

struct SourceChoice {
  DumpPath path = DumpPath::kAuto;
  std::chrono::milliseconds agent_deadline{2000};  // kAuto: the agent's time before the fallback
};

// A fallback after the agent failed carries a first note that says why.
Result<StackDump> takeDump(pid_t pid, const DumpOptions& options, const SourceChoice& choice = {});

}  // namespace cppops::stack
