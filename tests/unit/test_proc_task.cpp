// Against the real kernel: threads of this test process are parked in known syscalls and then inspected through
// /proc, exactly as the stack command inspects a target.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <climits>
#include <cstddef>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proc/fd_description.h"
#include "proc/syscalls.h"
#include "proc/task.h"

namespace cppops::proc {
namespace {

using namespace std::chrono_literals;
using Catch::Matchers::StartsWith;

// Runs `body` on its own thread; on scope exit, however the test went, calls `release` so that body returns, and
// joins it.
class TestThread {
 public:
  TestThread(std::function<void()> body, std::function<void()> release)
      : release_(std::move(release)), thread_([this, body = std::move(body)] {
          tid_ = gettid();
          body();
        }) {}
  ~TestThread() {
    release_();
    thread_.join();
  }

  pid_t tid() const {
    while (tid_ == 0) std::this_thread::yield();
    return tid_;
  }

 private:
  std::function<void()> release_;
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

// A thread reaches its syscall some time after it starts, so poll the kernel for up to two seconds.
std::optional<SyscallInfo> waitForSyscall(pid_t tid, SyscallClass wanted) {
  auto deadline = std::chrono::steady_clock::now() + 2s;
  do {
    Result<SyscallInfo> info = readSyscall(getpid(), tid);
    if (info.ok() && info->kind == SyscallInfo::Kind::kInSyscall && classifySyscall(info->number) == wanted) {
      return *info;
    }
    std::this_thread::sleep_for(1ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return std::nullopt;
}

struct Pipe {
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void wake() const { REQUIRE(::write(fds[1], "x", 1) == 1); }
  void waitForByte() const {
    char byte;
    (void)!::read(fds[0], &byte, 1);
  }
  int fds[2] = {-1, -1};
};

struct Fd {
  explicit Fd(int value) : fd(value) { REQUIRE(fd >= 0); }
  ~Fd() { ::close(fd); }
  int fd;
};

uint16_t localPort(int fd) {
  sockaddr_storage address{};
  socklen_t size = sizeof(address);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  return ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

uint64_t signalBit(int signal) { return uint64_t{1} << (signal - 1); }

TEST_CASE("a thread blocked reading a pipe is in read() on that pipe", "[proc]") {
  Pipe pipe;
  TestThread reader([&] { pipe.waitForByte(); }, [&] { pipe.wake(); });

  std::optional<SyscallInfo> info = waitForSyscall(reader.tid(), SyscallClass::kRead);
  REQUIRE(info);
  CHECK(info->number == SYS_read);
  CHECK(syscallName(info->number) == "read");
  CHECK(info->args[0] == static_cast<uint64_t>(pipe.fds[0]));
  CHECK(syscallFdArgument(info->number, info->args) == pipe.fds[0]);
  CHECK(info->pc != 0);
  CHECK(info->sp != 0);
  CHECK_THAT(describeFd(getpid(), pipe.fds[0]), StartsWith("pipe (inode "));

  Result<TaskStat> stat = readTaskStat(getpid(), reader.tid());
  REQUIRE(stat.ok());
  CHECK(stat->tid == reader.tid());
  CHECK(stat->state == 'S');
  CHECK_FALSE(readWchan(getpid(), reader.tid()).empty());
}

TEST_CASE("a thread waiting for a std::mutex is in futex() on the mutex", "[proc]") {
  std::mutex mutex;
  mutex.lock();
  TestThread waiter(
      [&] {
        mutex.lock();
        mutex.unlock();
      },
      [&] { mutex.unlock(); });

  std::optional<SyscallInfo> info = waitForSyscall(waiter.tid(), SyscallClass::kFutex);
  REQUIRE(info);
  CHECK(syscallName(info->number) == "futex");
  std::optional<FutexCall> call = decodeFutex(*info);
  REQUIRE(call);
  CHECK(call->uaddr == reinterpret_cast<uint64_t>(mutex.native_handle()));
  CHECK(call->op == FUTEX_WAIT);
  CHECK(call->private_flag);
  CHECK_FALSE(call->pi);
  CHECK(syscallFdArgument(info->number, info->args) == -1);
}

TEST_CASE("a thread waiting for a priority-inheritance mutex shows the owner in the futex word", "[proc]") {
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  REQUIRE(pthread_mutexattr_setprotocol(&attributes, PTHREAD_PRIO_INHERIT) == 0);
  pthread_mutex_t mutex;
  REQUIRE(pthread_mutex_init(&mutex, &attributes) == 0);
  pthread_mutexattr_destroy(&attributes);
  REQUIRE(pthread_mutex_lock(&mutex) == 0);
  {
    TestThread waiter(
        [&] {
          pthread_mutex_lock(&mutex);
          pthread_mutex_unlock(&mutex);
        },
        [&] { pthread_mutex_unlock(&mutex); });

    std::optional<SyscallInfo> info = waitForSyscall(waiter.tid(), SyscallClass::kFutex);
    REQUIRE(info);
    std::optional<FutexCall> call = decodeFutex(*info);
    REQUIRE(call);
    CHECK(call->uaddr == reinterpret_cast<uint64_t>(&mutex));
    CHECK((call->op == FUTEX_LOCK_PI || call->op == FUTEX_LOCK_PI2));
    CHECK(call->pi);
    auto word = *reinterpret_cast<const volatile uint32_t*>(call->uaddr);
    CHECK(static_cast<pid_t>(word & FUTEX_TID_MASK) == gettid());
  }
  pthread_mutex_destroy(&mutex);
}

TEST_CASE("a thread waiting on a condition variable is in futex() on it", "[proc]") {
  std::mutex mutex;
  std::condition_variable condition;
  bool done = false;
  TestThread waiter(
      [&] {
        std::unique_lock<std::mutex> lock(mutex);
        condition.wait(lock, [&] { return done; });
      },
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
        condition.notify_all();
      });

  std::optional<SyscallInfo> info = waitForSyscall(waiter.tid(), SyscallClass::kFutex);
  REQUIRE(info);
  std::optional<FutexCall> call = decodeFutex(*info);
  REQUIRE(call);
  // glibc's condition variable waits on one of its internal words, somewhere inside the object.
  auto begin = reinterpret_cast<uint64_t>(&condition);
  CHECK(call->uaddr >= begin);
  CHECK(call->uaddr < begin + sizeof(condition));
  CHECK(call->op == FUTEX_WAIT_BITSET);
}

TEST_CASE("a thread in sleep_for is sleeping", "[proc]") {
  std::atomic<bool> stop{false};
  TestThread sleeper(
      [&] {
        while (!stop) std::this_thread::sleep_for(200ms);
      },
      [&] { stop = true; });

  std::optional<SyscallInfo> info = waitForSyscall(sleeper.tid(), SyscallClass::kSleep);
  REQUIRE(info);
  CHECK((info->number == SYS_nanosleep || info->number == SYS_clock_nanosleep));
}

TEST_CASE("a thread blocking every signal shows them in SigBlk, and a signal sent to it as pending", "[proc]") {
  Pipe pipe;
  std::atomic<bool> masked{false};
  TestThread blocker(
      [&] {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        masked = true;
        pipe.waitForByte();
      },
      [&] { pipe.wake(); });
  pid_t tid = blocker.tid();
  while (!masked) std::this_thread::yield();

  Result<SignalMasks> masks = readSignalMasks(getpid(), tid);
  REQUIRE(masks.ok());
  CHECK((masks->blocked & signalBit(SIGUSR1)) != 0);
  CHECK((masks->blocked & signalBit(SIGTERM)) != 0);
  CHECK((masks->pending & signalBit(SIGUSR1)) == 0);

  REQUIRE(::syscall(SYS_tgkill, getpid(), tid, SIGUSR1) == 0);
  masks = readSignalMasks(getpid(), tid);
  REQUIRE(masks.ok());
  CHECK((masks->pending & signalBit(SIGUSR1)) != 0);

  Result<SignalMasks> mine = readSignalMasks(getpid(), gettid());
  REQUIRE(mine.ok());
  CHECK((mine->blocked & signalBit(SIGUSR1)) == 0);
}

TEST_CASE("readRunCount stands still while a thread sleeps and moves once it has run", "[proc]") {
  // The thread reads two bytes, one at a time: between them it runs, and sleeps again in the same read.
  Pipe pipe;
  TestThread reader(
      [&] {
        pipe.waitForByte();
        pipe.waitForByte();
      },
      [&] { pipe.wake(); });
  REQUIRE(waitForSyscall(reader.tid(), SyscallClass::kRead));
  Result<RunCount> asleep = readRunCount(getpid(), reader.tid());
  REQUIRE(asleep.ok());
  CHECK(asleep->count > 0);
  CHECK(asleep->arrivals);  // Linux counts them with CONFIG_SCHED_INFO, which every distribution's kernel has
  std::this_thread::sleep_for(20ms);
  CHECK(readRunCount(getpid(), reader.tid()).value() == *asleep);

  pipe.wake();
  // Back in its read: the same syscall line, only the count tells that it ran.
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  Result<RunCount> after = readRunCount(getpid(), reader.tid());
  while (after.ok() && *after == *asleep && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
    after = readRunCount(getpid(), reader.tid());
  }
  REQUIRE(after.ok());
  CHECK(after->count > asleep->count);
  REQUIRE(waitForSyscall(reader.tid(), SyscallClass::kRead));
  CHECK_FALSE(readRunCount(999'999'999, 1).ok());
}

size_t openFiles() {
  size_t count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir) != nullptr) ++count;
    closedir(dir);
  }
  return count;
}

TEST_CASE("RunCounter reads what readRunCount reads, from files it keeps open, until the thread is gone", "[proc]") {
  RunCounter counter(getpid());
  Pipe pipe;
  std::optional<TestThread> reader(
      std::in_place,
      [&] {
        pipe.waitForByte();
        pipe.waitForByte();
      },
      [&] { pipe.wake(); });
  const pid_t tid = reader->tid();
  REQUIRE(waitForSyscall(tid, SyscallClass::kRead));
  const size_t files = openFiles();
  Result<RunCount> asleep = counter.read(tid);
  REQUIRE(asleep.ok());
  CHECK(*asleep == readRunCount(getpid(), tid).value());
  CHECK(openFiles() == files + 1);
  CHECK(counter.read(tid).value() == *asleep);  // read again from the file kept open: afresh, the same
  CHECK(openFiles() == files + 1);

  pipe.wake();
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  Result<RunCount> after = counter.read(tid);
  while (after.ok() && *after == *asleep && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
    after = counter.read(tid);
  }
  REQUIRE(after.ok());
  CHECK(after->count > asleep->count);

  reader.reset();  // its second byte, and it ends
  Result<RunCount> gone = counter.read(tid);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().kind == ErrorKind::kNoProcess);
  CHECK(openFiles() == files);  // its file closed
}

TEST_CASE("listTasks lists every thread of the process in order", "[proc]") {
  Pipe pipe;
  TestThread other([&] { pipe.waitForByte(); }, [&] { pipe.wake(); });

  std::vector<pid_t> tids = listTasks(getpid());
  CHECK(std::is_sorted(tids.begin(), tids.end()));
  CHECK(std::find(tids.begin(), tids.end(), getpid()) != tids.end());
  CHECK(std::find(tids.begin(), tids.end(), other.tid()) != tids.end());
  CHECK(listTasks(INT_MAX).empty());
}

TEST_CASE("reading a thread that does not exist says so", "[proc]") {
  Result<SyscallInfo> info = readSyscall(getpid(), INT_MAX);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().kind == ErrorKind::kNoProcess);
  Result<TaskStat> stat = readTaskStat(INT_MAX, INT_MAX);
  REQUIRE_FALSE(stat.ok());
  CHECK(stat.error().kind == ErrorKind::kNoProcess);
  CHECK(readWchan(INT_MAX, INT_MAX).empty());
}

