// Which stack groups grew between two dumps: the answer to "threads keep climbing, but which ones?".
//
// Both sides are read from the stack JSON (schema_version 1, as `cppops stack --json` prints it), so a dump saved
// yesterday compares with one taken now. A group is identified by its state and its frames' functions, files and
// lines (a frame without a function by its module), never by addresses, which change with every run.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"

namespace cppops::stack {

struct GroupSnapshot {
  std::string key;                  // state + frames, as compared
  std::string state;                // stateName()
  std::vector<std::string> frames;  // "function  file:line", innermost first, for people
  std::vector<pid_t> tids;
};

// The groups of a stack JSON document; an error (usage: the file is not a stack dump) when it is malformed.
Result<std::vector<GroupSnapshot>> groupsFromJson(const nlohmann::json& doc);

struct GroupChange {
  std::string state;
  std::vector<std::string> frames;
  size_t before = 0;
  size_t after = 0;
  std::vector<pid_t> new_tids;  // threads in the group now that were not in it before

  long delta() const { return static_cast<long>(after) - static_cast<long>(before); }
};

// Every group whose size changed, most grown first, then most shrunk last; unchanged groups are left out.
std::vector<GroupChange> diffGroups(const std::vector<GroupSnapshot>& before, const std::vector<GroupSnapshot>& after);

// Text for people: one block per group with its count change and stack; `only_growth` leaves out shrinking
// and vanished groups (what `cppops watch` wants).
std::string renderChanges(const std::vector<GroupChange>& changes, bool only_growth);
nlohmann::json changesJson(const std::vector<GroupChange>& changes, bool only_growth);

}  // namespace cppops::stack
