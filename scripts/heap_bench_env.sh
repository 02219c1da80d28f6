# Sourced by the heap benchmarks: dependencies installed, the tree built, and a private socket directory and work
# directory for the runs, removed on exit.
scripts/setup.sh
scripts/build.sh build >/dev/null
agent=$PWD/build/agent/libcppops_agent.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CPPOPS_SOCKET_DIR=$work/sockets CPPOPS_QUIET=1
mkdir -m 700 "$CPPOPS_SOCKET_DIR"

# Exits with a usage error unless $1, an agent build given with --against, is named libcppops_agent*.so: under any
# other name the preloaded agent never starts, and would never sample.
require_agent_name() {
  case $(basename "$1") in
    libcppops_agent*.so) ;;
    *) echo "$(basename "$0"): --against takes a file named libcppops_agent*.so (copy it under such a name):" \
      "under any other name the preloaded agent never starts, and would never sample" >&2; exit 2 ;;
  esac
}
