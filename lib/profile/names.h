// What every profile encoder calls a frame, a stack and a thread, so that pprof, folded stacks, the flame graph,
// speedscope and the top table agree with each other.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "profile/model.h"

namespace cppops::profile {

// Label keys that buildProfile() sets.
inline constexpr std::string_view kThreadNameLabel = "thread_name";
inline constexpr std::string_view kThreadIdLabel = "thread_id";
inline constexpr std::string_view kStateLabel = "state";

// The frame as people read it: the function, or "0x7f..." (with the module's file name when known) when the
// symbolizer had nothing. Never empty.
std::string frameName(const Location& location);

// The sample's frames as names, root (outermost) first. A sample without frames reads as one "[no stack]" frame,
// so that every format can show it.
std::vector<std::string> stackNames(const Profile& profile, const Sample& sample);

// The label's value, or "" when the sample does not carry it.
std::string labelValue(const Sample& sample, std::string_view key);

// "name (tid)", "tid", or "[unknown thread]": a thread as the flame graph root and speedscope's profile name.
std::string threadTitle(const Sample& sample);

// pprof's style: the largest unit that keeps the figure at least 1, two decimals ("3.00s", "12.50ms", "800ns").
std::string formatDuration(uint64_t ns);

// Bytes as pprof prints them: "512B", "64.00kB", "64.00MB", "1.50GB" (powers of 1024).
std::string formatBytes(uint64_t bytes);

// What a profile's text views count: "cpu", "wall", or the heap figure shown ("inuse_space", ...).
std::string profileTypeName(const Profile& profile);

}  // namespace cppops::profile
