#!/usr/bin/env bash
# Checks nodetune bench's figures against iperf3: on one throwaway testbed,
# each case (underlay, tunnel with tx checksum offload on, with it off) is
# measured by nodetune's in-process test and by iperf3, alternating for a
# few rounds, and the medians must agree within 20%. Prints a Markdown
# table for docs/bench.md. Needs root and iperf3 (make deps).
#
#   hack/bench-iperf3.sh [seconds per case] [streams] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-2}
streams=${2:-1}
rounds=${3:-3}
if [[ $(id -u) -ne 0 ]]; then
	echo "bench-iperf3: needs root to build network namespaces" >&2
	exit 1
fi
command -v iperf3 >/dev/null || { echo "bench-iperf3: iperf3 is not installed (make deps)" >&2; exit 1; }

echo "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), iperf3 $(iperf3 --version | head -1 | cut -d' ' -f2)"
NODETUNE_PRIVILEGED_TESTS=1 NODETUNE_BENCH_SECONDS=$seconds NODETUNE_BENCH_STREAMS=$streams NODETUNE_BENCH_ROUNDS=$rounds \
	${GO:-go} test -run '^$' -bench '^BenchmarkAgainstIperf3$' -benchtime 1x -count 1 ./bench/
