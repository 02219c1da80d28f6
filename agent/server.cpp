#include "server.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <vector>

#include "agent_state.h"
#include "commands.h"
#include "log.h"
#include "protocol/protocol.h"
#include "protocol/rendezvous.h"

namespace cppops::agent {

namespace {

int64_t nowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

struct Connection {
  int fd = -1;
  RequestContext peer;
  std::vector<uint8_t> in;   // bytes of the request being received
  std::vector<uint8_t> out;  // reply bytes not yet sent
  size_t out_sent = 0;
  int64_t deadline_ms = 0;   // for the current request or reply
  bool close_when_sent = false;
};

std::vector<uint8_t> frame(const Reply& reply) {
  protocol::FrameHeader h;
  h.code = static_cast<uint16_t>(reply.status);
  h.length = static_cast<uint32_t>(reply.payload.size());
  std::vector<uint8_t> out(protocol::kHeaderSize + reply.payload.size());
  protocol::encodeHeader(h, out.data());
  std::memcpy(out.data() + protocol::kHeaderSize, reply.payload.data(), reply.payload.size());
  return out;
}

// Queues `reply` and marks the connection to be closed once it is sent: used for protocol violations, after
// which the byte stream cannot be trusted.
void replyAndClose(Connection& c, Reply reply) {
  c.out = frame(reply);
  c.out_sent = 0;
  c.close_when_sent = true;
  c.in.clear();
}

// A client that hung up since the last poll still holds its slot until the loop sees the hang-up. When the
// table is full, look for such slots before turning a newcomer away: a client that closes and reconnects at
// once must not be refused on account of its own previous connection. POLLHUP on a Unix stream socket means
// the peer closed both directions (unread bytes or not); a peer that only shut down writing still waits for
// its reply and keeps its slot.
void reapClosed(std::vector<Connection>& conns) {
  for (size_t i = conns.size(); i-- > 0;) {
    pollfd p{conns[i].fd, 0, 0};
    if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0) {
      ::close(conns[i].fd);
      conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
}

bool peerAllowed(uid_t peer) { return peer == geteuid() || peer == 0; }

// Makes (if missing) and vets the socket directory: it must be a real directory, owned by us, closed to
// everyone else, or another local user could replace our socket with theirs.
int prepareDirectory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    int err = errno;
    logLine("cannot create socket directory %s: %s; set CPPOPS_SOCKET_DIR to a writable directory", dir.c_str(),
            std::strerror(err));
    return err;
  }
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    logLine("socket directory %s is not private (must be a directory owned by uid %d with mode 0700, found "
            "uid %d mode %04o); agent not started",
            dir.c_str(), static_cast<int>(geteuid()), static_cast<int>(st.st_uid),
            static_cast<unsigned>(st.st_mode & 07777));
    return EPERM;
  }
  return 0;
}

}  // namespace

int Server::open(const Options& options) {
  options_ = options;
  std::string dir =
      options.socket_dir.empty() ? protocol::socketDir(geteuid(), nullptr, std::getenv("XDG_RUNTIME_DIR")) : options.socket_dir;
  if (int err = prepareDirectory(dir); err != 0) return err;

  auto start = protocol::processStartTicks(getpid());
  if (!start) {
    logLine("cannot read /proc/self/stat; agent not started (is /proc mounted?)");
    return ENOENT;
  }
  socket_path_ = dir + "/" + protocol::socketFileName(getpid(), *start);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() > protocol::kMaxSocketPath) {
    logLine("socket path %s is longer than %zu bytes; set CPPOPS_SOCKET_DIR to a shorter directory",
            socket_path_.c_str(), protocol::kMaxSocketPath);
    return ENAMETOOLONG;
  }
  const std::string staging_path = dir + "/" + protocol::stagingFileName(getpid(), *start);
  std::memcpy(addr.sun_path, staging_path.c_str(), staging_path.size() + 1);

  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (listen_fd_ < 0 || wake_fd_ < 0) {
    int err = errno;
    logLine("cannot create the control socket: %s", std::strerror(err));
    close();
    return err;
  }
  // Bound under a staging name and renamed once listening: between bind and listen a socket refuses connections,
  // and a CLI that found it then would report it dead and remove it. Same PID and start time means this very
  // process: a leftover of either name is from an earlier start of ours.
  ::unlink(staging_path.c_str());
  ::unlink(socket_path_.c_str());
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::chmod(staging_path.c_str(), 0600) != 0 || ::listen(listen_fd_, 64) != 0 ||
      ::rename(staging_path.c_str(), socket_path_.c_str()) != 0) {
    int err = errno;
    logLine("cannot listen on %s: %s", socket_path_.c_str(), std::strerror(err));
    ::unlink(staging_path.c_str());
    close();
    return err;
  }
  return 0;
}

