#include "protocol/protocol.h"

#include <cstring>

namespace cppops::protocol {

namespace {
struct CommandEntry {
  Command command;
  std::string_view name;
};
constexpr CommandEntry kCommands[] = {
    {Command::kHello, "hello"},   {Command::kStats, "stats"},     {Command::kVersion, "version"},
    {Command::kStack, "stack"},   {Command::kSymbols, "symbols"},
    {Command::kProfile, "profile"},
    {Command::kHeap, "heap"},     {Command::kGc, "gc"},           {Command::kHeapProfile, "heap-profile"},
    {Command::kMetrics, "metrics"},
};
}  // namespace

std::string_view commandName(Command c) {
  for (const auto& e : kCommands)
    if (e.command == c) return e.name;
  return "unknown";
}

std::optional<Command> commandFromName(std::string_view name) {
  for (const auto& e : kCommands)
    if (e.name == name) return e.command;
  return std::nullopt;
}

std::string_view statusName(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kBadRequest: return "bad request";
    case Status::kUnknownCommand: return "unknown command";
    case Status::kPermissionDenied: return "permission denied";
    case Status::kBusy: return "busy";
    case Status::kInternal: return "internal error";
    case Status::kVersionMismatch: return "protocol version mismatch";
    case Status::kTooLarge: return "request too large";
    case Status::kTimeout: return "timeout";
  }
  return "unknown status";
}

void encodeHeader(const FrameHeader& h, uint8_t out[kHeaderSize]) {
  std::memcpy(out + 0, &h.magic, 4);
  std::memcpy(out + 4, &h.version, 2);
  std::memcpy(out + 6, &h.code, 2);
  std::memcpy(out + 8, &h.length, 4);
  std::memcpy(out + 12, &h.flags, 4);
}

FrameHeader decodeHeader(const uint8_t in[kHeaderSize]) {
  FrameHeader h;
  std::memcpy(&h.magic, in + 0, 4);
  std::memcpy(&h.version, in + 4, 2);
  std::memcpy(&h.code, in + 6, 2);
  std::memcpy(&h.length, in + 8, 4);
  std::memcpy(&h.flags, in + 12, 4);
  return h;
}

}  // namespace cppops::protocol
