# Sourced by the heap benchmarks: dependencies installed, the tree built, and a private socket directory and work
# directory for the runs, removed on exit.
scripts/setup.sh
scripts/build.sh build >/dev/null
agent=$PWD/build/agent/libcppops_agent.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CPPOPS_SOCKET_DIR=$work/sockets CPPOPS_QUIET=1
mkdir -m 700 "$CPPOPS_SOCKET_DIR"

. scripts/agent_name.sh
