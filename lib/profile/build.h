// From what the agent captured (RawProfile) to what encoders read (Profile): every pc symbolized once, one
// Location per frame, identical samples merged, thread labels attached.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "profile/model.h"
#include "symbolize/symbolizer.h"

namespace cppops::profile {

// One captured pc -> its frames, innermost first (several when calls were inlined); an empty result keeps the pc
// as a bare address. is_return_address is false only for pcs[0], the interrupted pc.
using FrameSource = std::function<std::vector<SourceFrame>(uint64_t pc, bool is_return_address)>;

// Locations: one per unique (pc, is_return_address, inline depth), in order of first use; a pc's inlined frames
// come first and carry Location::inlined, its real function last. Samples: one per unique (location list, labels),
// in order of first appearance, count = sum of RawSample::weight, value_ns = count * period_ns. Labels, in this
// order: thread_name (when raw.thread_names has the tid), thread_id, and in wall mode state (when not "").
// symbolizer: nullptr leaves every location a bare address.
Profile buildProfile(const RawProfile& raw, Symbolizer* symbolizer);

// The same, with frames from any source: tests inject their own, the Symbolizer overload forwards here.
Profile buildProfile(const RawProfile& raw, const FrameSource& frames);

}  // namespace cppops::profile
