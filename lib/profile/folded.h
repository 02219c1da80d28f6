// Profile -> Brendan Gregg's collapsed stacks ("folded"), the input of flamegraph.pl, inferno, speedscope and
// most flame graph tools: one line per unique stack, frames root first joined by ';', a space, the sample count.
#pragma once

#include <string>

#include "profile/model.h"

namespace cppops::profile {

struct FoldedOptions {
  bool thread_root = false;  // put the thread ("name (tid)") as the outermost frame, one flame per thread
};

// Lines sorted by stack, each ending in '\n'. Frame names lose the characters the format cannot carry (';' and
// line breaks become '_'); a sample without frames is the single frame "[no stack]".
std::string encodeFolded(const Profile& profile, const FoldedOptions& options = {});

}  // namespace cppops::profile