TEST_CASE("the reading thread itself is running", "[proc]") {
  CHECK(readWchan(getpid(), gettid()).empty());
  Result<TaskStat> stat = readTaskStat(getpid(), gettid());
  REQUIRE(stat.ok());
  CHECK(stat->state == 'R');
  CHECK(stat->processor >= 0);
}

TEST_CASE("readTaskStat keeps a thread name full of parentheses and spaces", "[proc]") {
  Pipe pipe;
  std::atomic<bool> named{false};
  TestThread nasty(
      [&] {
        pthread_setname_np(pthread_self(), "a) b (c) S 1");
        named = true;
        pipe.waitForByte();
      },
      [&] { pipe.wake(); });
  pid_t tid = nasty.tid();
  while (!named) std::this_thread::yield();

  Result<TaskStat> stat = readTaskStat(getpid(), tid);
  REQUIRE(stat.ok());
  CHECK(stat->name == "a) b (c) S 1");
  CHECK(stat->tid == tid);
}

TEST_CASE("parseStat", "[proc]") {
  constexpr std::string_view kLine =
      "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 23 0 0 20 0 1 0 98765 3133440 389 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 7 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
  std::optional<TaskStat> stat = parseStat(kLine);
  REQUIRE(stat);
  CHECK(stat->tid == 4242);
  CHECK(stat->name == "a) b (c");
  CHECK(stat->state == 'S');
  CHECK(stat->utime_ticks == 17);
  CHECK(stat->stime_ticks == 23);
  CHECK(stat->start_ticks == 98765);
  CHECK(stat->processor == 7);

  stat = parseStat(
      "17 (Web Content) R 1 17 17 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 3");
  REQUIRE(stat);
  CHECK(stat->name == "Web Content");
  CHECK(stat->processor == 3);

  CHECK_FALSE(parseStat(""));
  CHECK_FALSE(parseStat("4242 (truncated) S 1 2 3"));
  CHECK_FALSE(parseStat("no parentheses at all"));
}

