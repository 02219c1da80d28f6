// Process-wide facts about the running agent that commands report.
#pragma once

namespace cppops::agent {

// "preload" when the shared library started itself from LD_PRELOAD, "linked" when the host called
// cppops_agent_start(). Async-signal-safe: yes.
const char* loadMode();

// Called by the preload constructor before it starts the agent. Async-signal-safe: yes.
void markPreloaded();

}  // namespace cppops::agent
