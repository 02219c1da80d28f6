// One line per file descriptor of another process, as an engineer wants to read it: a path, "pipe (inode N)",
// "tcp 127.0.0.1:8080 -> 127.0.0.1:53412 (ESTABLISHED)", "unix /tmp/x.sock", "epoll"...
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace cppops::proc {

// Describes many fds of one process. Socket tables (/proc/PID/net/{tcp,tcp6,udp,udp6,unix}) are read lazily, the
// first time a socket needs them, and then kept: use one describer for one pass over a process, since sockets
// opened after their table was read come out as "socket (inode N)".
class FdDescriber {
 public:
  explicit FdDescriber(pid_t pid) : pid_(pid) {}

  // "fd N" when the kernel will not tell us what the fd is (gone, or not ours to look at).
  std::string describe(int fd);

 private:
  enum Table { kTcp, kTcp6, kUdp, kUdp6, kUnix, kTableCount };

  struct Socket {
    Table table = kTcp;
    std::array<uint8_t, 16> local_address{};  // network byte order; the first 4 bytes for IPv4
    std::array<uint8_t, 16> remote_address{};
    uint16_t local_port = 0;
    uint16_t remote_port = 0;
    int state = 0;  // TCP_ESTABLISHED...
    std::string path;  // unix only; "@name" for abstract sockets
  };

  std::string describeSocket(uint64_t inode);
  void load(Table table);
  static std::string render(const Socket& socket);

  pid_t pid_;
  bool loaded_[kTableCount] = {};
  std::unordered_map<uint64_t, Socket> sockets_;  // by inode
};

std::string describeFd(pid_t pid, int fd);

}  // namespace cppops::proc
