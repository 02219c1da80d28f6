// Profile -> pprof's format: profile.proto (github.com/google/pprof/blob/main/proto/profile.proto), gzipped, as
// read by `go tool pprof`, `pprof` and everything that imports pprof files.
#pragma once

#include <cstdint>
#include <string>

#include "profile/model.h"

namespace cppops::profile {

struct PprofOptions {
  int64_t time_nanos = 0;      // when the profile started (ns since the epoch); 0 leaves it out
  std::string main_binary;     // module to list first (pprof's "File:" line); "" guesses the first non-.so module
};

// Sample types [samples/count, cpu/nanoseconds] (wall/nanoseconds in wall mode), period_type cpu|wall/nanoseconds,
// period = period_ns. One pprof Location per captured pc, its Lines innermost first (how pprof shows inlining);
// one Mapping per module, marked as already symbolized so pprof never re-symbolizes (the addresses are the
// target's, not the file's). Labels are string labels. Dropped samples are reported in a comment.
std::string encodePprof(const Profile& profile, const PprofOptions& options = {});

// The uncompressed profile.proto bytes encodePprof() gzips.
std::string encodePprofProto(const Profile& profile, const PprofOptions& options = {});

}  // namespace cppops::profile
