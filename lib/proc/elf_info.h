// Facts about an executable file that the process itself does not keep in memory.
#pragma once

#include <string>

namespace cppops::proc {

// The compiler that built the file, from its .comment section ("GCC: (Debian 12.2.0-14) 12.2.0"); "" when the
// file is unreadable or has no such section (stripped with -R .comment). Several lines are joined with "; ".
std::string compilerOf(const std::string& path);

}  // namespace cppops::proc
