#include "proc/fd_description.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace cppops::proc {
namespace {

constexpr const char* kTableFiles[] = {"tcp", "tcp6", "udp", "udp6", "unix"};

// Indexed by the kernel's TCP state number (include/net/tcp_states.h).
constexpr const char* kTcpStates[] = {
    "", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT",
    "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"};

std::string_view nextToken(std::string_view& rest) {
  size_t begin = rest.find_first_not_of(' ');
  if (begin == std::string_view::npos) {
    rest = {};
    return {};
  }
  size_t end = std::min(rest.find(' ', begin), rest.size());
  std::string_view token = rest.substr(begin, end - begin);
  rest.remove_prefix(end);
  return token;
}

template <typename T>
bool parseNumber(std::string_view text, T& out, int base = 10) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

// The kernel prints each 32-bit word of the address as a native-endian number, so writing the numbers back to
// memory restores the network-order bytes.
bool parseAddress(std::string_view hex, std::array<uint8_t, 16>& out) {
  if (hex.size() != 8 && hex.size() != 32) return false;
  for (size_t word = 0; word * 8 < hex.size(); ++word) {
    uint32_t value = 0;
    if (!parseNumber(hex.substr(word * 8, 8), value, 16)) return false;
    std::memcpy(out.data() + word * 4, &value, sizeof(value));
  }
  return true;
}

// "0100007F:1F90"; the port is printed in host order.
bool parseEndpoint(std::string_view text, std::array<uint8_t, 16>& address, uint16_t& port) {
  size_t colon = text.find(':');
  return colon != std::string_view::npos && parseAddress(text.substr(0, colon), address) &&
         parseNumber(text.substr(colon + 1), port, 16);
}

std::string renderEndpoint(bool v6, const std::array<uint8_t, 16>& address, uint16_t port) {
  char text[INET6_ADDRSTRLEN];
  if (::inet_ntop(v6 ? AF_INET6 : AF_INET, address.data(), text, sizeof(text)) == nullptr) return "?";
  return v6 ? "[" + std::string(text) + "]:" + std::to_string(port) : std::string(text) + ":" + std::to_string(port);
}

// Streams a /proc table line by line; these grow to megabytes on busy servers, so they are not slurped whole.
template <typename OnLine>
void forEachLine(const char* path, OnLine&& on_line) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::string buffer(64 * 1024, '\0');
  size_t filled = 0;
  for (;;) {
    ssize_t n = ::read(fd, buffer.data() + filled, buffer.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    filled += static_cast<size_t>(n);
    std::string_view pending(buffer.data(), filled);
    for (size_t eol = pending.find('\n'); eol != std::string_view::npos; eol = pending.find('\n')) {
      on_line(pending.substr(0, eol));
      pending.remove_prefix(eol + 1);
    }
    // A line longer than the whole buffer is not one of the tables we know; stop rather than loop.
    if (pending.size() == buffer.size()) break;
    std::memmove(buffer.data(), pending.data(), pending.size());
    filled = pending.size();
  }
  ::close(fd);
}

}  // namespace

std::string FdDescriber::describe(int fd) {
  char link[48];
  std::snprintf(link, sizeof(link), "/proc/%d/fd/%d", static_cast<int>(pid_), fd);
  char target[PATH_MAX];
  ssize_t n = ::readlink(link, target, sizeof(target));
  if (n < 0) return "fd " + std::to_string(fd);
  std::string_view text(target, static_cast<size_t>(n));

  constexpr std::string_view kSocket = "socket:[";
  constexpr std::string_view kPipe = "pipe:[";
  constexpr std::string_view kAnon = "anon_inode:";
  if (text.substr(0, kSocket.size()) == kSocket && text.back() == ']') {
    uint64_t inode = 0;
    if (parseNumber(text.substr(kSocket.size(), text.size() - kSocket.size() - 1), inode)) {
      return describeSocket(fd, inode);
    }
  }
  if (text.substr(0, kPipe.size()) == kPipe && text.back() == ']') {
    return "pipe (inode " + std::string(text.substr(kPipe.size(), text.size() - kPipe.size() - 1)) + ")";
  }
  if (text.substr(0, kAnon.size()) == kAnon) {
    // Most are bracketed ("[eventfd]", "[timerfd]"), a few not ("inotify").
    std::string_view kind = text.substr(kAnon.size());
    if (kind.size() >= 2 && kind.front() == '[' && kind.back() == ']') kind = kind.substr(1, kind.size() - 2);
    return kind == "eventpoll" ? "epoll" : std::string(kind);
  }
  return std::string(text);
}

FdDescriber::~FdDescriber() {
  if (pidfd_ >= 0) ::close(pidfd_);
}

std::string FdDescriber::describeSocket(int fd, uint64_t inode) {
  Socket queried;
  if (querySocket(fd, inode, &queried)) return render(queried);
  auto it = sockets_.find(inode);
  for (int table = 0; it == sockets_.end() && table < kTableCount; ++table) {
    if (loaded_[table]) continue;
    load(static_cast<Table>(table));
    it = sockets_.find(inode);
  }
  if (it == sockets_.end()) return "socket (inode " + std::to_string(inode) + ")";
  return render(it->second);
}

