#include "task_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace cppops::agent {

TaskDirectory::TaskDirectory() : fd_(::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}

TaskDirectory::~TaskDirectory() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<pid_t> TaskDirectory::threads() const {
  std::vector<pid_t> tids;
  int fd = ::dup(fd_);
  DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
  if (d == nullptr) {
    if (fd >= 0) ::close(fd);
    return tids;
  }
  // The copy shares its offset with fd_, which an earlier listing left at the end.
  rewinddir(d);
  while (dirent* e = readdir(d)) {
    long tid = std::strtol(e->d_name, nullptr, 10);
    if (tid > 0) tids.push_back(static_cast<pid_t>(tid));
  }
  closedir(d);
  return tids;
}

size_t readFileAt(int dir_fd, const char* path, char* buf, size_t size) {
  int fd = ::openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = ::read(fd, buf, size - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  return static_cast<size_t>(n);
}

size_t TaskDirectory::read(pid_t tid, const char* file, char* buf, size_t size) const {
  char path[64];
  std::snprintf(path, sizeof path, "%d/%s", static_cast<int>(tid), file);
  return readFileAt(fd_, path, buf, size);
}

std::string TaskDirectory::line(pid_t tid, const char* file) const {
  char buf[256];
  size_t n = read(tid, file, buf, sizeof buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0')) --n;
  return std::string(buf, n);
}

}  // namespace cppops::agent
