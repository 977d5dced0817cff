#!/usr/bin/env bash
# run_fcrdns_spf_bench.sh: what one `repwatch run --once` cycle of the FCrDNS and
# SPF checks costs over a /16, in DNS questions and time. Not a test; run it by
# hand (as root) through `scripts/bench.sh fcrdns-spf` after changing those checks,
# the cycle cache or the resolver, and commit the entry it appends to
# docs/benchmarks.md.
#
# In a loopback-only namespace, one unbound serves local data only
# (tests/bench/fcrdns_spf_data.py): PTR + A for every address of 198.18.0.0/16
# (~1% generic names, ~1% PTR names whose A is elsewhere), an SPF tree for
# bench.example (ip4 for half the range, three ESP-like includes with ip4/a/mx
# terms, TTL 3600) and macro.bench.example (exists:%{i}._spf.bench.example).
#  0. dnsperf sends the PTR and A question of every address (131,072), 100 in
#     flight: the reference rate.
#  1. "spf":   [fcrdns] off, spf_domains = [bench.example]
#  2. "macro": [fcrdns] off, spf_domains = [bench.example, macro.bench.example]
#  3. "all":   [fcrdns] on,  spf_domains = [bench.example]
# Each run gets a fresh unbound, so the queries unbound reports when it stops
# (its "server stats" lines; nothing else asks it anything) are the agent's.
# /usr/bin/time -v gives wall time and peak RSS. The fcrdns/spf sections stored
# in the agent's state must equal the generated data address by address, else
# the benchmark fails. The uncached cost is not measured (the agent has no flag to
# turn its cycle cache off): it is the generator's count of the questions an
# evaluation of each address asks, summed over the range.
#   tests/bench/run_fcrdns_spf_bench.sh [--cidr CIDR] [--threads N] [--repwatch BIN] [--no-record]
# --repwatch uses a binary built elsewhere (e.g. from a clean checkout) instead of
# building build-bench/ from this tree.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$(readlink -f "$0")")/../../scripts/lib.sh"
# shellcheck source=tests/lab/lab.sh
source "$REPO_ROOT/tests/lab/lab.sh"

CIDR=198.18.0.0/16
THREADS=1         # unbound num-threads
IN_FLIGHT=100     # dnsperf -q and the agent's dns.max_in_flight: the same load
RECORD=1
REPWATCH=""
ARGS=("$@")
while (($#)); do
  case $1 in
    --cidr) CIDR=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --repwatch) REPWATCH=$(readlink -f "$2"); shift 2 ;;
    --no-record) RECORD=0; shift ;;
    *) echo "usage: $0 [--cidr CIDR] [--threads N] [--repwatch BIN] [--no-record]" >&2; exit 2 ;;
  esac
done
if [[ -z $REPWATCH ]]; then
  REPWATCH="$REPO_ROOT/build-bench/repwatch"
  if ! lab_in_netns; then
    say "set-up and build (build-bench/, repwatch only)"
    bash "$REPO_ROOT/scripts/setup.sh"
    cmake -S "$REPO_ROOT" -B "$REPO_ROOT/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$REPO_ROOT/build-bench" -j2 --target repwatch
  fi
fi
[[ -x $REPWATCH ]] || { echo "no repwatch binary at $REPWATCH" >&2; exit 1; }
ARGS+=(--repwatch "$REPWATCH")   # the namespace's copy must not build again
lab_enter_netns "${ARGS[@]}"
lab_init

DATA_PY="$REPO_ROOT/tests/bench/fcrdns_spf_data.py"
DNS_ADDR=127.0.0.53
DNS_PORT=5353
DATA="$LAB_DIR/data"
STATE="$LAB_DIR/state"
RUN_NAMES=(spf macro all)

say "generating PTR + A for $CIDR and the SPF trees"
python3 "$DATA_PY" generate "$DATA" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$STATE" --cidr "$CIDR" \
  --threads "$THREADS" --in-flight "$IN_FLIGHT" | tee "$LAB_DIR/generate.out"
