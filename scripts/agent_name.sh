# Sourced by the benchmarks that take another build of the agent (--against, --agent).
# Exits with a usage error unless $1 is a file named libcppops_agent*.so: under any other name the preloaded agent
# never starts (it checks its own name), and the benchmark would measure a process without one.
require_agent_name() {
  if [ ! -f "$1" ]; then
    echo "$(basename "$0"): no agent build at $1" >&2
    exit 2
  fi
  case $(basename "$1") in
    libcppops_agent*.so) ;;
    *) echo "$(basename "$0"): the agent build must be a file named libcppops_agent*.so (copy it under such a name):" \
      "under any other name the preloaded agent never starts" >&2; exit 2 ;;
  esac
}
