#include "proc/fd_description.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
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
      return describeSocket(inode);
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

std::string FdDescriber::describeSocket(uint64_t inode) {
  auto it = sockets_.find(inode);
  for (int table = 0; it == sockets_.end() && table < kTableCount; ++table) {
    if (loaded_[table]) continue;
    load(static_cast<Table>(table));
    it = sockets_.find(inode);
  }
  if (it == sockets_.end()) return "socket (inode " + std::to_string(inode) + ")";
  return render(it->second);
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
