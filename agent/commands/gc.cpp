// GC: give free memory back to the OS the allocator's own way, with its figures and the kernel's before and after.
#include <ctime>
#include <string>

#include "commands.h"
#include "heap/allocator.h"
#include "protocol/messages.h"

namespace cppops::agent {

std::string readWholeFile(const char* path);  // commands/heap.cpp

namespace {

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

Reply handleGc(wire::Reader&, const RequestContext&) {
  heap::Allocator allocator = heap::detectAllocator();
  if (allocator.kind == heap::AllocatorKind::kUnknown)
    return errorReply(protocol::Status::kInternal,
                      "the process's malloc comes from " + (allocator.module.empty() ? "an unknown object" : allocator.module) +
                          ", which cppops cannot ask to release memory; `cppops heap PID` still shows the kernel's figures");
  protocol::GcReply r;
  r.allocator = allocator.name;
  r.before = heap::allocatorFigures(allocator);
  r.smaps_rollup_before = readWholeFile("/proc/self/smaps_rollup");
  const uint64_t start = monotonicNs();
  heap::Release release = heap::releaseFreeMemory(allocator);
  r.duration_ns = monotonicNs() - start;
  if (!release.supported)
    return errorReply(protocol::Status::kInternal,
                      "this " + allocator.name + " does not export " + release.method +
                          "; nothing was released");
  r.method = release.method;
  r.result = release.result;
  r.after = heap::allocatorFigures(allocator);
  r.smaps_rollup_after = readWholeFile("/proc/self/smaps_rollup");
  wire::Writer w;
  r.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
