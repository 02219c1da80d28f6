// A per-user cache of separate debug files with their compressed sections inflated, named by build ID.
//
// Distributions ship debug files (libc6-dbg, *-dbgsym) with zlib-compressed DWARF, and libdw inflates every
// debug section of a file the moment it opens it: for glibc that is ~20 MB and 60-90 ms of CPU on every
// `cppops stack`, more than the whole rest of a 1,000-thread dump. The first dump that needs such a file writes
// the inflated copy here; later dumps map it and inflate nothing. perf's ~/.debug and debuginfod's client cache
// work the same way: a file's build ID says exactly which bytes it holds, so an entry never goes stale.
#pragma once

#include <elfutils/libdwfl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cppops {

// $CPPOPS_CACHE_DIR, else $XDG_CACHE_HOME/cppops/debuginfo, else $HOME/.cache/cppops/debuginfo; "" when caching
// is off (CPPOPS_CACHE_DIR set to the empty string) or no directory can be named.
std::string debugCacheDir();

// The cached file for build ID `hex` in `dir`, if there is one and the directory is private to us (a file
// someone else could plant would put wrong names on frames); else "".
std::string cachedDebugFile(const std::string& dir, const std::string& hex);

// Writes the debug file libdw loaded for `mod` into `dir`, inflated, when it had compressed sections and is not
// already there. Best effort: any failure leaves the cache as it was (writes go to a temporary file that is
// renamed into place). Keeps at most kMaxCachedDebugFiles entries, dropping the oldest.
void cacheInflatedDebugFile(Dwfl_Module* mod, const std::string& dir);

inline constexpr size_t kMaxCachedDebugFiles = 32;

// Where each compile unit of a module's DWARF lies, as its .debug_aranges says, with the offset of the unit's DIE.
// libdw builds this by reading the header of every unit (2,000 in glibc: ~4 ms of every dump); the cached copy,
// named by build ID next to the debug files, is one small read.
struct CuSpan {
  uint64_t low = 0;   // DWARF addresses, [low, high)
  uint64_t high = 0;
  uint64_t die_offset = 0;
};

// The cached spans of build ID `hex`, sorted by low, if there is a well-formed entry in a directory private to us;
// else empty. An entry is only a hint: the symbolizer checks that the unit it names covers the address.
std::vector<CuSpan> cachedCuSpans(const std::string& dir, const std::string& hex);

// Writes `spans` (sorted by low) for build ID `hex`. Best effort, like cacheInflatedDebugFile; keeps at most
// kMaxCachedCuSpans entries.
void cacheCuSpans(const std::string& dir, const std::string& hex, const std::vector<CuSpan>& spans);

inline constexpr size_t kMaxCachedCuSpans = 256;

// What the symbolizer found for the pcs of one module, by build ID: the slow part of a dump (line tables and
// inline scopes read from DWARF, names demangled: ~10 us a pc) done once per distinct pc of a binary instead of
// on every dump. Only what depends on the file is kept; the address and module come from the process each time.
struct CachedFrame {
  std::string function;
  std::string file;
  int line = 0;
  bool inlined = false;
};

struct ResolvedFrames {
  // Whether the module had debug info when these were resolved: once its debug symbols are installed (or
  // removed), the entry no longer says what a fresh lookup would, and is not used.
  bool with_dwarf = false;
  // By resolvedKey(); innermost frame first, as the symbolizer returns them.
  std::unordered_map<uint64_t, std::vector<CachedFrame>> by_key;
};

inline uint64_t resolvedKey(uint64_t module_offset, bool is_return_address) {
  return module_offset << 1 | (is_return_address ? 1 : 0);
}

// The frames cached for build ID `hex`, if there is a well-formed entry in a directory private to us (a planted
// entry would put wrong names on frames).
std::optional<ResolvedFrames> cachedResolvedFrames(const std::string& dir, const std::string& hex);

// Writes `frames` for build ID `hex`. Best effort, like cacheInflatedDebugFile; keeps at most
// kMaxCachedResolvedFrames entries, and none with more than kMaxResolvedPcs pcs.
void cacheResolvedFrames(const std::string& dir, const std::string& hex, const ResolvedFrames& frames);

inline constexpr size_t kMaxCachedResolvedFrames = 256;
inline constexpr size_t kMaxResolvedPcs = 100000;

// The module's build ID as lowercase hex; "" when it has none.
std::string buildIdHex(Dwfl_Module* mod);

}  // namespace cppops
