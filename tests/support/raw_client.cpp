#include "raw_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/messages.h"

namespace cppops::test {

RawClient::RawClient(const std::string& socket_path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(const void* data, size_t size) {
  return ::send(fd_, data, size, MSG_NOSIGNAL) == static_cast<ssize_t>(size);
}

bool RawClient::sendFrame(uint16_t code, const std::vector<uint8_t>& payload, uint16_t version) {
  protocol::FrameHeader h;
  h.version = version;
  h.code = code;
  h.length = static_cast<uint32_t>(payload.size());
  std::vector<uint8_t> bytes(protocol::kHeaderSize);
  protocol::encodeHeader(h, bytes.data());
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return send(bytes.data(), bytes.size());
}

bool RawClient::receiveExactly(uint8_t* out, size_t size, std::chrono::steady_clock::time_point deadline) {
  while (size > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    ssize_t n = ::recv(fd_, out, size, 0);
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::optional<RawClient::Reply> RawClient::receive(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  uint8_t header[protocol::kHeaderSize];
  if (!receiveExactly(header, sizeof header, deadline)) return std::nullopt;
  auto h = protocol::decodeHeader(header);
  if (h.magic != protocol::kMagic || h.length > (64u << 20)) return std::nullopt;
  Reply r{static_cast<protocol::Status>(h.code), std::vector<uint8_t>(h.length), {}};
  if (!receiveExactly(r.payload.data(), r.payload.size(), deadline)) return std::nullopt;
  if (r.status != protocol::Status::kOk) {
    protocol::ErrorReply e;
    wire::Reader reader(r.payload);
    if (e.decode(reader)) r.message = e.message;
  }
  return r;
}

bool RawClient::closedByPeer(std::chrono::milliseconds limit) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  // Closing with our unread bytes still queued makes the kernel report ECONNRESET instead of EOF.
  char c;
  ssize_t n = ::recv(fd_, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

}  // namespace cppops::test
