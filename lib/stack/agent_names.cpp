#include "stack/agent_names.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "protocol/messages.h"

namespace cppops::stack {

namespace {

// Each address costs 8 request bytes; this keeps a request well inside the agent's 64 KiB request limit.
constexpr size_t kAddressesPerRequest = 4096;

struct AgentName {
  std::string function;  // demangled
  std::string module;
};

std::string demangle(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                                  &std::free);
  return status == 0 && out ? std::string(out.get()) : name;
}

// Only a module the CLI could not open is worth asking about: in one it could read, a pc without a name lies in
// a function that no symbol table names (a static function of a stripped library), which dladdr cannot name
// either. Code outside any module (JIT code) has no name anywhere.
bool unnamedInUnreadableModule(const FrameSource& frames, uint64_t pc, bool is_return_address) {
  std::vector<SourceFrame> resolved = frames(pc, is_return_address);
  return !resolved.empty() && resolved.back().function.empty() && resolved.back().module_unreadable;
}

}  // namespace

FallbackNames agentNames(client::Connection& agent, const RawDump& raw, FrameSource symbolized) {
  std::vector<uint64_t> wanted;
  std::unordered_set<uint64_t> seen;
  for (const RawThread& thread : raw.threads)
    for (size_t i = 0; i < thread.pcs.size(); ++i)
      if (seen.insert(thread.pcs[i]).second && unnamedInUnreadableModule(symbolized, thread.pcs[i], i > 0))
        wanted.push_back(thread.pcs[i]);
  if (wanted.empty() || !agent.supports(protocol::Command::kSymbols)) return {std::move(symbolized), ""};

  std::unordered_map<uint64_t, AgentName> names;
  for (size_t begin = 0; begin < wanted.size(); begin += kAddressesPerRequest) {
    protocol::SymbolsRequest request;
    const size_t end = std::min(wanted.size(), begin + kAddressesPerRequest);
    request.addresses.assign(wanted.begin() + static_cast<std::ptrdiff_t>(begin),
                             wanted.begin() + static_cast<std::ptrdiff_t>(end));
    wire::Writer w;
    request.encode(w);
    auto payload = agent.call(protocol::Command::kSymbols, w.take());
    if (!payload) break;
    auto reply = client::decode<protocol::SymbolsReply>(*payload);
    if (!reply || reply->symbols.size() != request.addresses.size()) break;
    for (size_t i = 0; i < request.addresses.size(); ++i) {
      const protocol::AgentSymbol& symbol = reply->symbols[i];
      if (!symbol.name.empty()) names[request.addresses[i]] = AgentName{demangle(symbol.name), symbol.module};
    }
  }
  if (names.empty()) return {std::move(symbolized), ""};

  std::string note = std::to_string(names.size()) +
                     " frame address(es) named by the agent from the target's dynamic symbol tables, because the "
                     "CLI could not read their binaries: no file:line for those; run cppops as the target's user "
                     "or as root to read them";
  FrameSource frames = [names = std::move(names), symbolized = std::move(symbolized)](uint64_t pc,
                                                                                      bool is_return_address) {
    std::vector<SourceFrame> resolved = symbolized(pc, is_return_address);
    auto it = names.find(pc);
    if (it == names.end()) return resolved;
    if (resolved.empty()) {
      SourceFrame frame;
      frame.address = pc;
      resolved.push_back(frame);
    }
    SourceFrame& outer = resolved.back();
    if (outer.function.empty()) outer.function = it->second.function;
    if (outer.module.empty()) outer.module = it->second.module;
    return resolved;
  };
  return {std::move(frames), std::move(note)};
}

}  // namespace cppops::stack
