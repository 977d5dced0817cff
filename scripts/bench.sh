#!/usr/bin/env bash
# bench.sh: how close one `repwatch run --once` cycle comes to the DNS server's
# ceiling. Not a test; run it by hand after changing the resolver, scheduler,
# checks or state store, and commit the entry it appends to docs/benchmarks.md.
#
# In a loopback-only namespace: one rbldnsd serves N zones (default 20), each
# listing ~1% of a /16 (198.18.0.0/16, RFC 2544's benchmarking range) with TXT.
#  1. dnsperf sends the very names the agent asks (65,536 x N), 100 in flight:
#     the ceiling.
#  2. /usr/bin/time -v repwatch run --once: wall time, peak RSS; rbldnsd counts
#     the queries it received.
#  3. The listings in the agent's SQLite state must equal the generated data.
# Targets: >= 60% of dnsperf's rate, peak RSS <= 100 MiB, listings exact.
#   scripts/bench.sh [--zones N] [--cidr CIDR] [--no-record]
#
# The FCrDNS + SPF benchmark (DNS questions per address with the cycle cache,
# dnsperf as reference; tests/bench/run_fcrdns_spf_bench.sh says what it does):
#   scripts/bench.sh fcrdns-spf [--cidr CIDR] [--threads N] [--repwatch BIN] [--no-record]
#
# The MTA log parsers' lines/s on one core against a memchr line split of the same
# lines, then the same lines written to a file and ingested end to end (tailer,
# parser, SQLite store) against a read() + memchr of that file (no root, no
# namespace; tests/bench/log_parse_bench.cc says what it does; the files, up to
# ~380 MB each, go to a temporary directory, one at a time).
# Builds build-bench-logs/ (RelWithDebInfo, repwatch_log_bench only), unless --bench names
# a binary built elsewhere. Target: >= 200,000 lines/s for Postfix and Exim.
#   scripts/bench.sh logs [--lines N] [--format postfix|exim|kumomta|powermta]... [--bench BIN] [--no-record]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$(readlink -f "$0")")/lib.sh"
if [[ ${1:-} == fcrdns-spf ]]; then
  shift
  exec bash "$REPO_ROOT/tests/bench/run_fcrdns_spf_bench.sh" "$@"
fi
if [[ ${1:-} == logs ]]; then
  shift
  record=1
  bench_args=()
  bench_bin=""
  while (($#)); do
    case $1 in
      --lines | --format) bench_args+=("$1" "$2"); shift 2 ;;
      --bench) bench_bin=$(readlink -f "$2"); shift 2 ;;
      --no-record) record=0; shift ;;
      *) echo "usage: $0 logs [--lines N] [--format NAME]... [--bench BIN] [--no-record]" >&2; exit 2 ;;
    esac
  done
  if [[ -z $bench_bin ]]; then
    say "set-up and build (build-bench-logs/, repwatch_log_bench only)"
    bash "$REPO_ROOT/scripts/setup.sh"
    cmake -S "$REPO_ROOT" -B "$REPO_ROOT/build-bench-logs" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DREPWATCH_INTEGRATION_TESTS=OFF >/dev/null
    cmake --build "$REPO_ROOT/build-bench-logs" -j2 --target repwatch_log_bench
    bench_bin="$REPO_ROOT/build-bench-logs/tests/repwatch_log_bench"
  fi
  [[ -x $bench_bin ]] || { echo "no benchmark binary at $bench_bin" >&2; exit 1; }
  say "parsing and ingestion, pinned to CPU 0"
  bench_rc=0
  ingest_dir=$(mktemp -d /tmp/repwatch-ingest-bench.XXXXXX)
  trap 'rm -rf "$ingest_dir"' EXIT
  summary=$(taskset -c 0 "$bench_bin" "${bench_args[@]}" --ingest "$ingest_dir") || bench_rc=$?
  echo "$summary"
  if ((record)); then
    revision=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    dirty=""
    if git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then dirty="+dirty"; fi
    # shellcheck disable=SC2016  # the backquotes are Markdown
    {
      printf '\n## %s — MTA log parsers and ingestion, revision %s%s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$revision" "$dirty"
      printf 'Machine: %s cores, %s, load average %s. RelWithDebInfo (-O2), pinned to one core. ' \
        "$(nproc)" "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
      printf 'Command: `scripts/bench.sh logs%s%s`\n\n' "${bench_args[*]:+ ${bench_args[*]}}" \
        "$([[ $bench_bin == "$REPO_ROOT/build-bench-logs/tests/repwatch_log_bench" ]] || echo ' --bench BIN')"
      printf '%s\n' "$summary"
    } >>"$REPO_ROOT/docs/benchmarks.md"
    echo "(appended to docs/benchmarks.md)"
  fi
  exit "$bench_rc"
fi
# shellcheck source=tests/lab/lab.sh
source "$REPO_ROOT/tests/lab/lab.sh"

ZONES=20
CIDR=198.18.0.0/16
RECORD=1
IN_FLIGHT=100     # dnsperf -q and the agent's dns.max_in_flight: the same load
ARGS=("$@")
while (($#)); do
  case $1 in
    --zones) ZONES=$2; shift 2 ;;
    --cidr) CIDR=$2; shift 2 ;;
    --no-record) RECORD=0; shift ;;
    *) echo "usage: $0 [--zones N] [--cidr CIDR] [--no-record]" >&2; exit 2 ;;
  esac
done

