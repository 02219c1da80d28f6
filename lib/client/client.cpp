#include "client/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/version.h"

namespace cppops::client {

namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT32_MAX));
}

std::string describePid(const discovery::Endpoint& e) { return "process " + std::to_string(e.pid); }

Error fromStatus(protocol::Status status, const std::string& message) {
  switch (status) {
    case protocol::Status::kPermissionDenied: return makeError(ErrorKind::kPermission, message);
    case protocol::Status::kTimeout: return makeError(ErrorKind::kTimeout, message);
    default: return makeError(ErrorKind::kAgent, message);
  }
}

}  // namespace

Connection::Connection(int fd, discovery::Endpoint endpoint, Milliseconds timeout)
    : fd_(fd), endpoint_(std::move(endpoint)), timeout_(timeout) {}

Connection::Connection(Connection&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), endpoint_(std::move(o.endpoint_)), timeout_(o.timeout_), hello_(std::move(o.hello_)) {}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    endpoint_ = std::move(o.endpoint_);
    timeout_ = o.timeout_;
    hello_ = std::move(o.hello_);
  }
  return *this;
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

Result<Connection> Connection::open(pid_t pid, Milliseconds timeout) {
  auto endpoint = discovery::findAgent(pid);
  if (!endpoint) return endpoint.error();
  return open(*endpoint, timeout);
}

Result<Connection> Connection::open(const discovery::Endpoint& endpoint, Milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (endpoint.socket_path.size() >= sizeof addr.sun_path)
    return makeError(ErrorKind::kInternal, "socket path " + endpoint.socket_path +
                                               " is too long to connect to; set CPPOPS_SOCKET_DIR to a shorter "
                                               "directory in the target");
  std::memcpy(addr.sun_path, endpoint.socket_path.c_str(), endpoint.socket_path.size() + 1);

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return makeError(ErrorKind::kInternal, std::string("cannot create a socket: ") + std::strerror(errno));
  Connection conn(fd, endpoint, timeout);
  const auto deadline = Clock::now() + timeout;

  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == EINPROGRESS || err == EAGAIN) {
      // Unix stream sockets report EAGAIN when the listener's backlog is full: the agent is alive but busy.
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, remainingMs(deadline)) != 1) return conn.timeoutError();
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == EACCES || err == EPERM)
      return makeError(ErrorKind::kPermission, "permission denied connecting to " + describePid(endpoint) +
                                                   "'s agent at " + endpoint.socket_path +
                                                   "; run cppops as the process owner or as root");
    if (err == ECONNREFUSED || err == ENOENT) {
      // Nobody listens: the agent was stopped without removing its socket. It can never answer again.
      ::unlink(endpoint.socket_path.c_str());
      return makeError(ErrorKind::kNoProcess, describePid(endpoint) +
                                                  " has no running cppops agent (its socket was stale and has been "
                                                  "removed); restart the process with the agent to inspect it");
    }
    if (err != 0)
      return makeError(ErrorKind::kInternal, "cannot connect to " + endpoint.socket_path + ": " + std::strerror(err));
  }

  auto payload = conn.call(protocol::Command::kHello);
  if (!payload) return payload.error();
  auto hello = decode<protocol::HelloReply>(*payload);
  if (!hello) return hello.error();
  if (hello->pid != static_cast<uint32_t>(endpoint.ns_pid) || hello->start_ticks != endpoint.start_ticks)
    return makeError(ErrorKind::kNoProcess, "the agent at " + endpoint.socket_path + " answers for pid " +
                                                std::to_string(hello->pid) + ", not for " + describePid(endpoint) +
                                                "; the process was restarted, run `cppops ps` again");
  conn.hello_ = std::move(*hello);
  return conn;
}

bool Connection::supports(protocol::Command command) const {
  auto name = protocol::commandName(command);
  return std::find(hello_.capabilities.begin(), hello_.capabilities.end(), name) != hello_.capabilities.end();
}

Error Connection::timeoutError() const {
  return makeError(ErrorKind::kTimeout,
                   describePid(endpoint_) + "'s agent did not answer within " + std::to_string(timeout_.count()) +
                       " ms; the process may be overloaded or wedged: retry with a longer --timeout");
}

Status Connection::sendAll(const uint8_t* data, size_t size, Clock::time_point deadline) {
  while (size > 0) {
    ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, remainingMs(deadline)) != 1) return timeoutError();
      continue;
    }
    return makeError(ErrorKind::kAgent, describePid(endpoint_) + "'s agent closed the connection: " + std::strerror(errno));
  }
  return {};
}

Status Connection::receiveAll(uint8_t* data, size_t size, Clock::time_point deadline) {
  while (size > 0) {
    ssize_t n = ::recv(fd_, data, size, 0);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0)
      return makeError(ErrorKind::kAgent, describePid(endpoint_) +
                                              "'s agent closed the connection mid-reply; the process may have exited");
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, remainingMs(deadline)) != 1) return timeoutError();
      continue;
    }
    return makeError(ErrorKind::kAgent, describePid(endpoint_) + "'s agent connection failed: " + std::strerror(errno));
  }
  return {};
}

Result<std::vector<uint8_t>> Connection::call(protocol::Command command, const std::vector<uint8_t>& args) {
  const auto deadline = Clock::now() + timeout_;
  protocol::FrameHeader h;
  h.code = static_cast<uint16_t>(command);
  h.length = static_cast<uint32_t>(args.size());
  std::vector<uint8_t> out(protocol::kHeaderSize + args.size());
  protocol::encodeHeader(h, out.data());
  std::copy(args.begin(), args.end(), out.begin() + protocol::kHeaderSize);
  if (auto s = sendAll(out.data(), out.size(), deadline); !s) return s.error();

  uint8_t header_bytes[protocol::kHeaderSize];
  if (auto s = receiveAll(header_bytes, sizeof header_bytes, deadline); !s) return s.error();
  protocol::FrameHeader reply = protocol::decodeHeader(header_bytes);
  if (reply.magic != protocol::kMagic)
    return makeError(ErrorKind::kAgent, describePid(endpoint_) + "'s socket does not speak the cppops protocol");
  if (reply.length > protocol::kMaxReplyPayload)
    return makeError(ErrorKind::kAgent, describePid(endpoint_) + "'s agent sent a reply of " +
                                            std::to_string(reply.length) + " bytes, over the limit");
  std::vector<uint8_t> payload(reply.length);
  if (auto s = receiveAll(payload.data(), payload.size(), deadline); !s) return s.error();

  auto status = static_cast<protocol::Status>(reply.code);
  if (status == protocol::Status::kOk) return payload;
  protocol::ErrorReply err;
  wire::Reader r(payload);
  std::string message = err.decode(r) ? err.message : std::string(protocol::statusName(status));
  if (reply.version != protocol::kProtocolVersion)
    message += " (agent protocol " + std::to_string(reply.version) + ", cppops " + kCliVersion + " speaks " +
               std::to_string(protocol::kProtocolVersion) + ")";
  return fromStatus(status, message);
}

}  // namespace cppops::client
