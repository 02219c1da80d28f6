// The cppops control protocol: framing, commands and statuses. Shared by the agent and the CLI; specified in
// man/cppops-protocol.7, which must change together with this file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cppops::protocol {

// 'C','P','O','P' in wire (little-endian) order.
inline constexpr uint32_t kMagic = 0x504f5043;
// Bumped on any change an older peer would misread; adding trailing fields to a message does not bump it.
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kHeaderSize = 16;
// Requests are small (a command and a few arguments); the bound keeps a hostile client from making the agent
// buffer more than this per connection.
inline constexpr uint32_t kMaxRequestPayload = 64 * 1024;
// Replies can be large (a 10,000-thread stack dump); the bound keeps a confused agent from exhausting the CLI.
inline constexpr uint32_t kMaxReplyPayload = 256u * 1024 * 1024;

enum class Command : uint16_t {
  kHello = 1,    // handshake: versions, identity, capabilities
  kStats = 2,    // process figures from the kernel (threads, CPU, RSS, fds, context switches)
  kVersion = 3,  // build facts: build-id, executable, how the agent was loaded
  kStack = 4,    // raw per-thread stacks and kernel wait facts (issue: stack)
  kSymbols = 5,  // names the agent can resolve itself (dladdr), when the CLI cannot read the binaries
  kProfile = 6,  // samples of every thread's stack over a duration, cpu or wall-clock (issue: profile)
  kHeap = 7,         // allocator statistics and the kernel's view of memory (issue: memory)
  kGc = 8,           // give free memory back to the OS in the allocator's own way, figures before and after
  kHeapProfile = 9,  // switch allocation sampling on or off, read the sampled allocations by stack
  kMetrics = 10,  // built-in and application metrics, with every thread's kernel wait facts (issue: metrics)
};

enum class Status : uint16_t {
  kOk = 0,
  kBadRequest = 1,        // malformed frame or arguments
  kUnknownCommand = 2,    // this agent does not implement the command (older agent)
  kPermissionDenied = 3,  // SO_PEERCRED check failed
  kBusy = 4,              // a conflicting request is running
  kInternal = 5,          // the agent failed; the message says how
  kVersionMismatch = 6,   // the frame's protocol version is not one the agent speaks
  kTooLarge = 7,          // the request exceeds kMaxRequestPayload
  kTimeout = 8,           // the request did not arrive in time
};

std::string_view commandName(Command c);
std::string_view statusName(Status s);
// The commands this build implements, in capability order, for the handshake.
std::optional<Command> commandFromName(std::string_view name);

// Every frame starts with this header. In a request `code` is a Command, in a reply a Status.
struct FrameHeader {
  uint32_t magic = kMagic;
  uint16_t version = kProtocolVersion;
  uint16_t code = 0;
  uint32_t length = 0;  // payload bytes that follow
  uint32_t flags = 0;   // reserved, zero
};

void encodeHeader(const FrameHeader& h, uint8_t out[kHeaderSize]);
FrameHeader decodeHeader(const uint8_t in[kHeaderSize]);

}  // namespace cppops::protocol
