// One line per file descriptor of another process, as an engineer wants to read it: a path, "pipe (inode N)",
// "tcp 127.0.0.1:8080 -> 127.0.0.1:53412 (ESTABLISHED)", "unix /tmp/x.sock", "epoll"...
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace cppops::proc {

// Where a socket's addresses come from.
enum class SocketLookup {
  // Ask the socket itself through a duplicate of the process's fd (pidfd_getfd(2), Linux 5.6): constant time,
  // where a socket table costs a walk of the kernel's whole TCP hash (1.6 ms on an idle 24 GiB machine, far
  // more on a server with many connections). It needs the right to ptrace-attach to the process; without it,
  // or on an older kernel, the tables are read instead.
  kDuplicateFirst,
  kTablesOnly,  // never duplicate an fd (what the fallback does, for tests to compare)
};

// Describes many fds of one process. Socket tables (/proc/PID/net/{tcp,tcp6,udp,udp6,unix}) are read lazily, the
// first time a socket needs them, and then kept: use one describer for one pass over a process, since sockets
// opened after their table was read come out as "socket (inode N)".
class FdDescriber {
 public:
  explicit FdDescriber(pid_t pid, SocketLookup lookup = SocketLookup::kDuplicateFirst) : pid_(pid), lookup_(lookup) {}
  ~FdDescriber();
  FdDescriber(const FdDescriber&) = delete;
  FdDescriber& operator=(const FdDescriber&) = delete;

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

  std::string describeSocket(int fd, uint64_t inode);
  bool querySocket(int fd, uint64_t inode, Socket* socket);
  void load(Table table);
  static std::string render(const Socket& socket);

  pid_t pid_;
  SocketLookup lookup_;
  int pidfd_ = -1;  // -1: not opened yet; -2: duplication refused, tables from now on
  bool loaded_[kTableCount] = {};
  std::unordered_map<uint64_t, Socket> sockets_;  // by inode
};

std::string describeFd(pid_t pid, int fd);

}  // namespace cppops::proc
