// Process-wide facts about the running agent that commands report.
#pragma once

#include <cstdint>

namespace cppops::agent {

// "preload" when the shared library started itself from LD_PRELOAD, "linked" when the host called
// cppops_agent_start(). Async-signal-safe: yes.
const char* loadMode();

// Requests the control loop answered (errors included) and connections it refused (credentials, too many
// clients), since the process started, for the METRICS command. Async-signal-safe: yes.
void countRequestServed();
void countRequestRefused();
uint64_t requestsServed();
uint64_t requestsRefused();

// Called by the preload constructor before it starts the agent. Async-signal-safe: yes.
void markPreloaded();

}  // namespace cppops::agent
