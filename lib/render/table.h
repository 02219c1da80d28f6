// Plain text tables and human units for the CLI's default (non-JSON) views.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cppops::render {

// Left-aligned columns separated by two spaces; the last column is never padded, so long paths do not make
// every line trail with blanks.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "0 B", "12.3 KiB", "4.0 GiB".
std::string humanBytes(uint64_t bytes);
// "950ms", "12.3s", "5m 02s", "3h 04m", "2d 03h".
std::string humanDuration(double seconds);

}  // namespace cppops::render