TEST_CASE("parseSyscall", "[proc]") {
  SyscallInfo running = parseSyscall("running\n");
  CHECK(running.kind == SyscallInfo::Kind::kRunning);

  SyscallInfo outside = parseSyscall("-1 0x7ffd5e3c9a58 0x55d0c0de1234\n");
  CHECK(outside.kind == SyscallInfo::Kind::kBlockedNotInSyscall);
  CHECK(outside.number == -1);
  CHECK(outside.sp == 0x7ffd5e3c9a58);
  CHECK(outside.pc == 0x55d0c0de1234);
  CHECK(classifySyscall(outside.number) == SyscallClass::kNone);

  SyscallInfo inside =
      parseSyscall("202 0x7f1c2a3b4c50 0x80 0x2 0x0 0x0 0xffffffffffffffff 0x7f1c29ffed30 0x7f1c2b0910b1\n");
  REQUIRE(inside.kind == SyscallInfo::Kind::kInSyscall);
  CHECK(inside.number == 202);
  CHECK(inside.args == std::array<uint64_t, 6>{0x7f1c2a3b4c50, 0x80, 0x2, 0, 0, 0xffffffffffffffff});
  CHECK(inside.sp == 0x7f1c29ffed30);
  CHECK(inside.pc == 0x7f1c2b0910b1);
  std::optional<FutexCall> call = decodeFutex(inside);
  REQUIRE(call);
  CHECK(call->uaddr == 0x7f1c2a3b4c50);
  CHECK(call->op == FUTEX_WAIT);
  CHECK(call->private_flag);

  CHECK(parseSyscall("").kind == SyscallInfo::Kind::kUnknown);
  CHECK(parseSyscall("202 0x1 0x2").kind == SyscallInfo::Kind::kUnknown);
  CHECK(parseSyscall("sleeping").kind == SyscallInfo::Kind::kUnknown);
}

