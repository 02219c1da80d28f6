/* A library whose DWARF lives in a separate, zlib-compressed debug file found through .gnu_debuglink, the way
   distributions ship debug symbols: the case cppops' debug-info cache exists for. */
#include <unistd.h>

void split_debug_wait(void) {
  for (;;) pause(); /* the caller's frame the tests look for */
}
