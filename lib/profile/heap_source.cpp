#include "profile/heap_source.h"

#include <utility>

#include "client/client.h"

namespace cppops::profile {

Result<protocol::HeapProfileReply> heapProfileRequest(pid_t pid, protocol::HeapProfileAction action,
                                                      uint64_t rate_bytes, std::chrono::milliseconds timeout) {
  auto conn = client::Connection::open(pid, timeout);
  if (!conn) return conn.error();
  if (!conn->supports(protocol::Command::kHeapProfile))
    return makeError(ErrorKind::kAgent, "the agent in process " + std::to_string(pid) + " (version " +
                                            conn->hello().agent_version +
                                            ") cannot take heap profiles; restart the process with a newer agent");
  protocol::HeapProfileRequest request;
  request.action = action;
  request.rate_bytes = rate_bytes;
  wire::Writer w;
  request.encode(w);
  auto payload = conn->call(protocol::Command::kHeapProfile, w.take());
  if (!payload) return payload.error();
  return client::decode<protocol::HeapProfileReply>(*payload);
}

Capture heapCapture(pid_t pid, protocol::HeapProfileReply reply, HeapValue shown) {
  Capture capture;
  capture.notes = std::move(reply.notes);
  capture.raw.pid = pid;
  capture.raw.mode = Mode::kHeap;
  capture.raw.duration_ns = reply.sampled_ns;
  capture.raw.dropped = reply.dropped;
  capture.raw.heap_rate_bytes = reply.rate_bytes;
  capture.raw.heap_shown = shown;
  for (auto& s : reply.samples) {
    RawSample r;
    // In use can only be negative by rounding: every free was counted from an allocation that was.
    const uint64_t inuse_objects = s.alloc_objects > s.free_objects ? s.alloc_objects - s.free_objects : 0;
    const uint64_t inuse_bytes = s.alloc_bytes > s.free_bytes ? s.alloc_bytes - s.free_bytes : 0;
    r.heap = {s.alloc_objects, s.alloc_bytes, inuse_objects, inuse_bytes};
    r.weight = r.heap[shown];
    r.pcs = std::move(s.pcs);
    capture.raw.samples.push_back(std::move(r));
  }
  auto symbolizer = Symbolizer::forProcess(pid);
  if (symbolizer)
    capture.symbolizer = std::move(*symbolizer);
  else
    capture.notes.push_back("frames are not symbolized: " + symbolizer.error().message);
  return capture;
}

}  // namespace cppops::profile
