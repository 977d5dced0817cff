#!/usr/bin/env bash
# DnsClient vs dnsperf on one question set against rbldnsd, in a loopback-only
# namespace. rbldnsd is pinned to CPU 0, the clients to CPU 1.
#   /work/shared/tools/offline bash tests/bench/run_dns_bench.sh /tmp/dns_bench [IPS] [ZONES] [IN_FLIGHT] [SOCKETS]
set -euo pipefail
bench=$1 ips=${2:-65536} zones=${3:-20} inflight=${4:-128} sockets=${5:-4}
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'kill "$rbl" 2>/dev/null; rm -rf "$dir"' EXIT
args=()
for ((z = 0; z < zones; z++)); do
  printf ':127.0.0.2:listed\n10.0.%d.0/24\n' "$z" > "$dir/z$z"   # 256 listed IPs per zone
  args+=("z$z.bench:ip4set:z$z")
done
chmod 644 "$dir"/z*
"$bench" 0 "$ips" "$zones" 1 1 --write "$dir/queries"
taskset -c 0 rbldnsd -n -b 127.0.0.1/5300 -w "$dir" "${args[@]}" &
rbl=$!
sleep 1
echo "== dnsperf -q $inflight"
timeout 120 taskset -c 1 dnsperf -s 127.0.0.1 -p 5300 -d "$dir/queries" -q "$inflight" -n 1 -c 1 | grep -E "Queries (sent|completed|lost)|Queries per second"
echo "== dns_bench in_flight=$inflight sockets=$sockets"
timeout 120 taskset -c 1 "$bench" 5300 "$ips" "$zones" "$inflight" "$sockets"
