// cppops gc PID: make the allocator give its free memory back to the OS, and show what that changed.
#include <fmt/format.h>

#include "client/client.h"
#include "command.h"
#include "exit_codes.h"
#include "heap/memory.h"
#include "render/table.h"

namespace cppops::cli {

namespace {

int64_t delta(uint64_t before, uint64_t after) { return static_cast<int64_t>(before) - static_cast<int64_t>(after); }

std::string signedBytes(int64_t bytes) {
  return bytes < 0 ? "-" + render::humanBytes(static_cast<uint64_t>(-bytes)) : render::humanBytes(static_cast<uint64_t>(bytes));
}

nlohmann::json sideJson(const heap::KernelMemory& k, const heap::AllocatorSummary& s,
                        const std::vector<protocol::AllocatorFigure>& figures) {
  nlohmann::json f = nlohmann::json::object();
  for (const auto& figure : figures) f[figure.name] = figure.value;
  return {{"rss_bytes", k.rss}, {"anonymous_bytes", k.anonymous}, {"swap_bytes", k.swap},
          {"allocator_in_use_bytes", s.in_use}, {"allocator_free_bytes", s.free}, {"figures", f}};
}

int runGc(pid_t pid, const CommonFlags& flags) {
  auto reply = client::request<protocol::GcReply>(pid, protocol::Command::kGc, flags.timeout());
  if (!reply) return reportError(reply.error(), flags);
  const protocol::GcReply& r = *reply;
  const heap::KernelMemory kb = heap::parseSmapsRollup(r.smaps_rollup_before);
  const heap::KernelMemory ka = heap::parseSmapsRollup(r.smaps_rollup_after);
  const heap::AllocatorSummary sb = heap::summarize(r.allocator, r.before);
  const heap::AllocatorSummary sa = heap::summarize(r.allocator, r.after);
  if (flags.json) {
    printJson({{"schema_version", 1}, {"pid", pid}, {"allocator", r.allocator}, {"method", r.method},
               {"result", r.result}, {"duration_ns", r.duration_ns}, {"before", sideJson(kb, sb, r.before)},
               {"after", sideJson(ka, sa, r.after)}, {"released_bytes", delta(kb.rss, ka.rss)}});
    return kExitOk;
  }
  // tcmalloc's release returns nothing: its result is always 0 and says nothing.
  const std::string returned = r.allocator == "tcmalloc" ? "" : fmt::format(" returned {}", r.result);
  fmt::print("process {}: {} {}{} in {:.1f} ms\n\n", pid, r.allocator, r.method, returned,
             static_cast<double>(r.duration_ns) / 1e6);
  render::Table t({"", "BEFORE", "AFTER", "RELEASED"});
  auto row = [&t](const char* name, uint64_t before, uint64_t after) {
    t.add({name, render::humanBytes(before), render::humanBytes(after), signedBytes(delta(before, after))});
  };
  row("rss", kb.rss, ka.rss);
  row("  anonymous", kb.anonymous, ka.anonymous);
  row("allocator in use", sb.in_use, sa.in_use);
  row("allocator free", sb.free, sa.free);
  fmt::print("{}", t.str());
  fmt::print("\nreleased {} of resident memory\n", signedBytes(delta(kb.rss, ka.rss)));
  return kExitOk;
}

}  // namespace

void registerGc(CLI::App& app, CommonFlags& flags, int& exit_code) {
  auto* cmd = app.add_subcommand("gc", "Give the allocator's free memory back to the OS (malloc_trim, jemalloc purge, tcmalloc release)");
  static pid_t pid = 0;
  addPidArgument(*cmd, pid);
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "C++ has no garbage collector: this returns memory that is already free, never frees live objects.\n\n"
      "Examples:\n"
      "  cppops gc 1234\n"
      "  cppops gc 1234 --json | jq .released_bytes");
  cmd->callback([&] { exit_code = runGc(pid, flags); });
}

}  // namespace cppops::cli
