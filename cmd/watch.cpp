// cppops watch PID: a stack dump every interval, and which stack groups grew since the one before, with the
// growing group's stack: a thread leak or a pile-up behind one lock is named, not just counted.
#include <fmt/format.h>

#include <ctime>
#include <thread>

#include "command.h"
#include "exit_codes.h"
#include "stack/dump_source.h"
#include "stack/diff.h"
#include "stack/render.h"

namespace cppops::cli {

namespace {

struct WatchFlags {
  pid_t pid = 0;
  std::string interval = "10s";
  int count = 0;
};

std::string clockTime() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

// One dump's groups; `threads` and `source` ("agent" or "ptrace") say how many threads it held and how it was taken.
Result<std::vector<stack::GroupSnapshot>> snapshot(pid_t pid, const CommonFlags& flags, size_t& threads,
                                                   std::string& source) {
  stack::DumpOptions options;
  options.timeout = std::max(flags.timeout(), options.capture_timeout + std::chrono::milliseconds(2000));
  auto dump = stack::takeDump(pid, options);
  if (!dump) return dump.error();
  threads = dump->threads.size();
  source = dump->source;
  return stack::groupsFromJson(nlohmann::json::parse(stack::renderJson(*dump, stack::Filter{})));
}

int runWatch(const WatchFlags& f, const CommonFlags& flags) {
  const auto interval = parseDuration(f.interval);
  if (!interval)
    return reportError(makeError(ErrorKind::kUsage, "--interval '" + f.interval +
                                                        "' is not a duration; write it like 10s, 500ms or 2m"),
                       flags);
  // Debug info must come from this machine: a configured debuginfod server could stall a dump on the network.
  unsetenv("DEBUGINFOD_URLS");
  size_t threads = 0;
  std::string source;
  auto previous = snapshot(f.pid, flags, threads, source);
  if (!previous) return reportError(previous.error(), flags);
  if (!flags.json) {
    fmt::print("{} watching process {}{}: {} threads in {} stack groups; a dump every {}\n", clockTime(), f.pid,
               source == "ptrace" ? " through ptrace" : "", threads, previous->size(), f.interval);
    std::fflush(stdout);
  }
  for (int taken = 1; f.count == 0 || taken < f.count; ++taken) {
    std::this_thread::sleep_for(*interval);
    const size_t threads_before = threads;
    auto current = snapshot(f.pid, flags, threads, source);
    if (!current) return reportError(current.error(), flags);
    const auto changes = stack::diffGroups(*previous, *current);
    if (flags.json) {
      printJson({{"schema_version", 1},
                 {"pid", f.pid},
                 {"source", source},
                 {"time", std::time(nullptr)},
                 {"threads_before", threads_before},
                 {"threads_after", threads},
                 {"grown", stack::changesJson(changes, true)}});
    } else {
      const std::string grown = stack::renderChanges(changes, true);
      fmt::print("{} {} threads ({:+d}){}\n{}", clockTime(), threads,
                 static_cast<long>(threads) - static_cast<long>(threads_before),
                 grown.empty() ? ": no stack group grew" : "; growing:", grown);
    }
    std::fflush(stdout);
    previous = std::move(current);
  }
  return kExitOk;
}

}  // namespace

void registerWatch(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static WatchFlags f;
  auto* cmd = app.add_subcommand(
      "watch", "Take a stack dump every interval and name the stack groups that grew (thread leaks, lock pile-ups)");
  addPidArgument(*cmd, f.pid);
  cmd->add_option("--interval", f.interval, "Time between dumps: 10s, 500ms, 2m (default 10s)");
  cmd->add_option("--count", f.count, "Stop after this many dumps (default: until interrupted)")
      ->check(CLI::NonNegativeNumber);
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Each line after the first compares a dump with the one before it; with --json, one JSON object per line.\n\n"
      "Examples:\n"
      "  cppops watch 1234\n"
      "  cppops watch 1234 --interval 2s --count 5\n"
      "  cppops watch 1234 --json | jq '.grown[0].frames'");
  cmd->callback([&] { exit_code = runWatch(f, flags); });
}

}  // namespace cppops::cli
