// The threads of this process as /proc/self/task lists them, and their files.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace cppops::agent {

// Reads the small file at `path`, relative to `dir_fd` (or AT_FDCWD), into buf, NUL-terminated; returns its
// length, 0 when unreadable.
size_t readFileAt(int dir_fd, const char* path, char* buf, size_t size);

// /proc/self/task, open for the life of the object: every per-thread file is opened relative to it, which spares
// the kernel a path walk through /proc/self per file (1,000 threads means thousands of opens per dump).
class TaskDirectory {
 public:
  TaskDirectory();
  ~TaskDirectory();
  TaskDirectory(const TaskDirectory&) = delete;
  TaskDirectory& operator=(const TaskDirectory&) = delete;

  std::vector<pid_t> threads() const;
  // Reads <tid>/<file> into buf (NUL-terminated); returns the length, 0 when unreadable.
  size_t read(pid_t tid, const char* file, char* buf, size_t size) const;
  // A one-line file, <tid>/<file> (syscall, comm), without its newline; "" when unreadable.
  std::string line(pid_t tid, const char* file) const;

 private:
  int fd_;
};

}  // namespace cppops::agent
