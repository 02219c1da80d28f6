// cppops stack PID: every thread's stack with its state, lock owners and deadlocks.
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

#include "command.h"
#include "core/bury.h"
#include "exit_codes.h"
#include "stack/diff.h"
#include "stack/dump_source.h"
#include "stack/render.h"

namespace cppops::cli {

namespace {

struct StackFlags {
  pid_t pid = 0;
  bool every_thread = false;
  std::vector<std::string> states;
  std::string name;
  std::vector<pid_t> tids;
  bool no_signal = false;
  int capture_timeout_ms = 1000;
  bool ptrace = false;
  bool agent_only = false;
  int agent_deadline_ms = 2000;
  std::string diff_file;
};

Result<stack::Filter> makeFilter(const StackFlags& f) {
  stack::Filter filter;
  for (const auto& s : f.states) {
    auto state = stack::stateFromName(s);
    if (!state)
      return makeError(ErrorKind::kUsage, "unknown state '" + s +
                                              "'; use one of running, mutex, rwlock_read, rwlock_write, condvar, "
                                              "semaphore, atomic_wait, sleep, read, write, poll, accept, connect, "
                                              "wait_child, signal_wait, disk_wait, stopped, zombie, syscall, unknown");
    filter.states.push_back(*state);
  }
  filter.name = f.name;
  filter.tids = f.tids;
  return filter;
}

// --diff FILE: the groups that changed since a dump saved with --json.
int printDiff(const StackFlags& f, const stack::StackDump& dump, const CommonFlags& flags) {
  std::ifstream in(f.diff_file);
  if (!in)
    return reportError(makeError(ErrorKind::kUsage, "cannot read " + f.diff_file +
                                                        "; save a dump first with `cppops stack PID --json > FILE`"),
                       flags);
  const nlohmann::json saved = nlohmann::json::parse(in, nullptr, false);
  auto before = stack::groupsFromJson(saved);
  if (!before) return reportError(makeError(ErrorKind::kUsage, f.diff_file + " is " + before.error().message), flags);
  auto after = stack::groupsFromJson(nlohmann::json::parse(stack::renderJson(dump, stack::Filter{})));
  if (!after) return reportError(after.error(), flags);
  const auto changes = stack::diffGroups(*before, *after);
  const size_t then = saved.at("threads").size();
  if (flags.json) {
    printJson({{"schema_version", 1},
               {"pid", dump.pid},
               {"threads_before", then},
               {"threads_after", dump.threads.size()},
               {"changes", stack::changesJson(changes, false)}});
  } else {
    fmt::print("Compared with {}: {} threads then, {} now\n", f.diff_file, then, dump.threads.size());
    fmt::print("{}", changes.empty() ? "no stack group changed size\n" : stack::renderChanges(changes, false));
  }
  return kExitOk;
}

int runStack(const StackFlags& f, const CommonFlags& flags) {
  auto filter = makeFilter(f);
  if (!filter) return reportError(filter.error(), flags);
  // Debug info must come from this machine: a configured debuginfod server could stall a dump on the network.
  unsetenv("DEBUGINFOD_URLS");

  stack::DumpOptions options;
  options.capture_timeout = std::chrono::milliseconds(f.capture_timeout_ms);
  options.timeout = std::max(flags.timeout(), options.capture_timeout + std::chrono::milliseconds(2000));
  options.use_signals = !f.no_signal;
  options.exits_after = true;
  stack::SourceChoice source;
  source.path = f.ptrace ? stack::DumpPath::kPtrace
                         : (f.agent_only ? stack::DumpPath::kAgentOnly : stack::DumpPath::kAuto);
  source.agent_deadline = std::chrono::milliseconds(f.agent_deadline_ms);
  auto dump = stack::takeDump(f.pid, options, source);
  if (!dump) return reportError(dump.error(), flags);
  if (!f.diff_file.empty()) return printDiff(f, *dump, flags);

  if (flags.json) {
    printJsonText(stack::renderJson(*dump, *filter));
  } else {
    stack::RenderOptions render;
    render.every_thread = f.every_thread;
    render.filter = *filter;
    fmt::print("{}", stack::renderText(*dump, render));
  }
  const int code = dump->deadlocks.empty() ? kExitOk : kExitDeadlock;
  buryUntilExit(std::make_unique<stack::StackDump>(std::move(*dump)));
  return code;
}

}  // namespace

void registerStack(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static StackFlags f;
  auto* cmd = app.add_subcommand("stack", "Print every thread's stack with its state, lock owners and deadlocks");
  addPidArgument(*cmd, f.pid);
  cmd->add_flag("--threads", f.every_thread, "Print every thread on its own instead of grouping identical stacks");
  cmd->add_option("--state", f.states, "Only threads in these states (comma-separated, e.g. mutex,condvar)")
      ->delimiter(',');
  cmd->add_option("--name", f.name, "Only threads whose name contains this text");
  cmd->add_option("--tid", f.tids, "Only these threads (comma-separated)")->delimiter(',');
  cmd->add_flag("--no-signal", f.no_signal,
                "Touch no thread (no signal, no ptrace stop): kernel state, wait reasons and lock owners only");
  cmd->add_option("--capture-timeout", f.capture_timeout_ms,
                  "Milliseconds a thread may take to answer the agent, or to stop for ptrace (default 1000)")
      ->check(CLI::Range(10, 10000));
  auto* ptrace = cmd->add_flag("--ptrace", f.ptrace,
                               "Take the stacks with ptrace, one thread stopped at a time, even if there is an agent");
  auto* agent_only =
      cmd->add_flag("--agent-only", f.agent_only, "Only ask the agent; never fall back to ptrace")->excludes(ptrace);
  cmd->add_option("--agent-deadline", f.agent_deadline_ms,
                  "Milliseconds the agent has to answer before cppops falls back to ptrace (default 2000)")
      ->check(CLI::Range(10, 600000))
      ->excludes(ptrace)
      ->excludes(agent_only);
  cmd->add_option("--diff", f.diff_file,
                  "Show which stack groups grew or shrank since a dump saved with --json (thread counts by group)");
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Exit status 7 means the dump succeeded and found a deadlock.\n\n"
      "Examples:\n"
      "  cppops stack 1234\n"
      "  cppops stack 1234 --threads --state mutex\n"
      "  cppops stack 1234 --json | jq '.deadlocks'\n"
      "  cppops stack 1234 --no-signal      # touch no thread, kernel facts only\n"
      "  cppops stack 1234 --ptrace         # without the agent, even if the process has one\n"
      "  cppops stack 1234 --json > before.json; cppops stack 1234 --diff before.json");
  cmd->callback([&] { exit_code = runStack(f, flags); });
}

}  // namespace cppops::cli
