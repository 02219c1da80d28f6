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

/* Application metrics, expvar-style: register once, update from any thread, and `cppops metrics PID` or
 * `cppops exporter` publish them in the Prometheus text format next to the agent's built-in figures.
 *
 * Registration allocates (once per metric) and works whether or not the agent is running. Registering a name
 * again with the same kind returns the same handle, so a library can register where it first needs a metric.
 * Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, at most 200 bytes; the "cppops_" prefix is the agent's own.
 * A registration returns NULL, and logs one line saying why, when the name is invalid or reserved, is already
 * registered with another kind, or when 1024 metrics are registered already. Every update function accepts NULL
 * and does nothing with it, so a failed registration never needs a branch on the hot path.
 *
 * Updates are lock-free atomic operations on memory allocated at registration: safe from any thread, and
 * async-signal-safe. Handles are never freed. */
typedef struct cppops_agent_metric cppops_agent_metric;

/* A count that only goes up (requests served, bytes written). Exposed with a "_total" suffix when the name lacks
 * one. Thread-safe. Async-signal-safe: no. */
CPPOPS_API cppops_agent_metric* cppops_agent_counter(const char* name, const char* help);
/* A value that goes up and down (queue depth, connections open). Thread-safe. Async-signal-safe: no. */
CPPOPS_API cppops_agent_metric* cppops_agent_gauge(const char* name, const char* help);
/* A distribution (latencies, sizes): `count` upper bounds, strictly ascending and finite, 1 to 32 of them; a
 * "+Inf" bucket is added. Thread-safe. Async-signal-safe: no. */
CPPOPS_API cppops_agent_metric* cppops_agent_histogram(const char* name, const char* help, const double* bounds,
                                                       size_t count);

/* Adds to a counter. Thread-safe. Async-signal-safe: yes. */
CPPOPS_API void cppops_agent_counter_add(cppops_agent_metric* counter, unsigned long long delta);
/* Sets or moves a gauge. Thread-safe. Async-signal-safe: yes. */
CPPOPS_API void cppops_agent_gauge_set(cppops_agent_metric* gauge, double value);
CPPOPS_API void cppops_agent_gauge_add(cppops_agent_metric* gauge, double delta);
/* Records one observation in a histogram. Thread-safe. Async-signal-safe: yes. */
CPPOPS_API void cppops_agent_histogram_observe(cppops_agent_metric* histogram, double value);

#ifdef __cplusplus
}
#endif

#endif /* CPPOPS_AGENT_H */
