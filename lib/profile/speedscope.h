// Profile -> speedscope's file format (https://www.speedscope.app/file-format-schema.json): one "sampled" profile
// per thread over a shared frame table, weights in nanoseconds.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "profile/model.h"

namespace cppops::profile {

struct SpeedscopeOptions {
  std::string name;       // shown as the file's title; "" gives "cppops cpu profile of PID"
};

// Frames are functions (name and file), so speedscope's sandwich view adds up a function across call sites.
// Profiles are ordered by thread id; the one with the most weight is the active one when the file opens.
nlohmann::json encodeSpeedscope(const Profile& profile, const SpeedscopeOptions& options = {});

}  // namespace cppops::profile
