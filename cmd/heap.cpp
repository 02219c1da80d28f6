// cppops heap PID: which allocator the process uses and its figures, with the kernel's view of the memory.
#include <fmt/format.h>

#include "client/client.h"
#include "command.h"
#include "discovery/discovery.h"
#include "exit_codes.h"
#include "heap/memory.h"
#include "heap/proc_source.h"
#include "proc/process.h"
#include "render/table.h"

namespace cppops::cli {

namespace {

struct HeapFlags {
  pid_t pid = 0;
  size_t mappings = 10;
};

nlohmann::json kernelJson(const heap::KernelMemory& k) {
  return {{"rss_bytes", k.rss},       {"pss_bytes", k.pss},         {"anonymous_bytes", k.anonymous},
          {"file_bytes", k.file},     {"shared_bytes", k.shared},   {"private_bytes", k.private_},
          {"swap_bytes", k.swap}};
}

nlohmann::json mappingJson(const heap::Mapping& m) {
  return {{"start", fmt::format("0x{:x}", m.start)}, {"end", fmt::format("0x{:x}", m.end)}, {"perms", m.perms},
          {"path", m.path}, {"size_bytes", m.size()}, {"rss_bytes", m.rss}, {"anonymous_bytes", m.anonymous},
          {"swap_bytes", m.swap}};
}

// What a process without an agent shows instead of its allocator.
constexpr const char* kNoAgentAllocator =
    "no agent: only the kernel's view; start the process with LD_PRELOAD=libcppops_agent.so for the allocator's "
    "figures";

// The agent's HEAP reply, or for a process without an agent the kernel's view read from /proc (`through_proc`).
Result<protocol::HeapReply> readHeap(pid_t pid, const CommonFlags& flags, bool& through_proc) {
  auto agent = discovery::findAgent(pid);
  if (agent) return client::request<protocol::HeapReply>(pid, protocol::Command::kHeap, flags.timeout());
  // Another user's process: their agent's socket, and their /proc files, are theirs.
  if (agent.error().kind != ErrorKind::kNoProcess || !proc::readProcess(pid)) return agent.error();
  through_proc = true;
  return heap::readKernelView(pid);
}

nlohmann::json heapJson(pid_t pid, const protocol::HeapReply& r, size_t mapping_count, bool through_proc) {
  const auto mappings = heap::parseSmaps(r.smaps);
  const auto summary = heap::summarize(r.allocator, r.figures);
  nlohmann::json arenas = nlohmann::json::array();
  for (const heap::Arena& a : heap::parseMallocInfo(r.allocator_report))
    arenas.push_back({{"arena", a.number}, {"system_bytes", a.system}, {"system_max_bytes", a.system_max},
                      {"address_space_bytes", a.address_space}, {"fast_free_bytes", a.fast_free},
                      {"fast_free_chunks", a.fast_free_chunks}, {"rest_free_bytes", a.rest_free},
                      {"rest_free_chunks", a.rest_free_chunks}});
  nlohmann::json figures = nlohmann::json::object();
  for (const auto& f : r.figures) figures[f.name] = f.value;
  const heap::ThreadStacks stacks = heap::threadStacks(mappings, r.stacks);
  nlohmann::json largest = nlohmann::json::array();
  for (const heap::Mapping& m : heap::largestMappings(mappings, mapping_count)) largest.push_back(mappingJson(m));
  return {{"schema_version", 1},
          {"pid", pid},
          {"source", through_proc ? "proc" : "agent"},
          {"allocator",
           {{"name", r.allocator}, {"module", r.allocator_module}, {"version", r.allocator_version},
            {"in_use_bytes", summary.in_use}, {"free_bytes", summary.free}, {"figures", figures},
            {"arenas", arenas}}},
          {"kernel", kernelJson(heap::parseSmapsRollup(r.smaps_rollup))},
          {"thread_stacks",
           {{"threads", stacks.threads}, {"located", stacks.located}, {"mappings", stacks.mappings},
            {"size_bytes", stacks.size}, {"rss_bytes", stacks.rss}}},
          {"largest_mappings", largest},
          {"heap_profiler",
           {{"interposed", r.heap_hooks != 0}, {"sampling", r.heap_sampling != 0},
            {"rate_bytes", r.heap_rate_bytes}}}};
}

void printHeap(pid_t pid, const protocol::HeapReply& r, size_t mapping_count, bool through_proc) {
  using render::humanBytes;
  const auto mappings = heap::parseSmaps(r.smaps);
  const auto summary = heap::summarize(r.allocator, r.figures);
  const heap::KernelMemory k = heap::parseSmapsRollup(r.smaps_rollup);
  const heap::ThreadStacks stacks = heap::threadStacks(mappings, r.stacks);

  render::Table t({"process", std::to_string(pid)});
  std::string allocator = r.allocator;
  if (!r.allocator_version.empty()) allocator += " " + r.allocator_version;
  t.add({"allocator", through_proc ? kNoAgentAllocator : allocator + " (" + r.allocator_module + ")"});
  if (r.allocator != "unknown") {
    t.add({"in use", humanBytes(summary.in_use)});
    t.add({"free in allocator", humanBytes(summary.free)});
  }
  t.add({"rss", humanBytes(k.rss)});
  t.add({"  anonymous", humanBytes(k.anonymous)});
  t.add({"  file-backed", humanBytes(k.file)});
  t.add({"  shared", humanBytes(k.shared)});
  t.add({"swap", humanBytes(k.swap)});
  t.add({"thread stacks", fmt::format("{} mapped, {} resident ({} of {} threads located)", humanBytes(stacks.size),
                                      humanBytes(stacks.rss), stacks.located, stacks.threads)});
  t.add({"heap profiler", through_proc     ? "no agent"
                          : r.heap_hooks == 0 ? "not interposed"
                          : r.heap_sampling != 0
                              ? "sampling every " + humanBytes(r.heap_rate_bytes) + " on average"
                              : "interposed, off"});
  fmt::print("{}", t.str());

  if (!through_proc) {
    fmt::print("\n{} figures\n", r.allocator);
    render::Table figures({"  NAME", "VALUE"});
    for (const auto& f : r.figures) figures.add({"  " + f.name, std::to_string(f.value)});
    fmt::print("{}",
               r.figures.empty() ? std::string("  (none: cppops does not know this allocator)\n") : figures.str());
  }

  const auto arenas = heap::parseMallocInfo(r.allocator_report);
  if (!arenas.empty()) {
    fmt::print("\narenas\n");
    render::Table a({"  ARENA", "SYSTEM", "MAX", "FREE (FAST)", "FREE (OTHER)"});
    for (const heap::Arena& arena : arenas)
      a.add({"  " + std::to_string(arena.number), humanBytes(arena.system), humanBytes(arena.system_max),
             humanBytes(arena.fast_free), fmt::format("{} in {} chunks", humanBytes(arena.rest_free), arena.rest_free_chunks)});
    fmt::print("{}", a.str());
  }

  fmt::print("\nlargest mappings\n");
  render::Table m({"  RSS", "SIZE", "SWAP", "PERMS", "ADDRESS", "PATH"});
  for (const heap::Mapping& mapping : heap::largestMappings(mappings, mapping_count))
    m.add({"  " + humanBytes(mapping.rss), humanBytes(mapping.size()), humanBytes(mapping.swap), mapping.perms,
           fmt::format("{:x}-{:x}", mapping.start, mapping.end), mapping.path.empty() ? "[anonymous]" : mapping.path});
  fmt::print("{}", m.str());
}

int runHeap(const HeapFlags& f, const CommonFlags& flags) {
  bool through_proc = false;
  auto reply = readHeap(f.pid, flags, through_proc);
  if (!reply) return reportError(reply.error(), flags);
  if (flags.json) {
    printJson(heapJson(f.pid, *reply, f.mappings, through_proc));
    return kExitOk;
  }
  printHeap(f.pid, *reply, f.mappings, through_proc);
  return kExitOk;
}

}  // namespace

void registerHeap(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static HeapFlags f;
  auto* cmd = app.add_subcommand("heap", "Show the allocator (glibc, jemalloc, tcmalloc), its figures and the kernel's view of memory");
  addPidArgument(*cmd, f.pid);
  cmd->add_option("--mappings", f.mappings, "How many of the largest mappings to list (default 10)");
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Examples:\n"
      "  cppops heap 1234\n"
      "  cppops heap 1234 --json | jq .kernel.anonymous_bytes\n"
      "  cppops heap 1234 --mappings 30");
  cmd->callback([&] { exit_code = runHeap(f, flags); });
}

}  // namespace cppops::cli
