#include "proc/elf_info.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cstring>
#include <set>

namespace cppops::proc {

std::string compilerOf(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  std::string out;
  size_t shstrndx = 0;
  if (elf != nullptr && elf_getshdrstrndx(elf, &shstrndx) == 0) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (gelf_getshdr(scn, &shdr) == nullptr) continue;
      const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
      if (name == nullptr || std::strcmp(name, ".comment") != 0) continue;
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (data == nullptr || data->d_buf == nullptr) break;
      // NUL-separated strings, one per object that contributed; most repeat, so keep distinct ones in order.
      std::set<std::string> seen;
      const char* p = static_cast<const char*>(data->d_buf);
      const char* end = p + data->d_size;
      while (p < end) {
        std::string s(p, strnlen(p, static_cast<size_t>(end - p)));
        p += s.size() + 1;
        if (s.empty() || !seen.insert(s).second) continue;
        if (!out.empty()) out += "; ";
        out += s;
      }
      break;
    }
  }
  if (elf != nullptr) elf_end(elf);
  ::close(fd);
  return out;
}

}  // namespace cppops::proc