if ! lab_in_netns; then
  say "set-up and build"
  bash "$REPO_ROOT/scripts/setup.sh"
  rw_build build >/dev/null
fi
lab_enter_netns "${ARGS[@]}"
lab_init

REPWATCH="$REPO_ROOT/build/repwatch"
DNS_ADDR=127.0.0.53
DNS_PORT=5353
DATA="$LAB_DIR/bench"
STATE="$LAB_DIR/state"

say "generating $ZONES zones over $CIDR and the query file"
python3 "$LAB_ZONES" bench "$DATA" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$STATE" \
  --cidr "$CIDR" --zones "$ZONES" --fraction 0.01 --dns-extra "max_in_flight=$IN_FLIGHT"
mapfile -t specs < <(python3 "$LAB_ZONES" specs "$DATA")
names=$(wc -l <"$DATA/queries.txt")

# rbldnsd's own count of the queries it answered for the bench zones, from the
# per-zone stats lines it prints when it stops ("stats for Ns zone Z: tot=Q ...");
# the readiness probe (version.bind) is not in any zone.
rbldnsd_total() { awk '/^rbldnsd: stats for .* zone .*: tot=/ {sub(/.*tot=/, ""); s += $1} END {print s + 0}' "$1"; }

say "dnsperf: $names queries, $IN_FLIGHT in flight"
lab_rbldnsd "$DATA" "$DNS_ADDR:$DNS_PORT" "${specs[@]}"
server=$LAB_LAST_PID
dnsperf -s "$DNS_ADDR" -p "$DNS_PORT" -d "$DATA/queries.txt" -c 1 -T 1 -q "$IN_FLIGHT" -n 1 \
  >"$LAB_DIR/dnsperf.out" 2>&1
sed 's/^/  /' "$LAB_DIR/dnsperf.out" | grep -E 'Queries (sent|completed|lost)|Queries per second|Run time'
dnsperf_qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$LAB_DIR/dnsperf.out")
lab_stop "$server" || true

say "repwatch run --once (fresh rbldnsd, so its count is the agent's)"
lab_rbldnsd "$DATA" "$DNS_ADDR:$DNS_PORT" "${specs[@]}"
server=$LAB_LAST_PID
server_log="$LAB_DIR/rbldnsd-$DNS_ADDR-$DNS_PORT.log"
agent_rc=0
/usr/bin/time -v -o "$LAB_DIR/time.out" "$REPWATCH" run --once --config.file="$DATA/repwatch.toml" \
  >"$LAB_DIR/repwatch.log" 2>&1 || agent_rc=$?
lab_stop "$server" || true
tail -n 5 "$LAB_DIR/repwatch.log" | sed 's/^/  repwatch: /'
((agent_rc == 0)) || lab_die "repwatch run --once exited $agent_rc"

wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$LAB_DIR/time.out")
rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$LAB_DIR/time.out")
cpu=$(awk -F': ' '/Percent of CPU/ {print $2}' "$LAB_DIR/time.out")
queries=$(rbldnsd_total "$server_log")

say "listings in the agent's state against the generated data"
listings_ok=yes
python3 "$LAB_ZONES" verify-db "$DATA" "$STATE/repwatch.db" || listings_ok=NO

read -r agent_qps ratio rss_mib < <(python3 -c '
import sys
q, wall, ref, rss = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
qps = q / wall
print(f"{qps:.0f} {100 * qps / ref:.0f} {rss / 1024:.1f}")' "$queries" "$wall" "$dnsperf_qps" "$rss_kib")

verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "MISSED"; fi; }
rate_ok=$( ((ratio >= 60)) && echo 1 || echo 0)
rss_ok=$(python3 -c 'import sys; print(int(float(sys.argv[1]) <= 100))' "$rss_mib")
revision=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=""
if git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then dirty="+dirty"; fi
cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
# Other work on the machine moves both numbers; the load says how much.
load=$(cut -d' ' -f1-3 /proc/loadavg)

summary=$(
  cat <<TXT
- dnsperf (-c 1 -T 1 -q $IN_FLIGHT -n 1, $names names): ${dnsperf_qps} q/s
- repwatch run --once: ${wall} s wall, ${queries} queries (counted by rbldnsd), ${cpu} CPU
  => ${agent_qps} q/s = ${ratio}% of dnsperf (target >= 60%: $(verdict "$rate_ok"))
- peak RSS: ${rss_mib} MiB (target <= 100 MiB: $(verdict "$rss_ok"))
- listings equal the generated data: ${listings_ok}
TXT
)
say "summary"
echo "$summary"

if ((RECORD)); then
  # shellcheck disable=SC2016  # the backquotes are Markdown
  {
    [[ -s $REPO_ROOT/docs/benchmarks.md ]] || printf '# Benchmarks\n\nAppended by `scripts/bench.sh`; newest last.\n'
    printf '\n## %s — %s zones x %s, revision %s%s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$ZONES" "$CIDR" "$revision" "$dirty"
    printf 'Machine: %s cores, %s, load average %s. Command: `scripts/bench.sh --zones %s --cidr %s`\n\n' \
      "$(nproc)" "$cpu_model" "$load" "$ZONES" "$CIDR"
    printf '%s\n' "$summary"
  } >>"$REPO_ROOT/docs/benchmarks.md"
  echo "(appended to docs/benchmarks.md)"
fi
[[ $rate_ok == 1 && $rss_ok == 1 && $listings_ok == yes ]]
