// Only in libcppops_agent.so: pthread_create seen on its way to the C library, so the agent can count the threads
// a process creates (metrics/thread_counts.h). Exported deliberately (exports.map) because interposing is the
// point; the host's call goes through unchanged, with the same arguments and result, and no wrapper runs in the
// new thread, so its stack and start routine are exactly the host's.
#include <dlfcn.h>
#include <pthread.h>

#include <cerrno>

#include "metrics/thread_counts.h"

namespace {

using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

CreateFn nextCreate() {
  // dlsym is resolved once; a race between two first callers resolves it twice to the same address.
  static CreateFn next = reinterpret_cast<CreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
  return next;
}

}  // namespace

namespace cppops::agent::metrics {
bool threadCreationVisible() { return nextCreate() != nullptr; }
}  // namespace cppops::agent::metrics

extern "C" __attribute__((visibility("default"))) int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                                                     void* (*start)(void*), void* arg) {
  CreateFn next = nextCreate();
  if (next == nullptr) return EAGAIN;
  const int rc = next(thread, attr, start, arg);
  if (rc == 0) cppops::agent::metrics::countThreadCreated();
  return rc;
}
