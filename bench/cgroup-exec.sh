#!/bin/sh
# Used by bench/lambda-bench.sh: moves itself into one or more cgroups, then becomes COMMAND.
#
#   cgroup-exec.sh PROCS_FILE... -- COMMAND [ARG...]
#
# Each PROCS_FILE is a cgroup's `cgroup.procs` (cgroup v1: one per hierarchy, e.g. cpu, cpuacct
# and memory; cgroup v2: the one unified cgroup). Writing our PID there moves this process, and
# so everything it execs or forks afterwards, into the cgroup; the limits and the accounting
# start from that moment. POSIX sh (dash on Debian): less to start than bash once throttled.
set -eu

while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  echo "$$" >"$1"
  shift
done
[ "$#" -ge 2 ] || {
  echo "usage: cgroup-exec.sh PROCS_FILE... -- COMMAND [ARG...]" >&2
  exit 2
}
shift
exec "$@"
