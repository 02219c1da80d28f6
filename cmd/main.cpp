// cppops: find the processes that carry a cppops agent and ask them what is going on.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <optional>

#include "command.h"
#include "core/version.h"
#include "exit_codes.h"

int main(int argc, char** argv) {
  using namespace cppops::cli;
  CLI::App app{"cppops: diagnostics for live C++ processes (gops for C++)", "cppops"};
  app.set_version_flag("--version", std::string("cppops ") + cppops::kCliVersion);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  CommonFlags flags;
  int exit_code = kExitOk;
  std::optional<pid_t> summary_pid;
  app.add_option("PID", summary_pid, "Show a one-screen summary of this process");
  addCommonFlags(app, flags);

  for (Registrar add : {registerPs, registerTree, registerVersion, registerStats, registerStack, registerProfile,
                         registerMetrics, registerWatch, registerExporter, registerTop, registerHeap,
                         registerGc}) add(app, flags, exit_code);
  app.footer(
      "With no command, lists agent processes (like `cppops ps`); with only a PID, summarises that process.\n"
      "Exit status: 0 ok, 2 usage, 3 no such process or no agent, 4 permission denied, 5 agent error,\n"
      "6 timeout, 7 deadlock found (stack). See cppops(1).\n\n"
      "Examples:\n"
      "  cppops                 list processes with an agent\n"
      "  cppops tree            the same, as a process tree\n"
      "  cppops 1234            summary of process 1234\n"
      "  cppops stack 1234      every thread's stack, states, lock owners, deadlocks\n"
      "  cppops profile 1234 -o cpu.pb.gz   a 10 s CPU profile for go tool pprof\n"
      "  cppops stats 1234 --json\n"
      "  cppops heap 1234       allocator and kernel memory figures; cppops gc 1234 gives free memory back");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    fmt::print(stderr, "Run `cppops --help` for usage.\n");
    return kExitUsage;
  }
  if (app.get_subcommands().empty()) exit_code = summary_pid ? runSummary(*summary_pid, flags) : runPs(flags);
  std::fflush(stdout);
  return exit_code;
}
