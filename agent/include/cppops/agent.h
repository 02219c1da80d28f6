/* cppops agent: the part of cppops that lives inside the process being diagnosed.
 *
 * Two ways in:
 *   - preload into an unmodified binary:  LD_PRELOAD=/usr/lib/libcppops_agent.so ./server
 *   - link cppops::agent and call cppops_agent_start() once, early in main().
 * Either way the agent opens a private Unix socket that the `cppops` command talks to. Settings come from the
 * environment (see cppops-agent(3)); the options below are defaults that the environment overrides, because the
 * operator at 3 a.m. outranks the code.
 *
 * Plain C so that C programs and any C++ standard library can use it; no exception ever leaves these functions.
 */
#ifndef CPPOPS_AGENT_H
#define CPPOPS_AGENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CPPOPS_API __attribute__((visibility("default")))
#else
#define CPPOPS_API
#endif

typedef struct cppops_agent_options {
  /* sizeof(cppops_agent_options): lets later versions add fields without breaking older callers. */
  size_t struct_size;
  /* Socket directory; NULL for the default ($CPPOPS_SOCKET_DIR, $XDG_RUNTIME_DIR/cppops, /tmp/cppops-UID). A
   * directory chosen here is invisible to `cppops ps` unless the CLI is given the same CPPOPS_SOCKET_DIR. */
  const char* socket_dir;
  /* Nonzero: write nothing to stderr (refusals are still counted). */
  int quiet;
} cppops_agent_options;

/* Starts the agent's control thread. Returns 0 on success or when already running, -1 when disabled by
 * CPPOPS_AGENT=0, or a positive errno value when the socket could not be created (a line on stderr says why).
 * Thread-safe. Async-signal-safe: no. */
CPPOPS_API int cppops_agent_start(const cppops_agent_options* options);

/* Stops the control thread, closes and removes the socket. Safe to call when not running. Thread-safe.
 * Async-signal-safe: no. */
CPPOPS_API void cppops_agent_stop(void);

/* The agent's version, e.g. "0.1.0". Async-signal-safe: yes. */
CPPOPS_API const char* cppops_agent_version(void);

/* Copies the socket path into buf (NUL-terminated). Returns its length, or -1 when the agent is not running or
 * buf is too small. Thread-safe. Async-signal-safe: no. */
CPPOPS_API int cppops_agent_socket_path(char* buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* CPPOPS_AGENT_H */
