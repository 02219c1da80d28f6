#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <string>

#include "agent_state.h"
#include "commands.h"
#include "protocol/messages.h"
#include "core/version.h"

namespace cppops::agent {

namespace {

// The build-id note of the main executable, read from its loaded program headers: no file access, so it works
// even when the executable was deleted or replaced on disk after the process started.
int findBuildId(dl_phdr_info* info, size_t, void* out_void) {
  auto* out = static_cast<std::string*>(out_void);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const char* name = p + sizeof(ElfW(Nhdr));
      const char* desc = name + ((note->n_namesz + 3) & ~3u);
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
        static const char kHex[] = "0123456789abcdef";
        for (unsigned j = 0; j < note->n_descsz; ++j) {
          auto b = static_cast<unsigned char>(desc[j]);
          out->push_back(kHex[b >> 4]);
          out->push_back(kHex[b & 15]);
        }
        return 1;
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return 1;  // only the first object (the executable) is of interest
}

}  // namespace

Reply handleVersion(wire::Reader&, const RequestContext&) {
  protocol::VersionReply v;
  v.agent_version = kAgentVersion;
  v.protocol_version = protocol::kProtocolVersion;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) v.executable.assign(exe, static_cast<size_t>(n));
  dl_iterate_phdr(findBuildId, &v.build_id);
  v.load_mode = loadMode();
  wire::Writer w;
  v.encode(w);
  return okReply(w.take());
}

}  // namespace cppops::agent