bool FdDescriber::querySocket(int fd, uint64_t inode, Socket* socket) {
  if (lookup_ == SocketLookup::kTablesOnly || pidfd_ == -2) return false;
  if (pidfd_ == -1) {
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) {
      pidfd_ = -2;
      return false;
    }
  }
  const int copy = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd_, fd, 0));
  if (copy < 0) {
    // Refused for the process (no ptrace-attach right, or no such call): every other fd would be refused too.
    if (errno == EPERM || errno == ENOSYS) {
      ::close(pidfd_);
      pidfd_ = -2;
    }
    return false;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{copy};
  // The process may have closed the fd, and another socket taken its number, since the link was read.
  struct stat st {};
  if (::fstat(copy, &st) != 0 || static_cast<uint64_t>(st.st_ino) != inode) return false;
  int domain = 0;
  int protocol = 0;
  socklen_t size = sizeof(int);
  if (::getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &domain, &size) != 0) return false;
  size = sizeof(int);
  if (::getsockopt(copy, SOL_SOCKET, SO_PROTOCOL, &protocol, &size) != 0) return false;
  sockaddr_storage local{};
  socklen_t local_size = sizeof(local);
  if (::getsockname(copy, reinterpret_cast<sockaddr*>(&local), &local_size) != 0) return false;

  if (domain == AF_UNIX) {
    socket->table = kUnix;
    const auto& address = reinterpret_cast<const sockaddr_un&>(local);
    const size_t offset = offsetof(sockaddr_un, sun_path);
    if (local_size > offset) {
      std::string path(address.sun_path, std::min<size_t>(local_size - offset, sizeof(address.sun_path)));
      // As /proc/net/unix shows them: a pathname up to its NUL; an abstract name with '@' for every NUL in it.
      if (!path.empty() && path[0] == '\0')
        std::replace(path.begin(), path.end(), '\0', '@');
      else
        path.resize(std::strlen(path.c_str()));
      socket->path = std::move(path);
    }
    return true;
  }
  if ((domain != AF_INET && domain != AF_INET6) || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)) return false;
  const bool v6 = domain == AF_INET6;
  const bool tcp = protocol == IPPROTO_TCP;
  socket->table = tcp ? (v6 ? kTcp6 : kTcp) : (v6 ? kUdp6 : kUdp);
  auto endpoint = [v6](const sockaddr_storage& from, std::array<uint8_t, 16>& address, uint16_t& port) {
    if (v6) {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(from);
      std::memcpy(address.data(), &in6.sin6_addr, sizeof(in6.sin6_addr));
      port = ntohs(in6.sin6_port);
    } else {
      const auto& in = reinterpret_cast<const sockaddr_in&>(from);
      std::memcpy(address.data(), &in.sin_addr, sizeof(in.sin_addr));
      port = ntohs(in.sin_port);
    }
  };
  endpoint(local, socket->local_address, socket->local_port);
  sockaddr_storage remote{};
  socklen_t remote_size = sizeof(remote);
  if (::getpeername(copy, reinterpret_cast<sockaddr*>(&remote), &remote_size) == 0)
    endpoint(remote, socket->remote_address, socket->remote_port);
  else if (errno != ENOTCONN)
    return false;
  if (tcp) {
    tcp_info info{};
    socklen_t info_size = sizeof(info);
    if (::getsockopt(copy, IPPROTO_TCP, TCP_INFO, &info, &info_size) != 0) return false;
    socket->state = info.tcpi_state;
  }
  return true;
}

void FdDescriber::load(Table table) {
  loaded_[table] = true;
  char path[48];
  std::snprintf(path, sizeof(path), "/proc/%d/net/%s", static_cast<int>(pid_), kTableFiles[table]);

  // Header lines fail to parse and are skipped like any other line we cannot read. Inode 0 belongs to sockets no
  // process holds any more (TIME_WAIT and friends).
  if (table == kUnix) {
    // "Num RefCount Protocol Flags Type St Inode Path"; the path, if any, is the rest of the line after one space.
    forEachLine(path, [&](std::string_view line) {
      std::string_view rest = line;
      for (int skipped = 0; skipped < 6; ++skipped) nextToken(rest);
      uint64_t inode = 0;
      if (!parseNumber(nextToken(rest), inode) || inode == 0) return;
      Socket socket;
      socket.table = kUnix;
      if (!rest.empty()) socket.path = std::string(rest.substr(1));
      sockets_.emplace(inode, std::move(socket));
    });
    return;
  }
  // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ..."
  forEachLine(path, [&](std::string_view line) {
    std::string_view rest = line;
    nextToken(rest);
    Socket socket;
    socket.table = table;
    if (!parseEndpoint(nextToken(rest), socket.local_address, socket.local_port) ||
        !parseEndpoint(nextToken(rest), socket.remote_address, socket.remote_port) ||
        !parseNumber(nextToken(rest), socket.state, 16)) {
      return;
    }
    for (int skipped = 0; skipped < 5; ++skipped) nextToken(rest);
    uint64_t inode = 0;
    if (!parseNumber(nextToken(rest), inode) || inode == 0) return;
    sockets_.emplace(inode, std::move(socket));
  });
}

std::string FdDescriber::render(const Socket& socket) {
  if (socket.table == kUnix) return socket.path.empty() ? "unix (unnamed)" : "unix " + socket.path;

  bool tcp = socket.table == kTcp || socket.table == kTcp6;
  bool v6 = socket.table == kTcp6 || socket.table == kUdp6;
  std::string text = tcp ? "tcp " : "udp ";
  text += renderEndpoint(v6, socket.local_address, socket.local_port);
  bool connected = socket.remote_port != 0 ||
                   std::any_of(socket.remote_address.begin(), socket.remote_address.end(), [](uint8_t b) { return b; });
  if (connected) text += " -> " + renderEndpoint(v6, socket.remote_address, socket.remote_port);
  // A UDP socket's state only says whether it is connected, which the remote address already shows.
  if (tcp) {
    bool known = socket.state > 0 && socket.state < static_cast<int>(std::size(kTcpStates));
    text += " (";
    text += known ? kTcpStates[socket.state] : "state " + std::to_string(socket.state);
    text += ")";
  }
  return text;
}

std::string describeFd(pid_t pid, int fd) { return FdDescriber(pid).describe(fd); }

}  // namespace cppops::proc
