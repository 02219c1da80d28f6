// Talking to one agent: connect, handshake, request/reply with a deadline on every step.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "discovery/discovery.h"
#include "protocol/messages.h"
#include "protocol/protocol.h"

namespace cppops::client {

using Milliseconds = std::chrono::milliseconds;

class Connection {
 public:
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Connects to the agent of `pid` and checks, through the handshake, that it is that very process (same PID as
  // it sees itself and same start time), so a recycled PID can never answer for the one the user meant.
  static Result<Connection> open(pid_t pid, Milliseconds timeout);
  static Result<Connection> open(const discovery::Endpoint& endpoint, Milliseconds timeout);

  // Sends a request and returns the reply payload on success. Error replies become Errors carrying the agent's
  // message verbatim.
  Result<std::vector<uint8_t>> call(protocol::Command command, const std::vector<uint8_t>& args = {});

  bool supports(protocol::Command command) const;
  // The deadline of each later call(): a profile's reply comes only after its duration.
  void setTimeout(Milliseconds timeout) { timeout_ = timeout; }
  const protocol::HelloReply& hello() const { return hello_; }
  const discovery::Endpoint& endpoint() const { return endpoint_; }

 private:
  Connection(int fd, discovery::Endpoint endpoint, Milliseconds timeout);
  Status sendAll(const uint8_t* data, size_t size, std::chrono::steady_clock::time_point deadline);
  Status receiveAll(uint8_t* data, size_t size, std::chrono::steady_clock::time_point deadline);
  Error timeoutError() const;

  int fd_ = -1;
  discovery::Endpoint endpoint_;
  Milliseconds timeout_;
  protocol::HelloReply hello_;
};

// Decodes a reply payload into a message type, turning a malformed payload into an agent error.
template <typename Message>
Result<Message> decode(const std::vector<uint8_t>& payload) {
  Message m;
  wire::Reader r(payload);
  if (!m.decode(r))
    return makeError(ErrorKind::kAgent,
                     "the agent's reply could not be decoded; the agent and the CLI versions may not match "
                     "(see `cppops version PID`)");
  return m;
}

// open() then call() then decode(): the shape of most commands.
template <typename Message>
Result<Message> request(pid_t pid, protocol::Command command, Milliseconds timeout) {
  auto conn = Connection::open(pid, timeout);
  if (!conn) return conn.error();
  auto payload = conn->call(command);
  if (!payload) return payload.error();
  return decode<Message>(*payload);
}

}  // namespace cppops::client
