// cppops: find the processes that carry a cppops agent and ask them what is going on.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "core/version.h"
#include "exit_codes.h"

namespace {

// How many single-character insertions, deletions and substitutions turn a into b.
size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Why the first word, neither a command nor a PID, was not understood, with the command it most likely meant.
std::string notACommand(const CLI::App& app, const std::string& word) {
  std::string names, closest;
  size_t closest_distance = 3;  // further than two edits is not a typo
  for (const CLI::App* command : app.get_subcommands({})) {
    const std::string& name = command->get_name();
    names += (names.empty() ? "" : ", ") + name;
    const size_t distance = editDistance(word, name);
    if (distance < closest_distance) {
      closest_distance = distance;
      closest = name;
    }
  }
  return "'" + word + "' is neither a command nor a process ID" +
         (closest.empty() ? "" : "; did you mean `cppops " + closest + "`?") + " (commands: " + names + ")";
}

// The command line as far as it was understood: "cppops", or "cppops stack".
std::string parsedCommand(const CLI::App& app) {
  std::string line = app.get_name();
  for (const CLI::App* command = &app; !command->get_subcommands().empty();) {
    command = command->get_subcommands().front();
    line += " " + command->get_name();
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cppops::cli;
  CLI::App app{"cppops: diagnostics for live C++ processes (gops for C++)", "cppops"};
  app.set_version_flag("--version", std::string("cppops ") + cppops::kCliVersion);
  app.require_subcommand(0, 1);
  app.fallthrough(false);

  CommonFlags flags;
  int exit_code = kExitOk;
  std::optional<pid_t> summary_pid;
  CLI::Option* summary = app.add_option("PID", summary_pid, "Show a one-screen summary of this process");
  addCommonFlags(app, flags);

  for (Registrar add : {registerPs, registerTree, registerVersion, registerStats, registerStack, registerProfile,
                         registerMetrics, registerWatch, registerExporter, registerTop, registerHeap,
                         registerGc}) add(app, flags, exit_code);
  // A word that is no command lands here: say so, rather than that it is no number.
  summary->check(CLI::Validator(
      [&app](std::string& word) {
        if (notAPid(word).empty()) return std::string();
        return std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; })
                   ? notAPid(word)
                   : notACommand(app, word);
      },
      "PID", "process ID"));
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
    const std::string command = parsedCommand(app);
    std::string message = e.what();
    // The PID's own messages name it already; a missing one gets where to find one.
    if (message.rfind("PID: ", 0) == 0) message.erase(0, 5);
    if (message == "PID is required") message += "; `cppops` lists the processes with an agent";
    fmt::print(stderr, "{}: {}\nRun `{} --help` for usage.\n", command, message, command);
    return kExitUsage;
  }
  if (app.get_subcommands().empty()) exit_code = summary_pid ? runSummary(*summary_pid, flags) : runPs(flags);
  std::fflush(stdout);
  return exit_code;
}
