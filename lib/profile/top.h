// Profile -> the functions that cost the most, flat and cumulative, like `go tool pprof -top`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "profile/model.h"

namespace cppops::profile {

struct TopEntry {
  std::string function;        // frameName(): the function, or an address when unknown
  uint64_t flat = 0;           // samples with this function innermost (an inlined function counts as itself)
  uint64_t cum = 0;            // samples with this function anywhere on the stack (once per sample)
  double flat_fraction = 0;    // flat / total
  double sum_fraction = 0;     // running total of flat_fraction down the table
  double cum_fraction = 0;     // cum / total
};

struct TopTable {
  Mode mode = Mode::kCpu;
  std::string type;            // profileTypeName()
  bool bytes = false;          // heap space: amounts are bytes, not samples
  uint64_t period_ns = 0;      // one sample's worth of time
  uint64_t duration_ns = 0;
  uint64_t total = 0;          // samples in the profile
  uint64_t dropped = 0;
  size_t functions = 0;        // distinct functions, including those left off the table
  std::vector<TopEntry> entries;  // by flat, then cum, descending; then by name
};

// limit: entries to keep; 0 keeps all.
TopTable computeTop(const Profile& profile, size_t limit = 0);

// A header (mode, duration, total, dropped) and the table:
//       flat   flat%    sum%        cum    cum%
//      3.00s  75.00%  75.00%      3.50s  87.50%  hotFunction()
std::string renderTop(const TopTable& table);

}  // namespace cppops::profile
