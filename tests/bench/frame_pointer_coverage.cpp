// How much of a binary's frame-pointer code cppops reads where it sleeps: every function symbol whose code sets
// rbp from rsp (mov %rsp,%rbp) is decoded, and each of its calls and system calls is asked of fixedFrameDepth
// (lib/unwind/frame_pointer.h), as the walk of a thread asleep below that call asks it. A call it refuses leaves
// such a thread to be signalled (agent) or stopped (ptrace). Prints how many functions and call sites are read;
// --list names the functions with a call refused (alloca, a realigned stack, more than 16 KiB of code, ...).
//
// Usage: frame_pointer_coverage BINARY [--list]
//   e.g. cmake -S . -B /tmp/fp -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS=-fno-omit-frame-pointer
//        ninja -C /tmp/fp cmd/cppops && build/tests/frame_pointer_coverage /tmp/fp/cmd/cppops
#include <cxxabi.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "unwind/frame_pointer.h"

namespace {

namespace fp = cppops::unwind;

struct Function {
  std::string name;
  const uint8_t* code = nullptr;
  size_t size = 0;
};

std::string demangled(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> text(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                                   &std::free);
  return status == 0 ? text.get() : name;
}

// The function symbols of the symbol table (or, stripped, the dynamic one), one per address, with their code.
std::map<uint64_t, Function> functionsOf(Elf* elf) {
  std::map<uint64_t, Function> functions;
  for (const Elf64_Word wanted : {SHT_SYMTAB, SHT_DYNSYM}) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != wanted || shdr.sh_entsize == 0) continue;
      Elf_Data* symbols = elf_getdata(scn, nullptr);
      for (size_t i = 0; symbols != nullptr && i < shdr.sh_size / shdr.sh_entsize; ++i) {
        GElf_Sym sym;
        if (gelf_getsym(symbols, static_cast<int>(i), &sym) == nullptr || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
            sym.st_size == 0 || sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE ||
            functions.count(sym.st_value) != 0)
          continue;
        Elf_Scn* text = elf_getscn(elf, sym.st_shndx);
        GElf_Shdr text_header;
        Elf_Data* code = text != nullptr ? elf_getdata(text, nullptr) : nullptr;
        if (code == nullptr || code->d_buf == nullptr || gelf_getshdr(text, &text_header) == nullptr ||
            sym.st_value < text_header.sh_addr || sym.st_value + sym.st_size > text_header.sh_addr + code->d_size)
          continue;
        const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
        functions[sym.st_value] = {name != nullptr ? name : "?",
                                   static_cast<const uint8_t*>(code->d_buf) + (sym.st_value - text_header.sh_addr),
                                   sym.st_size};
      }
    }
    if (!functions.empty()) break;
  }
  return functions;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (argc == 3 && std::strcmp(argv[2], "--list") != 0) || argc > 3) {
    std::fprintf(stderr, "usage: %s BINARY [--list]\n", argv[0]);
    return 2;
  }
  const bool list = argc == 3;
  const int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "%s: cannot open it: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  if (elf == nullptr || elf_kind(elf) != ELF_K_ELF) {
    std::fprintf(stderr, "%s: not an ELF file this can read\n", argv[1]);
    return 1;
  }
  size_t framed = 0, framed_read = 0, too_large = 0, undecodable = 0, sites = 0, sites_read = 0;
  for (const auto& [address, function] : functionsOf(elf)) {
    std::vector<size_t> call_ends;
    bool frame = false;
    bool decoded = true;
    for (size_t i = 0; i < function.size;) {
      const fp::detail::Instruction in = fp::detail::decode(function.code + i, function.size - i);
      if (in.length == 0) {
        decoded = false;
        break;
      }
      i += in.length;
      frame = frame || fp::detail::setsFrame(in);
      if (fp::detail::flowOf(in) == fp::detail::Flow::kCall || fp::detail::isSyscall(in)) call_ends.push_back(i);
    }
    if (!frame || call_ends.empty()) continue;
    ++framed;
    sites += call_ends.size();
    too_large += function.size > fp::kMaxFunctionBytes;
    undecodable += !decoded;
    size_t read = 0;
    for (size_t end : call_ends) read += fp::fixedFrameDepth(function.code, function.size, end) >= 0;
    sites_read += read;
    framed_read += read == call_ends.size();
    if (list && read < call_ends.size())
      std::printf("%zu of %zu calls read: %s (%zu bytes%s)\n", read, call_ends.size(), demangled(function.name).c_str(),
                  function.size, decoded ? "" : ", not decoded to its end");
  }
  if (framed == 0) {
    std::printf("%s: no function sets up a frame pointer\n", argv[1]);
    return 0;
  }
  std::printf("%s: %zu functions set up a frame pointer and call; every call read in %zu (%.1f%%)\n", argv[1], framed,
              framed_read, 100.0 * static_cast<double>(framed_read) / static_cast<double>(framed));
  std::printf("call sites: %zu, read %zu (%.1f%%); functions over %zu KiB: %zu, not decoded to their end: %zu\n", sites,
              sites_read, 100.0 * static_cast<double>(sites_read) / static_cast<double>(sites),
              fp::kMaxFunctionBytes / 1024, too_large, undecodable);
  return 0;
}
