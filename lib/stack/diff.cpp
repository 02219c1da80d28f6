#include "stack/diff.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace cppops::stack {

namespace {

std::string frameText(const nlohmann::json& frame) {
  const std::string function = frame.value("function", "");
  const std::string file = frame.value("file", "");
  const int line = frame.value("line", 0);
  if (function.empty()) return "?? (" + frame.value("module", std::string("unknown module")) + ")";
  if (file.empty()) return function;
  return fmt::format("{}  {}:{}", function, file, line);
}

}  // namespace

Result<std::vector<GroupSnapshot>> groupsFromJson(const nlohmann::json& doc) {
  const auto bad = [](const std::string& why) {
    return makeError(ErrorKind::kUsage, "not a cppops stack dump (" + why +
                                            "); save one with `cppops stack PID --json > FILE`");
  };
  try {
    if (!doc.is_object() || doc.value("schema_version", 0) != 1) return bad("no schema_version 1");
    std::map<pid_t, const nlohmann::json*> threads;
    for (const nlohmann::json& t : doc.at("threads")) threads[t.at("tid").get<pid_t>()] = &t;
    std::vector<GroupSnapshot> out;
    for (const nlohmann::json& g : doc.at("groups")) {
      GroupSnapshot s;
      s.state = g.at("state").get<std::string>();
      s.tids = g.at("tids").get<std::vector<pid_t>>();
      if (s.tids.empty()) return bad("a group without threads");
      auto first = threads.find(s.tids.front());
      if (first == threads.end()) return bad("a group names thread " + std::to_string(s.tids.front()) +
                                             " that is not in the dump");
      const nlohmann::json& t = *first->second;
      s.key = s.state;
      if (t.at("frames").empty()) s.frames.push_back("(no stack: " + t.value("reason", std::string("unknown")) + ")");
      for (const nlohmann::json& f : t.at("frames")) s.frames.push_back(frameText(f));
      for (const std::string& f : s.frames) s.key += "\n" + f;
      out.push_back(std::move(s));
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
}

std::vector<GroupChange> diffGroups(const std::vector<GroupSnapshot>& before, const std::vector<GroupSnapshot>& after) {
  // Two groups of one dump can share a key only if they differ in something the key leaves out (addresses of
  // unnamed frames); they are counted together, as the same story.
  std::map<std::string, GroupChange> by_key;
  std::map<std::string, std::vector<pid_t>> old_tids;
  for (const GroupSnapshot& g : before) {
    GroupChange& c = by_key[g.key];
    c.state = g.state;
    c.frames = g.frames;
    c.before += g.tids.size();
    old_tids[g.key].insert(old_tids[g.key].end(), g.tids.begin(), g.tids.end());
  }
  for (const GroupSnapshot& g : after) {
    GroupChange& c = by_key[g.key];
    c.state = g.state;
    c.frames = g.frames;
    c.after += g.tids.size();
    const auto& was = old_tids[g.key];
    for (pid_t tid : g.tids)
      if (std::find(was.begin(), was.end(), tid) == was.end()) c.new_tids.push_back(tid);
  }
  std::vector<GroupChange> changes;
  for (auto& [key, c] : by_key)
    if (c.before != c.after) changes.push_back(std::move(c));
  std::stable_sort(changes.begin(), changes.end(),
                   [](const GroupChange& a, const GroupChange& b) { return a.delta() > b.delta(); });
  return changes;
}

std::string renderChanges(const std::vector<GroupChange>& changes, bool only_growth) {
  std::string out;
  for (const GroupChange& c : changes) {
    if (only_growth && c.delta() <= 0) continue;
    out += fmt::format("{:+d} threads  {}  ({} -> {})\n", c.delta(), c.state, c.before, c.after);
    for (const std::string& f : c.frames) out += "    " + f + "\n";
  }
  return out;
}

nlohmann::json changesJson(const std::vector<GroupChange>& changes, bool only_growth) {
  nlohmann::json out = nlohmann::json::array();
  for (const GroupChange& c : changes) {
    if (only_growth && c.delta() <= 0) continue;
    out.push_back({{"state", c.state},
                   {"before", c.before},
                   {"after", c.after},
                   {"delta", c.delta()},
                   {"new_tids", c.new_tids},
                   {"frames", c.frames}});
  }
  return out;
}

}  // namespace cppops::stack
