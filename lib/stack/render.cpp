#include "stack/render.h"

#include "render/json_text.h"

#include <fmt/format.h>
#include <iterator>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

namespace cppops::stack {
namespace {

using Members = std::vector<const Thread*>;

template <typename T>
bool contains(const std::vector<T>& values, const T& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string hex(uint64_t value) { return fmt::format("0x{:x}", value); }

std::string plural(size_t count, const char* noun) {
  return fmt::format("{} {}{}", count, noun, count == 1 ? "" : "s");
}

std::string basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

const Thread* findThread(const StackDump& dump, pid_t tid) {
  auto it = std::lower_bound(dump.threads.begin(), dump.threads.end(), tid,
                             [](const Thread& thread, pid_t wanted) { return thread.tid < wanted; });
  return it != dump.threads.end() && it->tid == tid ? &*it : nullptr;
}

// Groups cut down to the threads the filter shows; that changes their sizes, hence the new order.
std::vector<Members> shownGroups(const StackDump& dump, const Filter& filter) {
  std::vector<Members> groups;
  for (const Group& group : dump.groups) {
    Members shown;
    for (size_t index : group.members) {
      if (filter.matches(dump.threads[index])) shown.push_back(&dump.threads[index]);
    }
    if (!shown.empty()) groups.push_back(std::move(shown));
  }
  std::sort(groups.begin(), groups.end(), [](const Members& a, const Members& b) {
    if (a.size() != b.size()) return a.size() > b.size();
    return a.front()->tid < b.front()->tid;
  });
  return groups;
}

// ---------------------------------------------------------------------------------------------------------------
// Text.

// What a set of threads waits on, as far as all of them agree.
struct WaitSummary {
  ThreadState state = ThreadState::kUnknown;
  std::string syscall;
  std::optional<pid_t> owner;
  bool held_by_readers = false;
  std::string wait;
};

template <typename T, typename Get>
T agreed(const Members& members, Get get) {
  T first = get(*members.front());
  auto agrees = [&](const Thread* thread) { return get(*thread) == first; };
  return std::all_of(members.begin(), members.end(), agrees) ? first : T{};
}

WaitSummary summarize(const Members& members) {
  WaitSummary summary;
  summary.state = members.front()->state;
  summary.syscall = agreed<std::string>(members, [](const Thread& thread) { return thread.syscall; });
  summary.owner = agreed<std::optional<pid_t>>(members, [](const Thread& thread) { return thread.owner_tid; });
  summary.held_by_readers = agreed<bool>(members, [](const Thread& thread) { return thread.held_by_readers; });
  summary.wait = agreed<std::string>(members, [](const Thread& thread) { return thread.wait; });
  return summary;
}

// "mutex (owner 1240)", "rwlock_write (held by readers)", "syscall ioctl".
std::string stateText(const WaitSummary& summary) {
  std::string text = stateName(summary.state);
  if (summary.state == ThreadState::kSyscall && !summary.syscall.empty()) text += " " + summary.syscall;
  if (summary.owner) {
    text += fmt::format(" (owner {})", *summary.owner);
  } else if (summary.held_by_readers) {
    text += " (held by readers)";
  }
  return text;
}

std::string waitText(const WaitSummary& summary) { return summary.wait.empty() ? "" : "  [" + summary.wait + "]"; }

std::string threadLabel(const StackDump& dump, pid_t tid) {
  const Thread* thread = findThread(dump, tid);
  if (thread == nullptr || thread->name.empty()) return fmt::format("thread {}", tid);
  return fmt::format("thread {} \"{}\"", tid, thread->name);
}

// "worker: 1241, 1242, 1243 and 597 more"; the first few tids, those of one name together.
std::string memberList(const Members& members) {
  constexpr size_t kListed = 3;
  std::vector<std::pair<std::string, std::vector<std::string>>> tids_by_name;
  for (size_t i = 0; i < std::min(kListed, members.size()); ++i) {
    const Thread& thread = *members[i];
    auto same_name = std::find_if(tids_by_name.begin(), tids_by_name.end(),
                                  [&](const auto& entry) { return entry.first == thread.name; });
    if (same_name == tids_by_name.end()) same_name = tids_by_name.insert(tids_by_name.end(), {thread.name, {}});
    same_name->second.push_back(std::to_string(thread.tid));
  }
  std::vector<std::string> segments;
  for (const auto& [name, tids] : tids_by_name) {
    std::string list = fmt::format("{}", fmt::join(tids, ", "));
    segments.push_back(name.empty() ? list : name + ": " + list);
  }
  std::string text = fmt::format("{}", fmt::join(segments, "; "));
  if (members.size() > kListed) text += fmt::format(" and {} more", members.size() - kListed);
  return text;
}

// "    #1  handleRequest()  demo_service.cpp:25  (demo_service)"; parts nobody knows are left out.
std::string frameLine(size_t index, const SourceFrame& frame) {
  std::string line = fmt::format("    #{}  {}", index, frame.function.empty() ? hex(frame.address) : frame.function);
  if (!frame.file.empty()) {
    line += "  " + basename(frame.file);
    if (frame.line > 0) line += ":" + std::to_string(frame.line);
  }
  if (!frame.module.empty()) {
    // Without a function name, the module offset is what leads back to the code (addr2line -e module offset).
    std::string offset = frame.function.empty() ? "+" + hex(frame.module_offset) : "";
    line += "  (" + basename(frame.module) + offset + ")";
  }
  if (frame.inlined) line += "  (inlined)";
  return line;
}

void appendStack(std::string& out, const Thread& thread) {
  if (thread.frames.empty()) {
    out += "    (no stack: " + thread.no_stack_reason + ")\n";
    return;
  }
  for (size_t i = 0; i < thread.frames.size(); ++i) out += frameLine(i, thread.frames[i]) + "\n";
}

std::string headerLine(const StackDump& dump) {
  const std::string asleep = dump.cost.read_asleep > 0 ? fmt::format(", {} read asleep", dump.cost.read_asleep) : "";
  return fmt::format("process {}: {}, via {} in {:.1f} ms (longest thread pause {} us{})\n", dump.pid,
                     plural(dump.threads.size(), "thread"), dump.source,
                     static_cast<double>(dump.cost.capture_ns) / 1e6, dump.cost.max_pause_ns / 1000, asleep);
}

// "states: 600 mutex, 200 sleep, 1 running", most first.
std::string statesLine(const StackDump& dump, const Filter& filter) {
  std::map<ThreadState, size_t> counts;
  size_t shown = 0;
  for (const Thread& thread : dump.threads) {
    if (!filter.matches(thread)) continue;
    ++counts[thread.state];
    ++shown;
  }
  std::vector<std::pair<ThreadState, size_t>> by_count(counts.begin(), counts.end());
  std::stable_sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (const auto& [state, count] : by_count) parts.push_back(fmt::format("{} {}", count, stateName(state)));
  std::string line = "states: " + (parts.empty() ? std::string("none") : fmt::format("{}", fmt::join(parts, ", ")));
  if (shown != dump.threads.size()) line += fmt::format(" (filtered from {})", dump.threads.size());
  return line + "\n";
}

void appendDeadlocks(std::string& out, const StackDump& dump) {
  if (dump.deadlocks.empty()) return;
  out += fmt::format("\nFound {}:\n", plural(dump.deadlocks.size(), "deadlock"));
  for (const Deadlock& deadlock : dump.deadlocks) {
    out += "\n";
    for (size_t i = 0; i < deadlock.tids.size(); ++i) {
      pid_t tid = deadlock.tids[i];
      pid_t holder = deadlock.tids[(i + 1) % deadlock.tids.size()];
      const Thread* thread = findThread(dump, tid);
      std::string wait = thread != nullptr && !thread->wait.empty() ? thread->wait : "a lock";
      std::string held_by = holder == tid ? "itself" : threadLabel(dump, holder);
      out += fmt::format("{} waits for {} held by {}\n", threadLabel(dump, tid), wait, held_by);
      if (thread != nullptr) appendStack(out, *thread);
    }
  }
}

void appendGroups(std::string& out, const StackDump& dump, const Filter& filter) {
  for (const Members& members : shownGroups(dump, filter)) {
    WaitSummary summary = summarize(members);
    out += fmt::format("\n{}  {}  {}{}\n", plural(members.size(), "thread"), stateText(summary), memberList(members),
                       waitText(summary));
    appendStack(out, *members.front());
  }
}

void appendEveryThread(std::string& out, const StackDump& dump, const Filter& filter) {
  for (const Thread& thread : dump.threads) {
    if (!filter.matches(thread)) continue;
    WaitSummary summary = summarize({&thread});
    out += fmt::format("\n{}  {}{}\n", threadLabel(dump, thread.tid), stateText(summary), waitText(summary));
    appendStack(out, thread);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON.

const char* captureName(CaptureStatus status) {
  switch (status) {
    case CaptureStatus::kCaptured: return "captured";
    case CaptureStatus::kNoAnswer: return "no_answer";
    case CaptureStatus::kExited: return "exited";
    case CaptureStatus::kNotRequested: return "not_requested";
  }
  return "unknown";
}

// JSON is appended as text: the DOM of a 1,000-thread dump costs more than the whole dump (see json_text.h).
class JsonOut {
 public:
  explicit JsonOut(std::string& out) : out_(out) {}

  void open(char bracket) {
    comma();
    out_ += bracket;
    first_ = true;
  }
  void close(char bracket) {
    out_ += bracket;
    first_ = false;
  }
  // A key, after which exactly one value (or open) follows.
  JsonOut& key(std::string_view name) {
    comma();
    render::appendJsonString(out_, name);
    out_ += ':';
    first_ = true;
    return *this;
  }
  void string(std::string_view value) {
    comma();
    render::appendJsonString(out_, value);
  }
  template <typename Number>
  void number(Number value) {
    comma();
    fmt::format_to(std::back_inserter(out_), "{}", value);
  }
  void boolean(bool value) {
    comma();
    out_ += value ? "true" : "false";
  }

 private:
  void comma() {
    if (!first_) out_ += ',';
    first_ = false;
  }

  std::string& out_;
  bool first_ = true;
};

void frameJson(JsonOut& json, const SourceFrame& frame) {
  json.open('{');
  json.key("function").string(frame.function);
  json.key("file").string(frame.file);
  json.key("line").number(frame.line);
  json.key("module").string(frame.module);
  json.key("address").string(hex(frame.address));
  json.key("inlined").boolean(frame.inlined);
  json.close('}');
}

void threadJson(JsonOut& json, const Thread& thread) {
  json.open('{');
  json.key("tid").number(thread.tid);
  json.key("name").string(thread.name);
  json.key("state").string(stateName(thread.state));
  json.key("kernel_state").string(std::string_view(&thread.kernel_state, 1));
  json.key("capture").string(captureName(thread.capture));
  if (thread.owner_tid) json.key("owner_tid").number(*thread.owner_tid);
  if (thread.held_by_readers) json.key("held_by_readers").boolean(true);
  if (!thread.wait.empty()) json.key("wait").string(thread.wait);
  if (!thread.syscall.empty()) json.key("syscall").string(thread.syscall);
  if (thread.frames.empty()) json.key("reason").string(thread.no_stack_reason);
  // The time this thread was held for the capture (its own unwind in the handler, or its ptrace stop).
  if (thread.capture == CaptureStatus::kCaptured) json.key("pause_ns").number(thread.handler_ns);
  json.key("frames").open('[');
  for (const SourceFrame& frame : thread.frames) frameJson(json, frame);
  json.close(']');
  json.close('}');
}

void tidsJson(JsonOut& json, const std::vector<pid_t>& tids) {
  json.open('[');
  for (pid_t tid : tids) json.number(tid);
  json.close(']');
}

void groupJson(JsonOut& json, const Members& members) {
  json.open('{');
  json.key("count").number(members.size());
  json.key("state").string(stateName(members.front()->state));
  std::vector<pid_t> tids;
  for (const Thread* thread : members) tids.push_back(thread->tid);
  json.key("tids");
  tidsJson(json, tids);
  json.close('}');
}

}  // namespace

bool Filter::matches(const Thread& thread) const {
  return (states.empty() || contains(states, thread.state)) &&
         (name.empty() || thread.name.find(name) != std::string::npos) && (tids.empty() || contains(tids, thread.tid));
}

std::string renderText(const StackDump& dump, const RenderOptions& options) {
  std::string out = headerLine(dump) + statesLine(dump, options.filter);
  appendDeadlocks(out, dump);
  if (options.every_thread) {
    appendEveryThread(out, dump, options.filter);
  } else {
    appendGroups(out, dump, options.filter);
  }
  if (!dump.notes.empty()) out += "\n";
  for (const std::string& note : dump.notes) out += "note: " + note + "\n";
  return out;
}

std::string renderJson(const StackDump& dump, const Filter& filter) {
  std::string out;
  out.reserve(256 + dump.threads.size() * 2048);
  JsonOut json(out);
  json.open('{');
  json.key("schema_version").number(1);
  json.key("pid").number(dump.pid);
  json.key("source").string(dump.source);
  json.key("threads").open('[');
  for (const Thread& thread : dump.threads)
    if (filter.matches(thread)) threadJson(json, thread);
  json.close(']');
  json.key("deadlocks").open('[');
  for (const Deadlock& deadlock : dump.deadlocks) {
    json.open('{');
    json.key("tids");
    tidsJson(json, deadlock.tids);
    json.close('}');
  }
  json.close(']');
  json.key("groups").open('[');
  for (const Members& members : shownGroups(dump, filter)) groupJson(json, members);
  json.close(']');
  json.key("cost").open('{');
  json.key("total_ns").number(dump.cost.total_ns);
  json.key("capture_ns").number(dump.cost.capture_ns);
  json.key("max_pause_ns").number(dump.cost.max_pause_ns);
  json.key("read_asleep").number(dump.cost.read_asleep);
  json.close('}');
  json.key("notes").open('[');
  for (const std::string& note : dump.notes) json.string(note);
  json.close(']');
  json.close('}');
  return out;
}

}  // namespace cppops::stack
