/* A program with one function whose unwind information lies: lying_frame claims its caller's frame lies 1 MiB
 * above its stack pointer (it is 16 bytes). One thread, named "lying", runs it on a 256 KiB stack of its own,
 * followed by 4 MiB of memory that is not readable, so an unwinder that believes the claim faults.
 *
 * Usage: lying_cfi sleep|spin|malloc
 *   sleep:  the thread waits in pause() below lying_frame (stack dumps);
 *   spin:   it burns CPU below lying_frame (CPU profiles);
 *   malloc: it allocates and frees below lying_frame (heap profiles). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Calls work() with 8 bytes of its own on the stack; its CFI says they are 1 MiB. */
void lying_frame(void (*work)(void));
__asm__(
    ".text\n"
    ".globl lying_frame\n"
    ".type lying_frame, @function\n"
    "lying_frame:\n"
    "  .cfi_startproc\n"
    "  sub $8, %rsp\n"
    "  .cfi_def_cfa_offset 0x100000\n"
    "  call *%rdi\n"
    "  add $8, %rsp\n"
    "  .cfi_def_cfa_offset 8\n"
    "  ret\n"
    "  .cfi_endproc\n"
    ".size lying_frame, .-lying_frame\n");

static volatile unsigned long g_spins;

__attribute__((noinline)) static void wait_forever(void) {
  for (;;) pause();
}

__attribute__((noinline)) static void spin_forever(void) {
  for (;;) ++g_spins;
}

__attribute__((noinline)) static void allocate_forever(void) {
  for (size_t n = 0;; ++n) {
    volatile char* block = malloc(64 + (n & 255));
    block[0] = 1;
    free((void*)block);
  }
}

static void (*g_work)(void);

static void* run(void* unused) {
  (void)unused;
  lying_frame(g_work);
  return NULL;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "sleep") == 0) {
    g_work = wait_forever;
  } else if (strcmp(mode, "spin") == 0) {
    g_work = spin_forever;
  } else if (strcmp(mode, "malloc") == 0) {
    g_work = allocate_forever;
  } else {
    fprintf(stderr, "usage: lying_cfi sleep|spin|malloc\n");
    return 2;
  }
  const size_t stack_size = 256 << 10;
  const size_t reserved = stack_size + (4 << 20);
  char* stack = mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED || mprotect(stack, stack_size, PROT_READ | PROT_WRITE) != 0) {
    perror("lying_cfi: stack");
    return 1;
  }
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, stack_size);
  if (pthread_create(&thread, &attr, run, NULL) != 0) {
    fprintf(stderr, "lying_cfi: pthread_create failed\n");
    return 1;
  }
  pthread_setname_np(thread, "lying");
  printf("ready\n");
  fflush(stdout);
  pthread_join(thread, NULL);
  return 0;
}
