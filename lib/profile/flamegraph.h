// Profile -> a self-contained interactive flame graph (one SVG file: no external script, stylesheet or font).
// Each frame is a rectangle as wide as its share of samples, callers below callees. In a browser: hover shows the
// function and its share, click zooms into a frame (its callers stay, dimmed, below it), "Search" or Ctrl-F
// highlights every frame whose function matches a regular expression and shows the share they cover together.
#pragma once

#include <string>

#include "profile/model.h"

namespace cppops::profile {

struct FlameGraphOptions {
  std::string title;         // "" gives "cppops cpu profile of PID"
  bool thread_root = false;  // one flame per thread: the thread ("name (tid)") just above "all"
  int width = 1200;          // pixels
};

// Well-formed XML (names are escaped; bytes that are not valid UTF-8 or not allowed in XML become '?').
// Deterministic: frames are ordered by name and colored by a hash of it. Frames narrower than 0.1 px at full
// width are left out (they still count in their callers' widths).
std::string renderFlameGraph(const Profile& profile, const FlameGraphOptions& options = {});

}  // namespace cppops::profile
