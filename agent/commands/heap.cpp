// HEAP: the allocator's own figures and the kernel's raw view of memory (smaps), for the CLI to add up.
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "commands.h"
#include "heap/allocator.h"
#include "heap/sampler.h"
#include "protocol/messages.h"

namespace cppops::agent {

// A whole /proc file, however long; "" when it cannot be read. Async-signal-safe: no.
std::string readWholeFile(const char* path) {
  std::string out;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {

// /proc/self/task/TID/syscall ends with the thread's stack pointer and pc while it sleeps in a system call;
// a running thread shows "running" and has none to give. The calling thread is running by definition, and its
// stack pointer is as close as the address of a local.
std::vector<protocol::ThreadStackPointer> threadStackPointers() {
  std::vector<protocol::ThreadStackPointer> out;
  const auto self = static_cast<uint32_t>(syscall(SYS_gettid));
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    protocol::ThreadStackPointer t;
    t.tid = static_cast<uint32_t>(std::strtoul(e->d_name, nullptr, 10));
    if (t.tid == self) {
      int local = 0;
      t.sp = reinterpret_cast<uintptr_t>(&local);
    } else {
      std::string path = std::string("/proc/self/task/") + e->d_name + "/syscall";
      std::string line = readWholeFile(path.c_str());
      // "nr arg1 ... arg6 sp pc": the second-to-last field.
      size_t end = line.find_last_not_of(" \n");
      size_t pc = end == std::string::npos ? std::string::npos : line.rfind(' ', end);
      size_t sp = pc == std::string::npos || pc == 0 ? std::string::npos : line.rfind(' ', pc - 1);
      if (line.rfind("running", 0) != 0 && sp != std::string::npos)
        t.sp = std::strtoull(line.c_str() + sp + 1, nullptr, 16);
    }
    out.push_back(t);
  }
  closedir(d);
  return out;
}

}  // namespace

Reply handleHeap(wire::Reader&, const RequestContext&) {
  protocol::HeapReply r;
  heap::Allocator allocator = heap::detectAllocator();
  r.allocator = allocator.name;
  r.allocator_module = allocator.module;
  r.allocator_version = allocator.version;
  r.figures = heap::allocatorFigures(allocator);
  r.allocator_report = heap::allocatorReport(allocator);
  r.smaps_rollup = readWholeFile("/proc/self/smaps_rollup");
  r.smaps = readWholeFile("/proc/self/smaps");
  r.stacks = threadStackPointers();
  r.heap_hooks = heap::hooksBound() ? 1 : 0;
  r.heap_rate_bytes = heap::samplingRate();
  r.heap_sampling = r.heap_rate_bytes != 0 ? 1 : 0;
  wire::Writer w;
  r.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
