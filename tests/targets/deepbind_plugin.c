/* A plugin loaded with RTLD_DEEPBIND (by deepbind_host): its calls of free and realloc bind to the C library's
   own, not to an interposer that comes first in the process, so it hands glibc whatever pointers the program gave
   it. Knows nothing of cppops. */
#include <stdlib.h>
#include <string.h>

void plugin_release(void* p) { free(p); }

void* plugin_resize(void* p, size_t n) { return realloc(p, n); }

void* plugin_allocate(size_t n) {
  char* p = malloc(n);
  if (p != NULL) memset(p, 0x5a, n);
  return p;
}
