#include "proc/task.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <type_traits>

namespace cppops::proc {
namespace {

// Big enough for stat, syscall and wchan whole, and for the part of status that precedes the CPU masks.
constexpr size_t kBufferSize = 4096;

struct ProcPath {
  char text[64];
};

ProcPath taskPath(pid_t pid, pid_t tid, const char* file) {
  ProcPath path;
  std::snprintf(path.text, sizeof(path.text), "/proc/%d/task/%d/%s", static_cast<int>(pid), static_cast<int>(tid),
                file);
  return path;
}

// One read() is enough: these files come from a single seq_file show(), which the kernel hands out whole (up to
// the caller's buffer size) on the first read. Returns the byte count, or -errno.
ssize_t readProcFile(const char* path, char* buffer, size_t size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n;
  do {
    n = ::read(fd, buffer, size);
  } while (n < 0 && errno == EINTR);
  int read_errno = errno;
  ::close(fd);
  return n < 0 ? -read_errno : n;
}

Error readError(int err, pid_t pid, pid_t tid, const char* path) {
  switch (err) {
    case ENOENT:
    case ESRCH:
      return makeError(ErrorKind::kNoProcess,
                       "Thread " + std::to_string(tid) + " of process " + std::to_string(pid) + " no longer exists.");
    case EACCES:
    case EPERM:
      return makeError(ErrorKind::kPermission,
                       std::string("Not allowed to read ") + path + ". It takes the right to ptrace the process: run "
                       "as its user or with CAP_SYS_PTRACE, and check kernel.yama.ptrace_scope.");
    default:
      return makeError(ErrorKind::kInternal, std::string("Reading ") + path + " failed: " + std::strerror(err) + ".");
  }
}

Error formatError(const char* path) {
  return makeError(ErrorKind::kInternal, std::string("Could not make sense of ") + path +
                                             "; this kernel's format is not supported, please report it.");
}

// The thread's `file`, read whole and handed to `parse`, which answers a std::optional: nullopt for a format it does
// not know.
template <typename Parse>
auto readParsed(pid_t pid, pid_t tid, const char* file, Parse parse)
    -> Result<typename std::invoke_result_t<Parse, std::string_view>::value_type> {
  ProcPath path = taskPath(pid, tid, file);
  char buffer[kBufferSize];
  ssize_t n = readProcFile(path.text, buffer, sizeof(buffer));
  if (n < 0) return readError(static_cast<int>(-n), pid, tid, path.text);
  auto parsed = parse(std::string_view(buffer, static_cast<size_t>(n)));
  if (!parsed) return formatError(path.text);
  return std::move(*parsed);
}

// Next whitespace-separated token of `rest`, consumed from it; empty at the end. Plain loops: this runs for every
// field of every thread.
std::string_view nextToken(std::string_view& rest) {
  size_t begin = 0;
  while (begin < rest.size() && static_cast<unsigned char>(rest[begin]) <= ' ') ++begin;
  size_t end = begin;
  while (end < rest.size() && static_cast<unsigned char>(rest[end]) > ' ') ++end;
  std::string_view token = rest.substr(begin, end - begin);
  rest.remove_prefix(end);
  return token;
}

template <typename T>
bool parseNumber(std::string_view text, T& out, int base = 10) {
  if (base == 16 && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::vector<pid_t> listTasks(pid_t pid) {
  std::vector<pid_t> tids;
  char path[32];
  std::snprintf(path, sizeof(path), "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return tids;
  while (const dirent* entry = ::readdir(dir)) {
    pid_t tid = 0;
    if (parseNumber(std::string_view(entry->d_name), tid)) tids.push_back(tid);
  }
  ::closedir(dir);
  std::sort(tids.begin(), tids.end());
  return tids;
}

std::optional<TaskStat> parseStat(std::string_view text) {
  // comm is free text, but every field after it is numeric (or the one-letter state), so the last ')' ends it.
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;

  TaskStat stat;
  std::string_view head = text.substr(0, open);
  if (!parseNumber(nextToken(head), stat.tid)) return std::nullopt;
  stat.name = std::string(text.substr(open + 1, close - open - 1));

  // Field numbers as in proc(5), where the state is field 3.
  std::string_view rest = text.substr(close + 1);
  int field = 3;
  for (std::string_view token = nextToken(rest); !token.empty(); token = nextToken(rest), ++field) {
    bool ok = true;
    switch (field) {
      case 3: ok = token.size() == 1; stat.state = token[0]; break;
      case 14: ok = parseNumber(token, stat.utime_ticks); break;
      case 15: ok = parseNumber(token, stat.stime_ticks); break;
      case 22: ok = parseNumber(token, stat.start_ticks); break;
      case 39: ok = parseNumber(token, stat.processor); break;
      default: break;
    }
    if (!ok) return std::nullopt;
  }
  if (field <= 39) return std::nullopt;
  return stat;
}

Result<TaskStat> readTaskStat(pid_t pid, pid_t tid) { return readParsed(pid, tid, "stat", parseStat); }

SyscallInfo parseSyscall(std::string_view text) {
  SyscallInfo info;
  std::string_view rest = text;
  std::string_view first = nextToken(rest);
  if (first == "running") {
    info.kind = SyscallInfo::Kind::kRunning;
    return info;
  }
  long number = 0;
  if (!parseNumber(first, number)) return info;

  // "-1 sp pc" outside a syscall, "nr a0..a5 sp pc" inside one.
  std::array<uint64_t, 8> values{};
  size_t count = number < 0 ? 2 : 8;
  for (size_t i = 0; i < count; ++i) {
    if (!parseNumber(nextToken(rest), values[i], 16)) return info;
  }
  if (!nextToken(rest).empty()) return info;

  if (number < 0) {
    info.kind = SyscallInfo::Kind::kBlockedNotInSyscall;
    info.sp = values[0];
    info.pc = values[1];
  } else {
    info.kind = SyscallInfo::Kind::kInSyscall;
    info.number = number;
    std::copy_n(values.begin(), info.args.size(), info.args.begin());
    info.sp = values[6];
    info.pc = values[7];
  }
  return info;
}

Result<SyscallInfo> readSyscall(pid_t pid, pid_t tid) {
  return readParsed(pid, tid, "syscall", [](std::string_view text) -> std::optional<SyscallInfo> {
    SyscallInfo info = parseSyscall(text);
    if (info.kind == SyscallInfo::Kind::kUnknown) return std::nullopt;
    return info;
  });
}

std::string readWchan(pid_t pid, pid_t tid) {
  ProcPath path = taskPath(pid, tid, "wchan");
  char buffer[kBufferSize];
  ssize_t n = readProcFile(path.text, buffer, sizeof(buffer));
  if (n <= 0) return {};
  std::string_view rest(buffer, static_cast<size_t>(n));
  std::string_view symbol = nextToken(rest);
  // The kernel writes "0" both for a running thread and for a reader it will not show kernel symbols to.
  if (symbol == "0") return {};
  return std::string(symbol);
}

namespace {

struct StatusField {
  std::string_view key;  // with its colon
  uint64_t* value;
};

// Reads `fields` from the thread's status file, numbers in `base`; each must be there.
template <size_t N>
Status readStatusFields(pid_t pid, pid_t tid, const StatusField (&fields)[N], int base) {
  ProcPath path = taskPath(pid, tid, "status");
  char buffer[kBufferSize];
  ssize_t n = readProcFile(path.text, buffer, sizeof(buffer));
  if (n < 0) return readError(static_cast<int>(-n), pid, tid, path.text);

  size_t found = 0;
  std::string_view text(buffer, static_cast<size_t>(n));
  while (!text.empty() && found < N) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    for (const StatusField& field : fields) {
      if (line.substr(0, field.key.size()) != field.key) continue;
      std::string_view value = line.substr(field.key.size());
      if (!parseNumber(nextToken(value), *field.value, base)) return formatError(path.text);
      ++found;
    }
  }
  if (found < N) return formatError(path.text);
  return {};
}

}  // namespace

Result<SignalMasks> readSignalMasks(pid_t pid, pid_t tid) {
  SignalMasks masks;
  uint64_t thread_pending = 0;
  uint64_t shared_pending = 0;
  const StatusField fields[] = {{"SigPnd:", &thread_pending},
                                {"ShdPnd:", &shared_pending},
                                {"SigBlk:", &masks.blocked},
                                {"SigIgn:", &masks.ignored},
                                {"SigCgt:", &masks.caught}};
  if (Status read = readStatusFields(pid, tid, fields, 16); !read) return read.error();
  masks.pending = thread_pending | shared_pending;
  return masks;
}

namespace {

// /proc/PID/task/TID/schedstat: nanoseconds run on a CPU, nanoseconds waited for one, and how often it got one.
struct Schedstat {
  uint64_t run_ns = 0;
  uint64_t wait_ns = 0;
  uint64_t runs = 0;
};

constexpr size_t kSchedstatSize = 128;

std::optional<Schedstat> parseSchedstat(std::string_view text) {
  Schedstat stat;
  if (!parseNumber(nextToken(text), stat.run_ns) || !parseNumber(nextToken(text), stat.wait_ns) ||
      !parseNumber(nextToken(text), stat.runs))
    return std::nullopt;
  return stat;
}

Result<Schedstat> readSchedstat(pid_t pid, pid_t tid) { return readParsed(pid, tid, "schedstat", parseSchedstat); }

}  // namespace

Result<uint64_t> readRunTimeNs(pid_t pid, pid_t tid) {
  Result<Schedstat> stat = readSchedstat(pid, tid);
  if (!stat) return stat.error();
  return stat->run_ns;
}

Result<RunCount> readRunCount(pid_t pid, pid_t tid) {
  if (Result<Schedstat> stat = readSchedstat(pid, tid); stat && stat->runs > 0) return RunCount{stat->runs, true};
  uint64_t voluntary = 0;
  uint64_t involuntary = 0;
  const StatusField fields[] = {{"voluntary_ctxt_switches:", &voluntary},
                                {"nonvoluntary_ctxt_switches:", &involuntary}};
  if (Status read = readStatusFields(pid, tid, fields, 10); !read) return read.error();
  return RunCount{voluntary + involuntary, false};
}

RunCounter::RunCounter(pid_t pid) : pid_(pid) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) limit_ = files.rlim_cur / 2;
}

RunCounter::~RunCounter() {
  for (const auto& [tid, fd] : fds_) ::close(fd);
}

Result<RunCount> RunCounter::read(pid_t tid) {
  auto open = fds_.find(tid);
  if (open == fds_.end() && fds_.size() < limit_) {
    const int fd = ::open(taskPath(pid_, tid, "schedstat").text, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) open = fds_.emplace(tid, fd).first;
  }
  if (open != fds_.end()) {
    char buffer[kSchedstatSize];
    const ssize_t n = ::pread(open->second, buffer, sizeof buffer, 0);
    const int read_errno = n < 0 ? errno : 0;
    if (n > 0)
      if (std::optional<Schedstat> stat = parseSchedstat(std::string_view(buffer, static_cast<size_t>(n)));
          stat && stat->runs > 0)
        return RunCount{stat->runs, true};
    ::close(open->second);
    fds_.erase(open);
    // The thread the file was opened for is gone. Its tid may be a new thread's by now, whose count, read afresh,
    // could happen to equal the one the caller kept for the old thread: it is a stranger, and the next call opens
    // its file.
    if (read_errno == ESRCH) return readError(ESRCH, pid_, tid, taskPath(pid_, tid, "schedstat").text);
  }
  // No such count kept by the kernel, or no room for another open file: as readRunCount does.
  return readRunCount(pid_, tid);
}

}  // namespace cppops::proc
