// A heap profile compared with an earlier one (`cppops profile --heap --base FILE`): the earlier one is read back
// from the pprof file cppops wrote, and its figures are taken away stack by stack, so what is left is what grew.
#pragma once

#include <string>

#include "core/result.h"
#include "profile/model.h"

namespace cppops::profile {

// Reads a gzipped (or plain) pprof heap profile: the four sample types alloc_objects, alloc_space,
// inuse_objects and inuse_space in any order; locations with their lines (inlined frames first) and functions.
// Usage errors say what is wrong with the file.
Result<Profile> readHeapPprof(const std::string& bytes);

struct BaseComparison {
  size_t shrank = 0;   // stacks whose shown figure went down, or that are gone: not in the result
  size_t matched = 0;  // stacks of `now` that were in the base
};

// `now` minus `base`, stack by stack (stacks are compared by their frames' names, so a base from an earlier run
// of the same program matches too): each of the four figures is the growth, or 0 where it went down. Samples
// with no growth left in the figure `now` shows are dropped.
Profile subtractBase(const Profile& now, const Profile& base, BaseComparison* comparison);

}  // namespace cppops::profile
