// A deliberately dumb client that writes arbitrary bytes to an agent socket, for robustness tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/protocol.h"

namespace cppops::test {

class RawClient {
 public:
  explicit RawClient(const std::string& socket_path);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool send(const void* data, size_t size);
  bool sendFrame(uint16_t code, const std::vector<uint8_t>& payload, uint16_t version = protocol::kProtocolVersion);

  struct Reply {
    protocol::Status status;
    std::vector<uint8_t> payload;
    std::string message;  // decoded ErrorReply for error statuses
  };
  // nullopt on timeout or when the agent closed without a full reply.
  std::optional<Reply> receive(std::chrono::milliseconds limit = std::chrono::milliseconds(3000));
  // True when the agent has closed the connection (read returns EOF within the limit).
  bool closedByPeer(std::chrono::milliseconds limit = std::chrono::milliseconds(3000));

 private:
  bool receiveExactly(uint8_t* out, size_t size, std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
};

}  // namespace cppops::test
