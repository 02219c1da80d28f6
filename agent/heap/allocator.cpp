#include "heap/allocator.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <malloc.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "heap/sampler.h"

namespace cppops::agent::heap {

namespace {

using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
using GetNumericProperty = int (*)(const char*, size_t*);
using ReleaseFreeMemoryFn = void (*)();
using TcVersion = const char* (*)(int*, int*, const char**);

// jemalloc 5's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena.
constexpr const char* kJemallocPurgeAll = "arena.4096.purge";

// The object a symbol bound in the process comes from; nullptr when it is not defined anywhere.
const void* moduleBaseOf(const void* address, std::string* path) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0) return nullptr;
  if (path != nullptr && info.dli_fname != nullptr) *path = info.dli_fname;
  return info.dli_fbase;
}

// `symbol` as the process binds it, only if the object that defines malloc also defines it: a jemalloc library
// loaded for some other purpose does not make the process a jemalloc process.
void* sameModuleSymbol(const void* malloc_base, const char* symbol) {
  void* address = dlsym(RTLD_DEFAULT, symbol);
  return address != nullptr && moduleBaseOf(address, nullptr) == malloc_base ? address : nullptr;
}

const void* boundMallocBase() {
  void* bound = dlsym(RTLD_DEFAULT, "malloc");
  // When the agent's own entry points are the ones bound, the allocator is the one they forward to.
  if (bound != nullptr && bound == ownMallocEntry()) bound = nextMalloc();
  return bound;
}

bool baseNameStartsWith(const std::string& path, const char* prefix) {
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return base.rfind(prefix, 0) == 0;
}

}  // namespace

Allocator detectAllocator() {
  Allocator a;
  a.name = "unknown";
  const void* base = moduleBaseOf(boundMallocBase(), &a.module);
  if (base == nullptr) return a;
  if (auto mallctl = reinterpret_cast<Mallctl>(sameModuleSymbol(base, "mallctl"))) {
    a.kind = AllocatorKind::kJemalloc;
    a.name = "jemalloc";
    const char* version = nullptr;
    size_t size = sizeof version;
    if (mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr) a.version = version;
  } else if (sameModuleSymbol(base, "MallocExtension_GetNumericProperty") != nullptr) {
    a.kind = AllocatorKind::kTcmalloc;
    a.name = "tcmalloc";
    if (auto tc_version = reinterpret_cast<TcVersion>(sameModuleSymbol(base, "tc_version"))) {
      const char* text = tc_version(nullptr, nullptr, nullptr);
      if (text != nullptr) a.version = text;
    }
  } else if (baseNameStartsWith(a.module, "libc.so")) {
    a.kind = AllocatorKind::kGlibc;
    a.name = "glibc";
    a.version = gnu_get_libc_version();
  }
  return a;
}

std::vector<protocol::AllocatorFigure> allocatorFigures(const Allocator& allocator) {
  std::vector<protocol::AllocatorFigure> out;
  switch (allocator.kind) {
    case AllocatorKind::kGlibc: {
      struct mallinfo2 mi = mallinfo2();
      out = {{"arena", mi.arena},       {"ordblks", mi.ordblks},   {"smblks", mi.smblks},
             {"hblks", mi.hblks},       {"hblkhd", mi.hblkhd},     {"usmblks", mi.usmblks},
             {"fsmblks", mi.fsmblks},   {"uordblks", mi.uordblks}, {"fordblks", mi.fordblks},
             {"keepcost", mi.keepcost}};
      break;
    }
    case AllocatorKind::kJemalloc: {
      auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
      // Statistics are cached until the epoch advances.
      uint64_t epoch = 1;
      size_t size = sizeof epoch;
      mallctl("epoch", &epoch, &size, &epoch, size);
      for (const char* name : {"stats.allocated", "stats.active", "stats.metadata", "stats.resident", "stats.mapped",
                               "stats.retained"}) {
        size_t value = 0;
        size = sizeof value;
        if (mallctl(name, &value, &size, nullptr, 0) == 0) out.push_back({name, value});
      }
      unsigned arenas = 0;
      size = sizeof arenas;
      if (mallctl("arenas.narenas", &arenas, &size, nullptr, 0) == 0) out.push_back({"arenas.narenas", arenas});
      break;
    }
    case AllocatorKind::kTcmalloc: {
      auto get = reinterpret_cast<GetNumericProperty>(dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty"));
      for (const char* name :
           {"generic.current_allocated_bytes", "generic.heap_size", "generic.total_physical_bytes",
            "tcmalloc.pageheap_free_bytes", "tcmalloc.pageheap_unmapped_bytes", "tcmalloc.central_cache_free_bytes",
            "tcmalloc.transfer_cache_free_bytes", "tcmalloc.thread_cache_free_bytes",
            "tcmalloc.current_total_thread_cache_bytes", "tcmalloc.max_total_thread_cache_bytes"}) {
        size_t value = 0;
        if (get(name, &value) != 0) out.push_back({name, value});
      }
      break;
    }
    case AllocatorKind::kUnknown: break;
  }
  return out;
}

std::string allocatorReport(const Allocator& allocator) {
  if (allocator.kind != AllocatorKind::kGlibc) return "";
  char* text = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  if (stream == nullptr) return "";
  malloc_info(0, stream);
  std::fclose(stream);
  std::string out(text, size);
  std::free(text);
  return out;
}

Release releaseFreeMemory(const Allocator& allocator) {
  Release r;
  switch (allocator.kind) {
    case AllocatorKind::kGlibc:
      r.method = "malloc_trim(0)";
      r.result = malloc_trim(0);
      r.supported = true;
      break;
    case AllocatorKind::kJemalloc: {
      auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
      r.method = std::string("mallctl(\"") + kJemallocPurgeAll + "\")";
      r.result = mallctl(kJemallocPurgeAll, nullptr, nullptr, nullptr, 0);
      r.supported = true;
      break;
    }
    case AllocatorKind::kTcmalloc: {
      auto release = reinterpret_cast<ReleaseFreeMemoryFn>(dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
      r.method = "MallocExtension_ReleaseFreeMemory()";
      if (release != nullptr) {
        release();
        r.supported = true;
      }
      break;
    }
    case AllocatorKind::kUnknown: break;
  }
  return r;
}

}  // namespace cppops::agent::heap
