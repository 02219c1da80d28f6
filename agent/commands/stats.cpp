#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>

#include "commands.h"
#include "protocol/messages.h"
#include "protocol/rendezvous.h"
#include "task_directory.h"

namespace cppops::agent {

namespace {

// Field `index` (1-based, as in proc(5)) of /proc/self/stat.
uint64_t statField(std::string_view line, int index) {
  size_t close = line.rfind(')');
  if (close == std::string_view::npos) return 0;
  int field = 2;
  const char* p = line.data() + close + 1;
  const char* end = line.data() + line.size();
  while (p < end) {
    while (p < end && *p == ' ') ++p;
    if (p >= end) break;
    if (++field == index) return std::strtoull(p, nullptr, 10);
    while (p < end && *p != ' ') ++p;
  }
  return 0;
}

uint64_t statusField(const char* status, const char* key) {
  const char* p = std::strstr(status, key);
  return p == nullptr ? 0 : std::strtoull(p + std::strlen(key), nullptr, 10);
}

uint32_t countOpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  uint32_t n = 0;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n > 0 ? n - 1 : 0;  // the directory stream's own fd is not the host's
}

}  // namespace

Reply handleStats(wire::Reader&, const RequestContext&) {
  protocol::StatsReply s;
  char stat[1024];
  size_t n = readFileAt(AT_FDCWD, "/proc/self/stat", stat, sizeof stat);
  std::string_view line(stat, n);
  s.utime_ticks = statField(line, 14);
  s.stime_ticks = statField(line, 15);
  s.threads = static_cast<uint32_t>(statField(line, 20));
  s.start_ticks = statField(line, 22);
  s.rss_bytes = statField(line, 24) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  s.clock_ticks_per_second = static_cast<uint64_t>(sysconf(_SC_CLK_TCK));

  char status[4096];
  if (readFileAt(AT_FDCWD, "/proc/self/status", status, sizeof status) > 0) {
    s.voluntary_switches = statusField(status, "\nvoluntary_ctxt_switches:");
    s.involuntary_switches = statusField(status, "\nnonvoluntary_ctxt_switches:");
  }
  s.open_fds = countOpenFds();

  timespec now{};
  clock_gettime(CLOCK_BOOTTIME, &now);
  s.boottime_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);

  wire::Writer w;
  s.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
