// HEAP_PROFILE: switch allocation sampling on or off, and read what it recorded by allocation stack.
#include <cmath>
#include <string>

#include "commands.h"
#include "heap/sampler.h"
#include "protocol/messages.h"

namespace cppops::agent {

namespace {

// 1 byte samples every allocation; above 1 GiB a sample would be rarer than most programs' whole heap.
constexpr uint64_t kMaxRateBytes = uint64_t{1} << 30;

uint64_t rounded(double estimate) { return estimate > 0 ? static_cast<uint64_t>(std::llround(estimate)) : 0; }

protocol::HeapProfileReply toReply(const heap::Snapshot& snap) {
  protocol::HeapProfileReply r;
  r.interposed = heap::hooksBound() ? 1 : 0;
  r.sampling = snap.sampling ? 1 : 0;
  r.rate_bytes = snap.rate_bytes;
  r.sampled_ns = snap.sampled_ns;
  r.dropped = snap.dropped;
  r.samples.reserve(snap.stacks.size());
  for (const heap::StackRecord& s : snap.stacks) {
    protocol::HeapSample out;
    out.alloc_objects = rounded(s.alloc_objects);
    out.alloc_bytes = rounded(s.alloc_bytes);
    out.free_objects = rounded(s.free_objects);
    out.free_bytes = rounded(s.free_bytes);
    out.pcs.assign(s.pcs, s.pcs + s.depth);
    r.samples.push_back(std::move(out));
  }
  if (snap.dropped != 0)
    r.notes.push_back(std::to_string(snap.dropped) +
                      " samples were not recorded because the agent's tables were full; sample less often "
                      "(a larger --heap-rate)");
  return r;
}

}  // namespace

Reply handleHeapProfile(wire::Reader& args, const RequestContext&) {
  protocol::HeapProfileRequest request;
  if (!request.decode(args)) return errorReply(protocol::Status::kBadRequest, "malformed heap profile request");
  heap::NotSampled not_sampled;
  heap::Snapshot snap;
  switch (request.action) {
    case protocol::kHeapStart: {
      if (request.rate_bytes == 0 || request.rate_bytes > kMaxRateBytes)
        return errorReply(protocol::Status::kBadRequest, "the heap sampling rate must be 1 byte to 1 GiB, not " +
                                                             std::to_string(request.rate_bytes));
      if (const uint64_t rate = heap::samplingRate(); rate != 0)
        return errorReply(protocol::Status::kBusy,
                          "heap sampling is already on (every " + std::to_string(rate) +
                              " bytes on average); read it with `cppops profile PID --heap`, or end it with --stop");
      if (std::string why = heap::startSampling(request.rate_bytes); !why.empty())
        return errorReply(protocol::Status::kInternal, std::move(why));
      snap = heap::readSampling();
      break;
    }
    case protocol::kHeapRead: snap = heap::readSampling(); break;
    case protocol::kHeapStop: snap = heap::stopSampling(); break;
    default:
      return errorReply(protocol::Status::kBadRequest,
                        "unknown heap profile action " + std::to_string(request.action) + "; 0 read, 1 start, 2 stop");
  }
  wire::Writer w;
  toReply(snap).encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
