#include <exception>
#include <new>

#include "commands.h"
#include "protocol/messages.h"

namespace cppops::agent {

namespace {

using Handler = Reply (*)(wire::Reader&, const RequestContext&);

struct Entry {
  protocol::Command command;
  Handler handler;
};

constexpr Entry kHandlers[] = {
    {protocol::Command::kHello, handleHello},
    {protocol::Command::kStats, handleStats},
    {protocol::Command::kVersion, handleVersion},
    {protocol::Command::kStack, handleStack},
    {protocol::Command::kSymbols, handleSymbols},
    {protocol::Command::kProfile, handleProfile},
    {protocol::Command::kMetrics, handleMetrics},
    {protocol::Command::kHeap, handleHeap},
    {protocol::Command::kGc, handleGc},
    {protocol::Command::kHeapProfile, handleHeapProfile},
};

}  // namespace

Reply errorReply(protocol::Status status, std::string message) {
  Reply r;
  r.status = status;
  wire::Writer w;
  protocol::ErrorReply{std::move(message)}.encode(w);
  r.payload = w.take();
  return r;
}

Reply okReply(std::vector<uint8_t> payload) {
  Reply r;
  r.payload = std::move(payload);
  return r;
}

Reply dispatch(protocol::Command command, wire::Reader& args, const RequestContext& context) {
  for (const auto& e : kHandlers) {
    if (e.command != command) continue;
    // The host must never see an exception from us; the client gets the reason instead.
    try {
      return e.handler(args, context);
    } catch (const std::bad_alloc&) {
      return errorReply(protocol::Status::kInternal, "the agent ran out of memory while answering");
    } catch (const std::exception& ex) {
      return errorReply(protocol::Status::kInternal, std::string("the agent failed: ") + ex.what());
    } catch (...) {
      return errorReply(protocol::Status::kInternal, "the agent failed with an unknown exception");
    }
  }
  return errorReply(protocol::Status::kUnknownCommand,
                    "this agent does not implement command " + std::to_string(static_cast<int>(command)) +
                        "; upgrade the agent in the target to the CLI's version");
}

std::vector<std::string> capabilities() {
  std::vector<std::string> out;
  for (const auto& e : kHandlers) out.emplace_back(protocol::commandName(e.command));
  return out;
}

}  // namespace cppops::agent