void Server::run() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  const auto max_clients = static_cast<size_t>(options_.max_clients);
  const int64_t timeout_ms = options_.request_timeout_ms;

  auto closeConnection = [&](size_t i) {
    ::close(conns[i].fd);
    conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
  };

  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    int64_t next_deadline = -1;
    for (const auto& c : conns) {
      short events = c.out.size() > c.out_sent ? POLLOUT : POLLIN;
      fds.push_back({c.fd, events, 0});
      if (next_deadline < 0 || c.deadline_ms < next_deadline) next_deadline = c.deadline_ms;
    }
    int wait_ms = -1;  // idle: sleep until something happens
    if (next_deadline >= 0) wait_ms = static_cast<int>(std::max<int64_t>(0, next_deadline - nowMs()) + 1);

    int ready = ::poll(fds.data(), fds.size(), wait_ms);
    if (ready < 0 && errno != EINTR) {
      logLine("control loop failed: %s; agent stopped", std::strerror(errno));
      break;
    }
    if (fds[0].revents != 0) break;  // stop() was called

    int64_t now = nowMs();
    // Walk backwards so erasing a connection leaves the indices still to visit intact; fds[i + 2] is conns[i].
    for (size_t i = conns.size(); i-- > 0;) {
      Connection& c = conns[i];
      short revents = fds[i + 2].revents;
      if (c.out.size() > c.out_sent) {
        if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
          closeConnection(i);
          continue;
        }
        if (revents & POLLOUT) {
          ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n < 0 && errno != EAGAIN && errno != EINTR) {
            closeConnection(i);
            continue;
          }
          if (n > 0) c.out_sent += static_cast<size_t>(n);
          if (c.out_sent == c.out.size()) {
            c.out.clear();
            c.out_sent = 0;
            if (c.close_when_sent) {
              closeConnection(i);
              continue;
            }
            c.deadline_ms = now + timeout_ms;
          }
        }
      } else if (revents & (POLLIN | POLLERR | POLLHUP)) {
        // Read no further than the end of the current frame, so a pipelined next request stays in the kernel
        // buffer until this one is answered.
        size_t want = protocol::kHeaderSize;
        if (c.in.size() >= protocol::kHeaderSize)
          want += protocol::decodeHeader(c.in.data()).length;
        size_t have = c.in.size();
        c.in.resize(want);
        ssize_t n = ::recv(c.fd, c.in.data() + have, want - have, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          closeConnection(i);
          continue;
        }
        c.in.resize(have + static_cast<size_t>(std::max<ssize_t>(n, 0)));
        if (c.in.size() >= protocol::kHeaderSize) {
          protocol::FrameHeader h = protocol::decodeHeader(c.in.data());
          if (h.magic != protocol::kMagic) {
            logRateLimited(RateBucket::kBadRequest, "dropped a malformed request from pid %d (bad magic)",
                           static_cast<int>(c.peer.peer_pid));
            replyAndClose(c, errorReply(protocol::Status::kBadRequest,
                                        "not a cppops frame (bad magic); use the cppops CLI of the same version"));
          } else if (h.version != protocol::kProtocolVersion) {
            replyAndClose(c, errorReply(protocol::Status::kVersionMismatch,
                                        "this agent speaks protocol version " + std::to_string(protocol::kProtocolVersion) +
                                            ", the client sent " + std::to_string(h.version) +
                                            "; use a cppops CLI that matches the agent"));
          } else if (h.length > protocol::kMaxRequestPayload) {
            replyAndClose(c, errorReply(protocol::Status::kTooLarge,
                                        "request of " + std::to_string(h.length) + " bytes exceeds the limit of " +
                                            std::to_string(protocol::kMaxRequestPayload)));
          } else if (c.in.size() == protocol::kHeaderSize + h.length) {
            wire::Reader args(c.in.data() + protocol::kHeaderSize, h.length);
            countRequestServed();
            Reply reply = dispatch(static_cast<protocol::Command>(h.code), args, c.peer);
            if (reply.take_connection) {
              const int fd = c.fd;
              conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
              reply.take_connection(fd);
              continue;
            }
            c.out = frame(reply);
            c.out_sent = 0;
            c.in.clear();
            c.deadline_ms = now + timeout_ms;
          }
        }
      }
      if (now >= conns[i].deadline_ms) {
        // A half-sent request gets told why it is dropped; an idle or non-reading peer is just closed.
        if (!c.in.empty() && c.out.empty())
          replyAndClose(c, errorReply(protocol::Status::kTimeout,
                                      "the request did not arrive within " + std::to_string(timeout_ms) + " ms"));
        else
          closeConnection(i);
      }
    }

    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        ucred cred{};
        socklen_t len = sizeof cred;
        Connection c;
        c.fd = fd;
        c.deadline_ms = nowMs() + timeout_ms;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
          ::close(fd);
          continue;
        }
        c.peer.peer_pid = cred.pid;
        c.peer.peer_uid = cred.uid;
        if (!peerAllowed(cred.uid)) {
          countRequestRefused();
          logRateLimited(RateBucket::kRefusal, "refused a connection from uid %d (pid %d): only uid %d or root may connect",
                         static_cast<int>(cred.uid), static_cast<int>(cred.pid), static_cast<int>(geteuid()));
          replyAndClose(c, errorReply(protocol::Status::kPermissionDenied,
                                      "permission denied: this process belongs to uid " + std::to_string(geteuid()) +
                                          "; run cppops as that user or as root"));
        } else if (conns.size() >= max_clients && (reapClosed(conns), conns.size() >= max_clients)) {
          countRequestRefused();
          replyAndClose(c, errorReply(protocol::Status::kBusy,
                                      "the agent is serving " + std::to_string(max_clients) +
                                          " clients already; retry, or raise CPPOPS_MAX_CLIENTS in the target"));
        }
        conns.push_back(std::move(c));
      }
    }
  }
  for (auto& c : conns) ::close(c.fd);
}

void Server::stop() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
    (void)ignored;
  }
}

void Server::abandonAfterFork() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

void Server::close() {
  if (!socket_path_.empty() && listen_fd_ >= 0) ::unlink(socket_path_.c_str());
  abandonAfterFork();
}

}  // namespace cppops::agent