addresses=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addresses"])' "$DATA/bench.json")
names=$(wc -l <"$DATA/queries.txt")

# start_unbound NAME: a fresh unbound on the lab address. Readiness is its own
# "start of service" log line, not a probe query, so its count stays exact.
start_unbound() {
  local log="$LAB_DIR/$1.log"
  unbound-checkconf "$DATA/unbound.conf" >"$LAB_DIR/$1.checkconf.log" 2>&1 ||
    lab_die "unbound-checkconf: $(tail -n 5 "$LAB_DIR/$1.checkconf.log")"
  lab_spawn "$1" unbound -d -p -c "$DATA/unbound.conf"
  local pid=$LAB_LAST_PID deadline=$((SECONDS + 120))
  until grep -q 'start of service' "$log" 2>/dev/null; do
    lab_alive "$pid" || lab_die "unbound exited (see $1.log)"
    ((SECONDS < deadline)) || lab_die "unbound did not start within 120s"
    sleep 0.1
  done
  LAB_LAST_PID=$pid
}
# Queries unbound answered, from the stats it logs when it stops (one line per thread).
unbound_queries() {
  awk '/server stats for thread [0-9]+: [0-9]+ queries/ {sub(/.*: /, ""); s += $1} END {print s + 0}' "$1"
}

say "dnsperf: $names questions (PTR + A of every address), $IN_FLIGHT in flight"
start_unbound unbound-dnsperf
server=$LAB_LAST_PID
# The lab serves what the data says (these few digs are counted by this unbound only).
first=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[0])' "$CIDR")
ptr=$(dig +short @"$DNS_ADDR" -p "$DNS_PORT" -x "$first" PTR)
[[ $(dig +short @"$DNS_ADDR" -p "$DNS_PORT" "$ptr" A) == "$first" ]] || lab_die "PTR/A of $first: $ptr"
dig +short @"$DNS_ADDR" -p "$DNS_PORT" bench.example TXT | grep -q 'v=spf1' || lab_die "no SPF for bench.example"
dnsperf -s "$DNS_ADDR" -p "$DNS_PORT" -d "$DATA/queries.txt" -c 1 -T 1 -q "$IN_FLIGHT" -n 1 \
  >"$LAB_DIR/dnsperf.out" 2>&1
sed 's/^/  /' "$LAB_DIR/dnsperf.out" | grep -E 'Queries (sent|completed|lost)|Queries per second|Run time'
dnsperf_qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$LAB_DIR/dnsperf.out")
dnsperf_lost=$(awk '/Queries lost:/ {print $3}' "$LAB_DIR/dnsperf.out")
lab_stop "$server" || true

declare -A WALL RSS CPU QUERIES VERIFY
all_ok=1
for run in "${RUN_NAMES[@]}"; do
  say "run \"$run\": repwatch run --once ($(grep -E '^(enabled|spf_domains)' "$DATA/repwatch-$run.toml" | tr '\n' ' '))"
  start_unbound "unbound-$run"
  server=$LAB_LAST_PID
  agent_rc=0
  /usr/bin/time -v -o "$LAB_DIR/time-$run.out" "$REPWATCH" run --once --config.file="$DATA/repwatch-$run.toml" \
    >"$LAB_DIR/repwatch-$run.log" 2>&1 || agent_rc=$?
  lab_stop "$server" || true
  tail -n 3 "$LAB_DIR/repwatch-$run.log" | sed 's/^/  repwatch: /'
  ((agent_rc == 0)) || lab_die "repwatch run --once ($run) exited $agent_rc"
  WALL[$run]=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$LAB_DIR/time-$run.out")
  RSS[$run]=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$LAB_DIR/time-$run.out")
  CPU[$run]=$(awk -F': ' '/Percent of CPU/ {print $2}' "$LAB_DIR/time-$run.out")
  QUERIES[$run]=$(unbound_queries "$LAB_DIR/unbound-$run.log")
  if python3 "$DATA_PY" verify-db "$DATA" "$run" "$STATE/$run/repwatch.db" | tee "$LAB_DIR/verify-$run.out"; then
    VERIFY[$run]=yes
  else
    VERIFY[$run]=NO
    all_ok=0
  fi
  echo "  ${QUERIES[$run]} queries (counted by unbound), ${WALL[$run]} s wall, ${CPU[$run]} CPU, peak RSS ${RSS[$run]} MiB"
