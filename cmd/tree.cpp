// cppops tree: the process tree, with agent processes marked and the ancestors that make it read naturally.
#include <fmt/format.h>

#include <map>
#include <set>

#include "command.h"
#include "discovery/agent_list.h"
#include "exit_codes.h"

namespace cppops::cli {

namespace {

struct Node {
  proc::ProcessInfo process;
  const discovery::AgentProcess* agent = nullptr;
  std::vector<pid_t> children;
};

using Forest = std::map<pid_t, Node>;

nlohmann::json toJson(const Forest& forest, pid_t pid) {
  const Node& n = forest.at(pid);
  nlohmann::json children = nlohmann::json::array();
  for (pid_t c : n.children) children.push_back(toJson(forest, c));
  nlohmann::json j = {{"pid", n.process.pid}, {"name", n.process.name}, {"agent", n.agent != nullptr},
                      {"children", std::move(children)}};
  if (n.agent != nullptr && n.agent->hello) j["agent_version"] = n.agent->hello->agent_version;
  return j;
}

void print(const Forest& forest, pid_t pid, const std::string& prefix, bool last, bool root) {
  const Node& n = forest.at(pid);
  std::string mark;
  if (n.agent != nullptr) mark = n.agent->hello ? fmt::format("  [cppops {}]", n.agent->hello->agent_version) : "  [cppops ?]";
  fmt::print("{}{}{} ({}){}\n", prefix, root ? "" : (last ? "└─ " : "├─ "), n.process.name, pid, mark);
  std::string child_prefix = root ? "" : prefix + (last ? "   " : "│  ");
  for (size_t i = 0; i < n.children.size(); ++i)
    print(forest, n.children[i], child_prefix, i + 1 == n.children.size(), false);
}

}  // namespace

int runTree(const CommonFlags& flags) {
  auto agents = discovery::listAgentProcesses(flags.timeout());
  Forest forest;
  // Walk each agent process up to the top of the tree we can see, adding the ancestors on the way.
  for (const auto& a : agents) {
    pid_t pid = a.process.pid;
    forest[pid].process = a.process;
    forest[pid].agent = &a;
    while (true) {
      pid_t parent = forest[pid].process.ppid;
      if (parent <= 0) break;
      bool known = forest.count(parent) != 0;
      if (!known) {
        auto info = proc::readProcess(parent);
        if (!info) {
          forest[pid].process.ppid = 0;  // parent exited meanwhile: this becomes a root
          break;
        }
        forest[parent].process = std::move(*info);
      }
      auto& siblings = forest[parent].children;
      if (std::find(siblings.begin(), siblings.end(), pid) == siblings.end()) siblings.push_back(pid);
      if (known) break;
      pid = parent;
    }
  }
  std::vector<pid_t> roots;
  for (auto& [pid, node] : forest) {
    std::sort(node.children.begin(), node.children.end());
    if (node.process.ppid <= 0 || forest.count(node.process.ppid) == 0) roots.push_back(pid);
  }
  if (flags.json) {
    nlohmann::json doc = nlohmann::json::array();
    for (pid_t r : roots) doc.push_back(toJson(forest, r));
    printJson(doc);
  } else {
    for (pid_t r : roots) print(forest, r, "", true, true);
  }
  return kExitOk;
}

void registerTree(CLI::App& app, CommonFlags& flags, int& exit_code) {
  auto* cmd = app.add_subcommand("tree", "Show the process tree with agent processes marked");
  addCommonFlags(*cmd, flags);
  cmd->footer("Examples:\n  cppops tree\n  cppops tree --json");
  cmd->callback([&] { exit_code = runTree(flags); });
}

}  // namespace cppops::cli
