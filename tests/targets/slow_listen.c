/* Preloaded ahead of the agent: listen() waits 300 ms before it listens, so a socket that is visible under its
   name before it listens is visible for long enough for a test to catch it every time. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int listen(int fd, int backlog) {
  int (*real_listen)(int, int);
  void* symbol = dlsym(RTLD_NEXT, "listen");
  memcpy(&real_listen, &symbol, sizeof real_listen); /* ISO C has no cast from object to function pointer */
  struct timespec delay = {0, 300 * 1000 * 1000};
  nanosleep(&delay, NULL);
  return real_listen(fd, backlog);
}