done

# The generator's cost model: questions an uncached evaluation asks, and distinct ones.
read -r unc_tree dist_tree unc_macro < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["cost"]
print(c["bench.example"]["uncached_questions"], c["bench.example"]["distinct_questions"],
      c["macro.bench.example"]["uncached_questions"])' "$DATA/expected.json")

per_ip() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.5f}")' "$1" "$addresses"; }
read -r all_qps ratio < <(python3 -c '
import sys
q, wall, ref = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"{q / wall:.0f} {100 * q / wall / ref:.0f}")' "${QUERIES[all]}" "${WALL[all]}" "$dnsperf_qps")
counts() { sed -n 's/^  stored: //p' "$LAB_DIR/verify-$1.out"; }

binary=$("$REPWATCH" --version 2>/dev/null | head -n 1)
if [[ $REPWATCH == "$REPO_ROOT/build-bench/repwatch" ]]; then
  revision=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  dirty=""
  if git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then dirty="+dirty"; fi
else
  # A binary built elsewhere: its own build revision, not this tree's.
  revision=$(sed -n 's/.*(\(.*\)).*/\1/p' <<<"$binary")
  dirty=""
fi
command="scripts/bench.sh fcrdns-spf"
[[ $CIDR == 198.18.0.0/16 ]] || command+=" --cidr $CIDR"
[[ $THREADS == 1 ]] || command+=" --threads $THREADS"
[[ $REPWATCH == "$REPO_ROOT/build-bench/repwatch" ]] || command+=" --repwatch BIN"
cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
# Other work on the machine moves every number; the load says how much.
load=$(cut -d' ' -f1-3 /proc/loadavg)

summary=$(
  cat <<TXT
- dnsperf (-c 1 -T 1 -q $IN_FLIGHT -n 1, $names PTR + A names): ${dnsperf_qps} q/s, ${dnsperf_lost} lost
- spf (bench.example only): ${QUERIES[spf]} queries = $(per_ip "${QUERIES[spf]}") per address
  (uncached: $unc_tree = $(per_ip "$unc_tree") per address; the tree has $dist_tree distinct questions);
  ${WALL[spf]} s wall, ${CPU[spf]} CPU, peak RSS ${RSS[spf]} MiB; $(counts spf)
- macro (+ exists:%{i}): ${QUERIES[macro]} queries = $(per_ip "${QUERIES[macro]}") per address
  (uncached: $((unc_tree + unc_macro)) = $(per_ip $((unc_tree + unc_macro))) per address);
  ${WALL[macro]} s wall, ${CPU[macro]} CPU, peak RSS ${RSS[macro]} MiB; $(counts macro)
- all (FCrDNS + SPF bench.example): ${QUERIES[all]} queries = $(per_ip "${QUERIES[all]}") per address;
  ${WALL[all]} s wall, ${CPU[all]} CPU => ${all_qps} q/s = ${ratio}% of dnsperf; peak RSS ${RSS[all]} MiB
  $(counts all)
- stored results equal the generated data: spf ${VERIFY[spf]}, macro ${VERIFY[macro]}, all ${VERIFY[all]}
TXT
)
say "summary"
echo "$summary"

if ((RECORD)); then
  # shellcheck disable=SC2016  # the backquotes are Markdown
  {
    printf '\n## %s — FCrDNS + SPF x %s, revision %s%s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$CIDR" "$revision" "$dirty"
    printf 'Machine: %s cores, %s, load average %s. Binary: %s. unbound num-threads %s. Command: `%s`\n\n' \
      "$(nproc)" "$cpu_model" "$load" "$binary" "$THREADS" "$command"
    printf '%s\n' "$summary"
  } >>"$REPO_ROOT/docs/benchmarks.md"
  echo "(appended to docs/benchmarks.md)"
fi
((all_ok))
