// Turns program counters captured in a live process (another one, or this one) into function/file/line frames,
// inline chains included, using elfutils (libdwfl/libdw). Never ptraces or stops the target.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace cppops {

struct SourceFrame {
  uint64_t address = 0;        // the pc as captured
  std::string function;        // demangled, e.g. "worker::run(int)"; "" when unknown
  std::string file;            // full path of the source file from DWARF line info; "" when unknown
  int line = 0;                // 0 when unknown
  std::string module;          // path of the ELF module as the target maps it; "[vdso]" for the vDSO
  uint64_t module_offset = 0;  // address relative to the module's load bias (useful when nothing else is known)
  bool module_unreadable = false;  // the module's file could not be opened: only its name is known
  bool inlined = false;        // true for a frame that was inlined into the next (outer) one
};

// The function of the frame of a signal trampoline, between a signal handler and the code it interrupted.
inline constexpr const char* kSignalHandlerCalled = "<signal handler called>";

// Whether the pc that follows a pc symbolized as `function` (its outermost frame's) in a stack is a return address,
// as every pc but the first is, except the one after a signal trampoline: where the thread was interrupted.
inline bool followedByReturnAddress(const std::string& function) { return function != kSignalHandlerCalled; }

class Symbolizer {
 public:
  // Reads /proc/PID/maps and prepares lookups; module files are opened lazily, on the first pc that needs them.
  // Paths the target sees but we cannot (another mount namespace, deleted files) are read through
  // /proc/PID/root/<path> or /proc/PID/map_files/<start>-<end>, which notes() then mentions.
  static Result<std::unique_ptr<Symbolizer>> forProcess(pid_t pid);

  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // One captured pc -> one or more frames, innermost first (inlined frames, then the real function). Pass
  // is_return_address=true for every frame but the interrupted frame 0, so the call site's line is reported.
  // The reference stays valid for the Symbolizer's lifetime: results are cached per (pc, is_return_address).
  const std::vector<SourceFrame>& symbolize(uint64_t pc, bool is_return_address);

  // Opens every module's debug info now rather than on its first lookup. Worth it for a caller that is waiting
  // for something else anyway (a stack capture in the target): compressed DWARF such as libc's separate debug
  // file takes tens of milliseconds to load. A module whose pcs were resolved before (saveResolved) is left
  // to its lookups: most of its pcs will be answered from that.
  void loadDebugInfo();

  // Keeps what this symbolizer resolved for the next one, by module build ID in the debug cache directory
  // (debug_cache.h: ResolvedFrames). Best effort; call it once the frames are no longer being waited for.
  void saveResolved();

  // Human-readable sentences about degraded symbolization, each reported once.
  const std::vector<std::string>& notes() const;

 private:
  struct Impl;
  explicit Symbolizer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace cppops
