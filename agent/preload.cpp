// Only in libcppops_agent.so: start the agent when the library is loaded through LD_PRELOAD, so an unmodified
// binary gets an agent with no code change. A program that links the shared library normally still decides for
// itself when to call cppops_agent_start().
#include <cstdlib>
#include <cstring>

#include "agent_state.h"
#include "cppops/agent.h"

namespace {

bool namedInPreload() {
  const char* preload = std::getenv("LD_PRELOAD");
  return preload != nullptr && std::strstr(preload, "libcppops_agent") != nullptr;
}

__attribute__((constructor)) void startFromPreload() {
  if (!namedInPreload()) return;
  cppops::agent::markPreloaded();
  cppops_agent_start(nullptr);
}

}  // namespace
