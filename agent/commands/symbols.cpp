#include <dlfcn.h>

#include "commands.h"
#include "protocol/messages.h"

namespace cppops::agent {

Reply handleSymbols(wire::Reader& args, const RequestContext&) {
  protocol::SymbolsRequest request;
  if (!request.decode(args)) return errorReply(protocol::Status::kBadRequest, "malformed symbols request");
  protocol::SymbolsReply reply;
  reply.symbols.reserve(request.addresses.size());
  for (uint64_t address : request.addresses) {
    protocol::AgentSymbol symbol;
    Dl_info info{};
    // dladdr only reads the loader's in-memory tables: no file access, which is the point of asking us.
    if (dladdr(reinterpret_cast<void*>(address), &info) != 0) {
      if (info.dli_fname != nullptr) symbol.module = info.dli_fname;
      if (info.dli_sname != nullptr && info.dli_saddr != nullptr) {
        symbol.name = info.dli_sname;
        symbol.offset = address - reinterpret_cast<uint64_t>(info.dli_saddr);
      } else if (info.dli_fbase != nullptr) {
        symbol.offset = address - reinterpret_cast<uint64_t>(info.dli_fbase);
      }
    }
    reply.symbols.push_back(std::move(symbol));
  }
  wire::Writer w;
  reply.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