TEST_CASE("syscall names and classes", "[proc]") {
  CHECK(syscallName(SYS_read) == "read");
  CHECK(syscallName(SYS_epoll_wait) == "epoll_wait");
  CHECK(syscallName(SYS_rseq) == "rseq");
  CHECK(syscallName(SYS_io_uring_enter) == "io_uring_enter");
  CHECK(syscallName(SYS_epoll_pwait2) == "epoll_pwait2");
  CHECK(syscallName(SYS_futex_waitv) == "futex_waitv");
  CHECK(syscallName(400).empty());
  CHECK(syscallName(-1).empty());
  CHECK(syscallName(100000).empty());

  CHECK(classifySyscall(SYS_epoll_pwait) == SyscallClass::kPoll);
  CHECK(classifySyscall(SYS_accept4) == SyscallClass::kAccept);
  CHECK(classifySyscall(SYS_connect) == SyscallClass::kConnect);
  CHECK(classifySyscall(SYS_recvmsg) == SyscallClass::kRead);
  CHECK(classifySyscall(SYS_sendmsg) == SyscallClass::kWrite);
  CHECK(classifySyscall(SYS_wait4) == SyscallClass::kWait);
  CHECK(classifySyscall(SYS_rt_sigtimedwait) == SyscallClass::kSignalWait);
  CHECK(classifySyscall(SYS_io_getevents) == SyscallClass::kOther);

  // The kernel reads an fd from the low 32 bits only; glibc sign-extends it.
  CHECK(syscallFdArgument(SYS_epoll_wait, {0xffffffff00000007, 0, 0, 0, 0, 0}) == 7);
  CHECK(syscallFdArgument(SYS_read, {0xffffffffffffffff, 0, 0, 0, 0, 0}) == -1);
  CHECK(syscallFdArgument(SYS_nanosleep, {3, 0, 0, 0, 0, 0}) == -1);
}

