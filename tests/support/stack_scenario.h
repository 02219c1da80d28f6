// The stack_scenarios target (tests/targets/stack_scenarios.cpp) and what every stack source must find in it:
// exact states, owners, the frame that made each call (function and file), and both deadlocks.
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "subprocess.h"

namespace cppops::test {

enum class ScenarioAgent {
  kPreload,  // stack_scenarios with LD_PRELOAD of the shared agent
  kLinked,   // stack_scenarios_linked, which starts the static agent itself
  kNone,     // stack_scenarios with no cppops code in it at all
};

// Starts the target and waits until every scenario thread is in place (and the agent's socket, if any).
struct Scenario {
  explicit Scenario(ScenarioAgent agent);
  ScenarioAgent agent;
  TempDir dir;
  TargetProcess target;
  std::map<std::string, pid_t> tids;  // role ("dl2-a", "sleeper", ...) -> tid, as the target printed them
};

const nlohmann::json& threadOf(const nlohmann::json& dump, pid_t tid);
bool hasFrame(const nlohmann::json& thread, const std::string& function,
              const std::string& file = "stack_scenarios.cpp");
// The thread of `role` has this name, state, owner (when owner_role is given) and a frame in `function`.
void checkThread(const nlohmann::json& dump, const Scenario& s, const std::string& role, const std::string& state,
                 const std::string& function, const std::string& owner_role = "");
std::set<std::set<pid_t>> deadlockSets(const nlohmann::json& dump);

// The assertions every source (agent or ptrace) must pass on a `stack --json` dump of the scenario target: the
// schema, every role but "no-signals" (which sources treat differently), both deadlocks and the cost figures.
void checkScenarioDump(const nlohmann::json& dump, const Scenario& s);

// A thread traced by this test, as by a debugger: held in a ptrace stop (a wedged agent: the process runs on,
// but that thread cannot answer anyone), or left running.
class TracedByTest {
 public:
  enum class Hold { kStopped, kRunning };

  TracedByTest(pid_t tid, Hold hold);
  ~TracedByTest();
  TracedByTest(const TracedByTest&) = delete;
  TracedByTest& operator=(const TracedByTest&) = delete;

 private:
  void stop();

  pid_t tid_;
  bool stopped_ = false;
};

// A dump of the scenario target built without frame pointers: every thread has its stack, every sleeping thread
// was read where it slept, and only the spinner was held (signalled or stopped).
void checkOnlySpinnerHeld(const nlohmann::json& dump, const Scenario& s);

// A --no-signal dump of the scenario target built without frame pointers: owners, the sleeping threads' stacks,
// and nothing for the spinner, which runs.
void checkNoSignalDump(const nlohmann::json& dump, const Scenario& s);

// tests/targets/uninterrupted.cpp with the agent preloaded (kPreload) or without it (kNone), once it said
// "ready" and its agent listens: threads asleep in calls that a signal handler or a ptrace stop cuts short, each
// of which says so on stdout if it ever returns early.
struct Uninterrupted {
  // `program`: "uninterrupted", built without frame pointers, or "uninterrupted_fp", with them.
  explicit Uninterrupted(ScenarioAgent agent, std::vector<std::string> args = {},
                         const std::string& program = "uninterrupted");
  TempDir dir;
  TargetProcess target;
};

// No thread of it returned early (a signal would have made it, and pause and poll return at once), and it lives.
void checkNoWaitReturnedEarly(const Uninterrupted& u);

// Three dumps of it (`source`: "agent" or "ptrace"), the last with --no-signal, then the human view: each thread
// is read where it sleeps, with its exact function, file and line, and none wakes.
void checkUninterruptedDumps(ScenarioAgent agent, const std::string& source,
                             const std::string& program = "uninterrupted");

// Its "flicker" mode, 60 dumps: threads that wake while they are read are asked (signal or ptrace stop) instead,
// and every stack holds together.
void checkFlickeringStacksHold(ScenarioAgent agent, const std::string& program = "uninterrupted");

}  // namespace cppops::test
