// cppops profile PID: sample where the process spends CPU (or wall-clock) time, and print the top functions or
// write pprof, folded stacks, a flame graph or a speedscope file.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "command.h"
#include "core/deferred_signals.h"
#include "discovery/discovery.h"
#include "proc/process.h"
#include "exit_codes.h"
#include "profile/agent_source.h"
#include "profile/heap_base.h"
#include "profile/heap_source.h"
#include "profile/build.h"
#include "profile/flamegraph.h"
#include "profile/folded.h"
#include "profile/names.h"
#include "profile/pprof.h"
#include "profile/ptrace_source.h"
#include "profile/speedscope.h"
#include "profile/top.h"

namespace cppops::cli {

namespace {

using namespace std::chrono;

struct ProfileFlags {
  pid_t pid = 0;
  std::string duration = "10s";
  uint32_t rate_hz = 100;
  std::string mode = "cpu";
  bool per_thread = false;
  std::vector<pid_t> tids;
  std::string name;
  std::string output;
  std::string format;
  size_t top = 20;
  bool heap = false;
  std::string heap_rate = "512KiB";
  bool start = false;
  bool stop = false;
  std::string sample_index = "inuse_space";
  std::string base;
  bool ptrace = false;
};

enum class Format { kTop, kPprof, kFolded, kSvg, kSpeedscope };

// "10s", "500ms", "2m", "1.5s"; a bare number is seconds.
Result<milliseconds> parseDuration(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  const std::string unit = end != nullptr ? std::string(end) : "";
  double ms = -1;
  if (errno == 0 && end != text.c_str()) {
    if (unit.empty() || unit == "s") ms = value * 1000;
    else if (unit == "ms") ms = value;
    else if (unit == "m") ms = value * 60000;
  }
  if (ms < 1 || ms > 3600000)
    return makeError(ErrorKind::kUsage, "invalid --duration '" + text +
                                            "': use a time from 1ms to 1h such as 500ms, 10s or 2m");
  return milliseconds(static_cast<int64_t>(ms));
}

bool endsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<Format> chooseFormat(const ProfileFlags& f) {
  if (!f.format.empty()) {
    static const std::map<std::string, Format> kNames = {
        {"pprof", Format::kPprof}, {"folded", Format::kFolded}, {"svg", Format::kSvg},
        {"speedscope", Format::kSpeedscope}, {"top", Format::kTop}};
    auto it = kNames.find(f.format);
    if (it == kNames.end())
      return makeError(ErrorKind::kUsage,
                       "unknown --format '" + f.format + "'; use pprof, folded, svg, speedscope or top");
    return it->second;
  }
  if (f.output.empty()) return Format::kTop;
  for (const char* ext : {".pb.gz", ".pprof", ".pb"})
    if (endsWith(f.output, ext)) return Format::kPprof;
  for (const char* ext : {".folded", ".txt", ".collapsed"})
    if (endsWith(f.output, ext)) return Format::kFolded;
  if (endsWith(f.output, ".svg")) return Format::kSvg;
  if (endsWith(f.output, ".json")) return Format::kSpeedscope;
  return makeError(ErrorKind::kUsage, "cannot tell the format from the name '" + f.output +
                                          "'; add --format pprof|folded|svg|speedscope, or name the file "
                                          "*.pb.gz, *.folded, *.svg or *.json");
}

const char* formatName(Format format) {
  switch (format) {
    case Format::kTop: return "top";
    case Format::kPprof: return "pprof";
    case Format::kFolded: return "folded";
    case Format::kSvg: return "svg";
    case Format::kSpeedscope: return "speedscope";
  }
  return "top";
}

std::string threadName(const profile::RawProfile& raw, pid_t tid) {
  for (const auto& [t, name] : raw.thread_names)
    if (t == tid) return name;
  return "";
}

// --tid and --name keep the samples of the matching threads only.
void filterThreads(profile::RawProfile& raw, const ProfileFlags& f) {
  if (f.tids.empty() && f.name.empty()) return;
  auto keep = [&](pid_t tid) {
    if (!f.tids.empty() && std::find(f.tids.begin(), f.tids.end(), tid) == f.tids.end()) return false;
    return f.name.empty() || threadName(raw, tid).find(f.name) != std::string::npos;
  };
  raw.samples.erase(std::remove_if(raw.samples.begin(), raw.samples.end(),
                                   [&](const profile::RawSample& s) { return !keep(s.tid); }),
                    raw.samples.end());
}

struct ThreadTotal {
  pid_t tid = 0;
  std::string name;
  uint64_t samples = 0;
};

std::vector<ThreadTotal> threadTotals(const profile::RawProfile& raw) {
  std::map<pid_t, uint64_t> by_tid;
  for (const auto& s : raw.samples) by_tid[s.tid] += s.weight;
  std::vector<ThreadTotal> out;
  for (const auto& [tid, samples] : by_tid) out.push_back({tid, threadName(raw, tid), samples});
  std::stable_sort(out.begin(), out.end(), [](const ThreadTotal& a, const ThreadTotal& b) { return a.samples > b.samples; });
  return out;
}

std::string encode(const profile::Profile& profile, Format format, const ProfileFlags& f, int64_t start_unix_ns) {
  const std::string title = fmt::format("cppops {} profile of {}", profile::profileTypeName(profile), f.pid);
  switch (format) {
    case Format::kPprof: {
      profile::PprofOptions options;
      options.time_nanos = start_unix_ns;
      return profile::encodePprof(profile, options);
    }
    case Format::kFolded: {
      profile::FoldedOptions options;
      options.thread_root = f.per_thread;
      return profile::encodeFolded(profile, options);
    }
    case Format::kSvg: {
      profile::FlameGraphOptions options;
      options.title = title;
      options.thread_root = f.per_thread;
      return profile::renderFlameGraph(profile, options);
    }
    case Format::kSpeedscope: {
      profile::SpeedscopeOptions options;
      options.name = title;
      return profile::encodeSpeedscope(profile, options).dump() + "\n";
    }
    case Format::kTop: break;
  }
  return profile::renderTop(profile::computeTop(profile, f.top));
}

// Writes the encoded profile to -o FILE, or to stdout for a non-top format without -o; nothing for top.
Status writeProfile(const profile::Profile& profile, Format format, const ProfileFlags& f, int64_t start_unix_ns) {
  const bool to_stdout = f.output.empty() && format != Format::kTop;
  if (f.output.empty() && !to_stdout) return {};
  std::string bytes = encode(profile, format, f, start_unix_ns);
  FILE* sink = to_stdout ? stdout : std::fopen(f.output.c_str(), "wb");
  bool ok = sink != nullptr && std::fwrite(bytes.data(), 1, bytes.size(), sink) == bytes.size() && std::fflush(sink) == 0;
  if (sink != nullptr && !to_stdout) ok = std::fclose(sink) == 0 && ok;
  if (!ok)
    return makeError(ErrorKind::kInternal,
                     "cannot write " + (f.output.empty() ? "to stdout" : f.output) + ": " + std::strerror(errno));
  return {};
}

// Checks -o before anything runs in the target: a bad path should fail now, not after the whole duration. An
// existing file is left as it is until there is a profile to put in it. Sets *existed.
Status probeOutput(const ProfileFlags& f, Format format, bool* existed) {
  if (f.output.empty() && format == Format::kPprof && isatty(STDOUT_FILENO))
    return makeError(ErrorKind::kUsage, "pprof is a binary format: write it with -o FILE.pb.gz, or redirect standard output");
  *existed = !f.output.empty() && ::access(f.output.c_str(), F_OK) == 0;
  if (f.output.empty()) return {};
  FILE* probe = std::fopen(f.output.c_str(), "ab");
  if (probe == nullptr) return makeError(ErrorKind::kUsage, "cannot write " + f.output + ": " + std::strerror(errno));
  std::fclose(probe);
  return {};
}

// The "top" array of both --json summaries (documented in cppops(1)).
nlohmann::json topJson(const std::vector<profile::TopEntry>& entries) {
  nlohmann::json functions = nlohmann::json::array();
  for (const profile::TopEntry& e : entries)
    functions.push_back({{"function", e.function}, {"flat", e.flat}, {"flat_fraction", e.flat_fraction},
                         {"cum", e.cum}, {"cum_fraction", e.cum_fraction}});
  return functions;
}

nlohmann::json summaryJson(const profile::Profile& profile, const profile::Capture& capture, const ProfileFlags& f,
                           const std::vector<std::string>& notes, std::optional<Format> written) {
  const profile::TopTable top = profile::computeTop(profile, f.top);
  nlohmann::json doc;
  doc["schema_version"] = 1;
  doc["pid"] = f.pid;
  doc["source"] = capture.source;
  doc["mode"] = profile.mode == profile::Mode::kWall ? "wall" : "cpu";
  doc["rate_hz"] = f.rate_hz;
  doc["period_ns"] = profile.period_ns;
  doc["duration_ns"] = profile.duration_ns;
  doc["samples"] = top.total;
  doc["dropped"] = profile.dropped;
  nlohmann::json threads = nlohmann::json::array();
  for (const ThreadTotal& t : threadTotals(capture.raw)) threads.push_back({{"tid", t.tid}, {"name", t.name}, {"samples", t.samples}});
  doc["threads"] = std::move(threads);
  doc["top"] = topJson(top.entries);
  if (written) doc["output"] = {{"file", f.output}, {"format", formatName(*written)}};
  doc["notes"] = notes;
  return doc;
}

int runHeapProfile(const ProfileFlags& f, const CommonFlags& flags);

// Through the agent when the process has one; through ptrace when it has none, or with --ptrace.
Result<profile::Capture> takeProfile(const ProfileFlags& f, const profile::CaptureOptions& options) {
  if (f.ptrace) return profile::profileThroughPtrace(f.pid, options);
  auto agent = discovery::findAgent(f.pid);
  if (agent) return profile::profileThroughAgent(f.pid, options);
  if (!proc::readProcess(f.pid)) return agent.error();
  return profile::profileThroughPtrace(f.pid, options);
}

int runProfile(const ProfileFlags& f, const CommonFlags& flags) {
  if (f.heap) return runHeapProfile(f, flags);
  if (f.start || f.stop || !f.base.empty())
    return reportError(makeError(ErrorKind::kUsage, "--start, --stop and --base are for heap profiles: add --heap"), flags);
  auto duration = parseDuration(f.duration);
  if (!duration) return reportError(duration.error(), flags);
  if (f.mode != "cpu" && f.mode != "wall")
    return reportError(makeError(ErrorKind::kUsage, "unknown --mode '" + f.mode + "'; use cpu or wall"), flags);
  auto format = chooseFormat(f);
  if (!format) return reportError(format.error(), flags);
  // Debug info must come from this machine: a configured debuginfod server could stall on the network.
  unsetenv("DEBUGINFOD_URLS");

  bool existed = false;
  if (Status probed = probeOutput(f, *format, &existed); !probed) return reportError(probed.error(), flags);

  profile::CaptureOptions options;
  options.duration = *duration;
  options.rate_hz = f.rate_hz;
  options.mode = f.mode == "wall" ? profile::Mode::kWall : profile::Mode::kCpu;
  options.timeout = flags.timeout();
  const int64_t start_unix_ns =
      duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  auto capture = takeProfile(f, options);
  if (!capture) {
    if (!f.output.empty() && !existed) std::remove(f.output.c_str());
    return reportError(capture.error(), flags);
  }
  filterThreads(capture->raw, f);
  profile::Profile profile = profile::buildProfile(capture->raw, capture->symbolizer.get());
  std::vector<std::string> notes = capture->notes;
  if (capture->symbolizer != nullptr) {
    const auto& more = capture->symbolizer->notes();
    notes.insert(notes.end(), more.begin(), more.end());
  }
  if (capture->raw.samples.empty() && options.mode == profile::Mode::kCpu && f.tids.empty() && f.name.empty())
    notes.push_back("no samples: no thread used CPU while the profile ran; --mode wall shows where threads wait");

  const bool to_stdout = f.output.empty() && *format != Format::kTop;
  if (Status written = writeProfile(profile, *format, f, start_unix_ns); !written) return reportError(written.error(), flags);

  if (flags.json) {
    printJson(summaryJson(profile, *capture, f, notes,
                          f.output.empty() ? std::nullopt : std::optional<Format>(*format)));
    return kExitOk;
  }
  if (to_stdout) {
    for (const auto& note : notes) fmt::print(stderr, "note: {}\n", note);
    return kExitOk;
  }
  if (!f.output.empty()) {
    uint64_t total = 0;
    for (const auto& s : profile.samples) total += s.count;
    fmt::print("wrote {} ({}): {} samples of process {}{} over {}, {} dropped\n", f.output, formatName(*format),
               total, f.pid, capture->source == "ptrace" ? " through ptrace" : "",
               profile::formatDuration(profile.duration_ns), profile.dropped);
  } else {
    fmt::print("{}", profile::renderTop(profile::computeTop(profile, f.top)));
    if (f.per_thread) {
      fmt::print("\n{:>10}  {:>8}  {}\n", "samples", "tid", "thread");
      for (const ThreadTotal& t : threadTotals(capture->raw)) fmt::print("{:>10}  {:>8}  {}\n", t.samples, t.tid, t.name);
    }
  }
  for (const auto& note : notes) fmt::print("note: {}\n", note);
  return kExitOk;
}

// "512KiB", "1MiB", "4096", "64k": bytes between heap samples, 1 byte to 1 GiB.
Result<uint64_t> parseSize(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  std::string unit = end != nullptr ? std::string(end) : "";
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> kUnits = {{"", 1},          {"b", 1},          {"k", 1024},
                                                       {"kb", 1024},     {"kib", 1024},     {"m", 1048576},
                                                       {"mb", 1048576},  {"mib", 1048576},  {"g", 1073741824},
                                                       {"gb", 1073741824}, {"gib", 1073741824}};
  auto it = kUnits.find(unit);
  const double bytes = it == kUnits.end() || errno != 0 || end == text.c_str() ? 0 : value * it->second;
  if (bytes < 1 || bytes > 1073741824)
    return makeError(ErrorKind::kUsage, "invalid --heap-rate '" + text + "': use a size from 1 byte to 1GiB such as 512KiB or 4096");
  return static_cast<uint64_t>(bytes);
}

Result<profile::HeapValue> parseSampleIndex(const std::string& text) {
  for (size_t i = 0; i < profile::kHeapValues; ++i) {
    const auto value = static_cast<profile::HeapValue>(i);
    if (text == profile::heapValueName(value)) return value;
  }
  return makeError(ErrorKind::kUsage, "unknown --sample-index '" + text +
                                          "'; use inuse_space, inuse_objects, alloc_space or alloc_objects");
}

nlohmann::json heapSummaryJson(const profile::Profile& profile, const ProfileFlags& f, bool sampling,
                               const std::vector<std::string>& notes, std::optional<Format> written) {
  uint64_t totals[profile::kHeapValues] = {};
  for (const profile::Sample& sample : profile.samples)
    for (size_t i = 0; i < profile::kHeapValues && i < sample.heap.size(); ++i) totals[i] += sample.heap[i];
  nlohmann::json doc;
  doc["schema_version"] = 1;
  doc["pid"] = f.pid;
  doc["mode"] = "heap";
  doc["sample_index"] = profile::heapValueName(profile.heap_shown);
  doc["rate_bytes"] = profile.heap_rate_bytes;
  doc["sampled_ns"] = profile.duration_ns;
  doc["sampling"] = sampling;
  doc["dropped"] = profile.dropped;
  doc["total"] = {{"alloc_objects", totals[profile::kAllocObjects]}, {"alloc_space", totals[profile::kAllocSpace]},
                  {"inuse_objects", totals[profile::kInuseObjects]}, {"inuse_space", totals[profile::kInuseSpace]}};
  doc["top"] = topJson(profile::computeTop(profile, f.top).entries);
  if (written) doc["output"] = {{"file", f.output}, {"format", formatName(*written)}};
  doc["notes"] = notes;
  return doc;
}

// Without --start or --stop: reads sampling that --start left on, or samples for --duration and switches it off.
Result<protocol::HeapProfileReply> heapSession(const ProfileFlags& f, uint64_t rate, milliseconds duration,
                                               const CommonFlags& flags) {
  auto now = profile::heapProfileRequest(f.pid, protocol::kHeapRead, rate, flags.timeout());
  if (!now || now->sampling != 0) return now;
  auto started = profile::heapProfileRequest(f.pid, protocol::kHeapStart, rate, flags.timeout());
  if (!started) return started.error();
  // Ctrl-C or SIGTERM while sampling: switch it off in the target first, then go.
  DeferredSignals signals;
  const auto until = steady_clock::now() + duration;
  while (steady_clock::now() < until && !DeferredSignals::pending()) {
    const auto left = duration_cast<milliseconds>(until - steady_clock::now());
    std::this_thread::sleep_for(std::min(left, milliseconds(50)));
  }
  return profile::heapProfileRequest(f.pid, protocol::kHeapStop, rate, flags.timeout());
}

int runHeapProfile(const ProfileFlags& f, const CommonFlags& flags) {
  auto duration = parseDuration(f.duration);
  if (!duration) return reportError(duration.error(), flags);
  auto rate = parseSize(f.heap_rate);
  if (!rate) return reportError(rate.error(), flags);
  auto shown = parseSampleIndex(f.sample_index);
  if (!shown) return reportError(shown.error(), flags);
  if (f.start && f.stop) return reportError(makeError(ErrorKind::kUsage, "use --start or --stop, not both"), flags);
  if (f.ptrace)
    return reportError(makeError(ErrorKind::kUsage, "--ptrace profiles CPU or wall-clock time; heap profiles need the "
                                                    "agent, which sees every allocation"),
                       flags);
  if (f.mode != "cpu" || !f.tids.empty() || !f.name.empty() || f.per_thread)
    return reportError(makeError(ErrorKind::kUsage, "--mode, --tid, --name and --threads do not apply to heap "
                                                    "profiles: allocations are counted by stack, not by thread"),
                       flags);
  auto format = chooseFormat(f);
  if (!format) return reportError(format.error(), flags);
  if (*format == Format::kSpeedscope)
    return reportError(makeError(ErrorKind::kUsage, "heap profiles are written as pprof, folded, svg or top, not speedscope"), flags);
  unsetenv("DEBUGINFOD_URLS");

  // The base is read before anything happens in the target: a wrong file should fail now.
  std::optional<profile::Profile> base;
  if (!f.base.empty()) {
    if (f.start) return reportError(makeError(ErrorKind::kUsage, "--base compares a profile: not with --start"), flags);
    auto bytes = proc::readFile(f.base, size_t{256} << 20);
    if (!bytes) return reportError(makeError(ErrorKind::kUsage, "cannot read --base " + f.base), flags);
    auto read = profile::readHeapPprof(*bytes);
    if (!read) return reportError(makeError(read.error().kind, f.base + ": " + read.error().message), flags);
    base = std::move(*read);
  }

  if (f.start) {
    auto started = profile::heapProfileRequest(f.pid, protocol::kHeapStart, *rate, flags.timeout());
    if (!started) return reportError(started.error(), flags);
    if (flags.json) {
      printJson({{"schema_version", 1}, {"pid", f.pid}, {"mode", "heap"}, {"sampling", true}, {"rate_bytes", *rate}});
      return kExitOk;
    }
    fmt::print("heap sampling on in process {}: one sample every {} bytes on average\n"
               "read it with `cppops profile {} --heap`, switch it off with `cppops profile {} --heap --stop`\n",
               f.pid, *rate, f.pid, f.pid);
    return kExitOk;
  }

  bool existed = false;
  if (Status probed = probeOutput(f, *format, &existed); !probed) return reportError(probed.error(), flags);
  const int64_t start_unix_ns = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  auto reply = f.stop ? profile::heapProfileRequest(f.pid, protocol::kHeapStop, *rate, flags.timeout())
                      : heapSession(f, *rate, *duration, flags);
  if (!reply) {
    if (!f.output.empty() && !existed) std::remove(f.output.c_str());
    return reportError(reply.error(), flags);
  }
  const bool sampling = reply->sampling != 0;
  const bool was_on = !(f.stop && reply->sampled_ns == 0 && reply->samples.empty());
  if (!was_on)
    reply->notes.push_back("heap sampling was not on in this process; start it with --start, or take a profile "
                           "over --duration without --start");
  profile::Capture capture = profile::heapCapture(f.pid, std::move(*reply), *shown);
  profile::Profile profile = profile::buildProfile(capture.raw, capture.symbolizer.get());
  std::vector<std::string> notes = capture.notes;
  if (capture.symbolizer != nullptr) {
    const auto& more = capture.symbolizer->notes();
    notes.insert(notes.end(), more.begin(), more.end());
  }
  if (base) {
    profile::BaseComparison comparison;
    profile = profile::subtractBase(profile, *base, &comparison);
    notes.push_back(fmt::format("growth since {}: {} stacks compared, {} shrank or are gone and are not shown "
                                "(go tool pprof -base {} FILE shows them too)",
                                f.base, comparison.matched, comparison.shrank, f.base));
  }
  if (was_on && profile.samples.empty())
    notes.push_back(fmt::format("nothing was sampled over {} at one sample every {} allocated bytes on average: the "
                                "process allocated less than that meanwhile; sample for longer, or at a lower "
                                "--heap-rate (16KiB, say)",
                                profile::formatDuration(profile.duration_ns), profile.heap_rate_bytes));
  if (sampling) notes.push_back("heap sampling is still on; switch it off with `cppops profile " + std::to_string(f.pid) + " --heap --stop`");
  if (Status written = writeProfile(profile, *format, f, start_unix_ns); !written) return reportError(written.error(), flags);

  if (flags.json) {
    printJson(heapSummaryJson(profile, f, sampling, notes, f.output.empty() ? std::nullopt : std::optional<Format>(*format)));
    return kExitOk;
  }
  const bool to_stdout = f.output.empty() && *format != Format::kTop;
  if (to_stdout) {
    for (const auto& note : notes) fmt::print(stderr, "note: {}\n", note);
    return kExitOk;
  }
  if (!f.output.empty())
    fmt::print("wrote {} ({}): heap profile of process {}, {} stacks sampled every {} bytes over {}\n", f.output,
               formatName(*format), f.pid, profile.samples.size(), profile.heap_rate_bytes,
               profile::formatDuration(profile.duration_ns));
  else
    fmt::print("{}", profile::renderTop(profile::computeTop(profile, f.top)));
  for (const auto& note : notes) fmt::print("note: {}\n", note);
  return kExitOk;
}

}  // namespace

void registerProfile(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static ProfileFlags f;
  auto* cmd = app.add_subcommand("profile", "Sample where the process spends CPU (or wall-clock) time");
  addPidArgument(*cmd, f.pid);
  cmd->add_option("--duration,-d", f.duration, "How long to sample, e.g. 500ms, 10s, 2m (default 10s)");
  cmd->add_option("--rate,-r", f.rate_hz, "Samples per second per thread (default 100)")->check(CLI::Range(1, 10000));
  cmd->add_option("--mode,-m", f.mode,
                  "cpu: where threads burn CPU (default); wall: every thread, running or waiting, with its state");
  cmd->add_option("--output,-o", f.output,
                  "Write the profile to FILE; the format follows its name (.pb.gz/.pprof, .folded/.txt, .svg, .json)");
  cmd->add_option("--format,-f", f.format,
                  "pprof, folded, svg, speedscope or top; without -o, pprof/folded/svg/speedscope go to stdout");
  cmd->add_flag("--threads", f.per_thread,
                "One flame per thread (folded, svg) and a per-thread sample count under the top table");
  cmd->add_option("--tid", f.tids, "Only these threads (comma-separated)")->delimiter(',');
  cmd->add_option("--name", f.name, "Only threads whose name contains this text");
  cmd->add_option("--top", f.top, "Rows of the top table, and of `top` under --json (default 20; 0: all)");
  cmd->add_flag("--heap", f.heap,
                "Where memory is allocated, by allocation stack: in use and allocated space and objects, sampled "
                "(needs the agent preloaded or linked as the shared library)");
  cmd->add_option("--heap-rate", f.heap_rate, "Mean bytes between heap samples, e.g. 512KiB (default), 64KiB, 1MiB");
  cmd->add_flag("--start", f.start, "Heap: switch sampling on and leave it on (read later with --heap, end with --stop)");
  cmd->add_flag("--stop", f.stop, "Heap: read what sampling recorded since --start, and switch it off");
  cmd->add_option("--base", f.base,
                  "Heap: show only what grew since FILE, a heap profile written earlier with --heap -o FILE");
  cmd->add_option("--sample-index", f.sample_index,
                  "Heap: what the top table, folded stacks and flame graph count: inuse_space (default), "
                  "inuse_objects, alloc_space or alloc_objects (pprof files hold all four)");
  cmd->add_flag("--ptrace", f.ptrace,
                "Sample with ptrace from outside, even if the process has an agent (a process without one always is)");
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Nothing runs in the process except while a profile runs; one profile at a time per process.\n"
      "Interrupting cppops ends the profile in the process too. A process without an agent is sampled through\n"
      "ptrace: sleeping threads are read where they sleep, running ones stopped for tens of microseconds.\n\n"
      "Examples:\n"
      "  cppops profile 1234                          top functions by CPU over 10 s\n"
      "  cppops profile 1234 -d 30s -o cpu.pb.gz      then: go tool pprof -http=: cpu.pb.gz\n"
      "  cppops profile 1234 -o flame.svg --threads   a flame graph, one flame per thread\n"
      "  cppops profile 1234 --mode wall -o wall.json open in https://www.speedscope.app\n"
      "  cppops profile 1234 --format folded | flamegraph.pl > flame.svg\n"
      "  cppops profile 1234 --heap -d 30s -o heap.pb.gz   in-use memory by allocation stack: go tool pprof\n"
      "  cppops profile 1234 --heap --start               leave sampling on; later:\n"
      "  cppops profile 1234 --heap -o then.pb.gz         later, what grew since then:\n"
      "  cppops profile 1234 --heap --base then.pb.gz     (or go tool pprof -base then.pb.gz now.pb.gz)\n"
      "  cppops profile 1234 --heap --stop -o last.pb.gz  the last read, and sampling off");
  cmd->callback([&] { exit_code = runProfile(f, flags); });
}

}  // namespace cppops::cli