// Each socket test runs both ways a socket is looked up: the answers must be the same.
constexpr SocketLookup kBothLookups[] = {SocketLookup::kDuplicateFirst, SocketLookup::kTablesOnly};

const char* lookupName(SocketLookup lookup) {
  return lookup == SocketLookup::kDuplicateFirst ? "through a duplicated fd" : "through /proc/net tables";
}

sockaddr_in loopbackAddress(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

// A TCP socket listening on a free loopback port.
Fd listeningOnLoopback() {
  Fd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address = loopbackAddress(0);
  REQUIRE(::bind(socket.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(::listen(socket.fd, 1) == 0);
  return socket;
}

TEST_CASE("describeFd names TCP and UDP sockets by their addresses", "[proc]") {
  Fd listener = listeningOnLoopback();
  uint16_t port = localPort(listener.fd);
  sockaddr_in address = loopbackAddress(port);
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::connect(client.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  Fd server(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
  std::string server_end = "127.0.0.1:" + std::to_string(port);
  std::string client_end = "127.0.0.1:" + std::to_string(localPort(client.fd));

  Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  address.sin_port = 0;
  REQUIRE(::bind(udp.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);

  Fd connected_udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in udp_address{};
  socklen_t udp_size = sizeof(udp_address);
  REQUIRE(::getsockname(udp.fd, reinterpret_cast<sockaddr*>(&udp_address), &udp_size) == 0);
  REQUIRE(::connect(connected_udp.fd, reinterpret_cast<sockaddr*>(&udp_address), udp_size) == 0);
  const std::string udp_end = "127.0.0.1:" + std::to_string(localPort(udp.fd));

  for (SocketLookup lookup : kBothLookups) {
    INFO(lookupName(lookup));
    FdDescriber describer(getpid(), lookup);
    CHECK(describer.describe(listener.fd) == "tcp " + server_end + " (LISTEN)");
    CHECK(describer.describe(client.fd) == "tcp " + client_end + " -> " + server_end + " (ESTABLISHED)");
    CHECK(describer.describe(server.fd) == "tcp " + server_end + " -> " + client_end + " (ESTABLISHED)");
    CHECK(describer.describe(udp.fd) == "udp " + udp_end);
    CHECK(describer.describe(connected_udp.fd) ==
          "udp 127.0.0.1:" + std::to_string(localPort(connected_udp.fd)) + " -> " + udp_end);
  }
}

TEST_CASE("describeFd asks a socket itself, so one opened after the tables were read is still named", "[proc]") {
  Fd early = listeningOnLoopback();
  FdDescriber tables(getpid(), SocketLookup::kTablesOnly);
  FdDescriber duplicate(getpid());
  CHECK(tables.describe(early.fd) == duplicate.describe(early.fd));
  Fd late = listeningOnLoopback();
  CHECK_THAT(tables.describe(late.fd), StartsWith("socket (inode "));
  CHECK(duplicate.describe(late.fd) == "tcp 127.0.0.1:" + std::to_string(localPort(late.fd)) + " (LISTEN)");
}

TEST_CASE("describeFd writes IPv6 addresses in brackets", "[proc]") {
  Fd listener(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    WARN("no IPv6 loopback here: " << std::strerror(errno));
    return;
  }
  REQUIRE(::listen(listener.fd, 1) == 0);
  for (SocketLookup lookup : kBothLookups) {
    INFO(lookupName(lookup));
    CHECK(FdDescriber(getpid(), lookup).describe(listener.fd) ==
          "tcp [::1]:" + std::to_string(localPort(listener.fd)) + " (LISTEN)");
  }
}

TEST_CASE("describeFd names unix sockets by path, or says they have none", "[proc]") {
  std::string path = "/tmp/cppops_test_proc_" + std::to_string(getpid()) + ".sock";
  ::unlink(path.c_str());
  Fd named(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  REQUIRE(::bind(named.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  Fd left(pair[0]);
  Fd right(pair[1]);

  // An abstract name with a NUL inside it, which /proc/net/unix prints as '@'.
  Fd abstract(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un abstract_address{};
  abstract_address.sun_family = AF_UNIX;
  const std::string name = "cppops_test_" + std::to_string(getpid());
  std::memcpy(abstract_address.sun_path + 1, name.data(), name.size());
  abstract_address.sun_path[1 + name.size()] = '\0';
  abstract_address.sun_path[2 + name.size()] = 'x';
  const auto abstract_size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 3);
  REQUIRE(::bind(abstract.fd, reinterpret_cast<sockaddr*>(&abstract_address), abstract_size) == 0);

  for (SocketLookup lookup : kBothLookups) {
    INFO(lookupName(lookup));
    FdDescriber describer(getpid(), lookup);
    CHECK(describer.describe(named.fd) == "unix " + path);
    CHECK(describer.describe(left.fd) == "unix (unnamed)");
    CHECK(describer.describe(abstract.fd) == "unix @" + name + "@x");
  }
  ::unlink(path.c_str());
}

TEST_CASE("describeFd names files, anonymous inodes, and admits what it cannot see", "[proc]") {
  Fd file(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  Fd event(::eventfd(0, EFD_CLOEXEC));

  FdDescriber describer(getpid());
  CHECK(describer.describe(file.fd) == "/dev/null");
  CHECK(describer.describe(epoll.fd) == "epoll");
  CHECK(describer.describe(event.fd) == "eventfd");
  CHECK(describer.describe(1 << 20) == "fd 1048576");
  CHECK(describeFd(INT_MAX, 0) == "fd 0");
}

}  // namespace
}  // namespace cppops::proc
