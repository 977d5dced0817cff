#!/usr/bin/env bash
# The dashboards and alert rules against a real Prometheus scraping real agents,
# in a loopback-only namespace. A lab that lights every expression:
#   - rbldnsd serves bl.spamcop.net (a catalogue zone, so listings get its meaning and
#     delisting URL; unbound forwards only that zone to it), listing 127.0.1.2,
#     127.0.1.3 and the whole 127.0.3.0/28 pool; broken.lab.test is forwarded to a
#     server that never answers (zone not_answering, DNS failures);
#   - unbound serves SPF (a record that authorises one address, one with +all, one
#     that authorises none of the pool), PTRs (one confirmed, one generic name
#     without an address, the rest none) and the MX lab's data; Postfix answers
#     each source as a receiver would (ok, blocked_by_list, reputation_block,
#     rate_limit, greylist); closed.lab.test's only MX refuses connections;
#   - agent "lab" (interval 1m, webhooks to a receiver answering 500 and one
#     answering 410, warm-up ramp started 4 days ago, an MTA log that cannot be
#     read): volume pushed through POST /api/v1/volume puts one address ahead of
#     its ramp and another into backoff, the others stall; then a SIGHUP with a
#     broken config file (the reload fails, the agent runs on);
#   - agent "stuck": its last successful cycle ended an hour ago (a `run --once`
#     under faketime, whose webhook items could not be delivered: the receiver's
#     port is closed), and now its resolver never answers, so no cycle completes;
#   - a scrape target where no agent listens (agent down).
# Prometheus (scrape and evaluation every 1 s) loads configs/prometheus/repwatch-rules.yml.
# Then tests/lab/promql_check.py asks Prometheus every expression of every panel
# target and template variable of grafana/dashboards/*.json and every rule of the
# rule file, and requires data from each (and that every metric name exists and
# every alert rule is pending or firing).
#   bash tests/integration/prometheus_live_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"
SRC=$(cd "$LAB_ROOT/../.." && pwd)
RULES="$SRC/configs/prometheus/repwatch-rules.yml"

lab_enter_netns "$@"
lab_init
T0=$SECONDS
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"
for tool in prometheus faketime; do
  command -v "$tool" >/dev/null || lab_die "$tool not found (scripts/setup.sh installs it)"
done

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
RBL_ADDR=127.0.0.54
RBL_PORT=$(lab_free_port "$RBL_ADDR")
BH_ADDR=127.0.0.55
BH_PORT=$(lab_free_port "$BH_ADDR")
FAIL_ADDR=127.0.0.61                      # webhook receiver answering 500
FAIL_PORT=$(lab_free_port "$FAIL_ADDR")
GONE_ADDR=127.0.0.62                      # webhook receiver answering 410
GONE_PORT=$(lab_free_port "$GONE_ADDR")
CLOSED_HOOK="127.0.0.63:$(lab_free_port 127.0.0.63)"   # nothing listens
A_WEB="127.0.0.71:$(lab_free_port 127.0.0.71)"
B_WEB="127.0.0.72:$(lab_free_port 127.0.0.72)"
DOWN_WEB="127.0.0.73:$(lab_free_port 127.0.0.73)"      # nothing listens: an agent that is down
PROM_WEB="127.0.0.90:$(lab_free_port 127.0.0.90)"
PROM="http://$PROM_WEB"
MX="$LAB_DIR/mx"
TOKEN_FILE="$LAB_DIR/api.token"
DRILL_IP=127.0.1.2   # listed, generic PTR without address, SPF fail, blocked_by_list at Postfix, ahead of its ramp

# ---------------------------------------------------------------------------
# DNS: the MX lab's unbound data plus SPF, PTR and the DNSBL zones.
python3 "$LAB_ROOT/mxdata.py" fixture "$MX" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$LAB_DIR/unused" \
  --maillog "$LAB_DIR/postfix-maillog.log" --exact-ranges
python3 - "$MX/unbound.conf" "$RBL_ADDR@$RBL_PORT" "$BH_ADDR@$BH_PORT" <<'PY'
import sys
path, rbl, blackhole = sys.argv[1:]
conf = open(path).read()
extra = """  local-zone: "bl.spamcop.net." transparent
  local-zone: "broken.lab.test." transparent
  local-zone: "5.0.127.in-addr.arpa." transparent
  local-data: 'lab.test. 300 IN TXT "v=spf1 ip4:127.0.1.1 -all"'
  local-data: 'wide.lab.test. 300 IN TXT "v=spf1 +all"'
  local-data: 'bulk.lab.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
  local-data: '1.1.0.127.in-addr.arpa. 300 IN PTR mta1.out.lab.test.'
  local-data: 'mta1.out.lab.test. 300 IN A 127.0.1.1'
  local-data: '2.1.0.127.in-addr.arpa. 300 IN PTR 127-0-1-2.dyn.lab.test.'
"""
anchor = '  local-zone: "." static\n'
assert anchor in conf, "mxdata's unbound.conf changed shape"
conf = conf.replace(anchor, anchor + extra)
conf += f"""forward-zone:
  name: "bl.spamcop.net."
  forward-addr: {rbl}
forward-zone:
  name: "broken.lab.test."
  forward-addr: {blackhole}
forward-zone:
  name: "5.0.127.in-addr.arpa."
  forward-addr: {blackhole}
"""
open(path, "w").write(conf)
PY
mkdir -p "$LAB_DIR/rbl"
cat >"$LAB_DIR/rbl/bl.ip4set" <<'EOF'
:127.0.0.2:Listed by the lab's SpamCop stand-in: $
127.0.0.2
127.0.1.2
127.0.1.3
127.0.3.0/28
EOF
lab_rbldnsd "$LAB_DIR/rbl" "$RBL_ADDR:$RBL_PORT" bl.spamcop.net:ip4set:bl.ip4set
lab_spawn blackhole python3 "$LAB_ROOT/dnsdata.py" blackhole "$BH_ADDR:$BH_PORT"
lab_unbound "$MX/unbound.conf" "$DNS_ADDR:$DNS_PORT"
lab_postfix "$MX/postfix"
lab_webhook_receiver hook-fail "$FAIL_ADDR:$FAIL_PORT" "$LAB_DIR/hook-fail.jsonl" --then 500
lab_webhook_receiver hook-gone "$GONE_ADDR:$GONE_PORT" "$LAB_DIR/hook-gone.jsonl" --then 410
lab_dig() { dig +short +time=2 +tries=1 @"$DNS_ADDR" -p "$DNS_PORT" "$@"; }
lab_ready() {
  [[ $(lab_dig 2.1.0.127.bl.spamcop.net A) == 127.0.0.2 ]] &&
    [[ -z $(lab_dig 1.1.0.127.bl.spamcop.net A) ]] &&
    [[ $(lab_dig -x 127.0.1.2) == 127-0-1-2.dyn.lab.test. ]] &&
    [[ $(lab_dig lab.test TXT) == '"v=spf1 ip4:127.0.1.1 -all"' ]] &&
    [[ $(lab_dig normal.lab.test MX) == "10 mx.lab.test." ]]
}
lab_check "lab: unbound answers DNSBL (through rbldnsd), PTR, SPF and MX data" lab_ready

# ---------------------------------------------------------------------------
# The agents' configs.
python3 -c 'import secrets; print(secrets.token_hex(16))' >"$TOKEN_FILE"
python3 -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())' >"$LAB_DIR/hook.secret"
chmod 600 "$TOKEN_FILE" "$LAB_DIR/hook.secret"
WARMUP_START=$(date -u -d '4 days ago' +%F)
mx_key() { sed -n "s/^$1 = //p" "$MX/repwatch.toml" | head -n 1; }
hook() {  # NAME URL
  cat <<EOF
[[webhooks]]
name = "$1"
url = "$2"
format = "standard"
secret_file = "$LAB_DIR/hook.secret"
timeout = "2s"
min_interval = "1s"
retry_initial = "200ms"
retry_max = "1s"

EOF
}
agent_conf() {  # NAME DNS_SERVER DNS_TIMEOUT DNS_ATTEMPTS (the ranges follow)
  cat <<EOF
[agent]
state_dir = "$LAB_DIR/state-$1"
interval = "1m"
instance = "$1"

[dns]
servers = ["$2"]
timeout = "$3"
attempts = $4

[alerts]
raise_after = 1
clear_after = 1

[api]
token_file = "$TOKEN_FILE"

[[dnsbl]]
zone = "bl.spamcop.net"

[[dnsbl]]
zone = "broken.lab.test"

EOF
}
# The lab agent's ranges: lab-out (the MX lab's sources, warming up), pool (listed,
# no PTR, SPF fail: range-wide alerts), dark (its reverse zone never answers: DNS
# failures; the zone test points of broken.lab.test alone are too few).
LAB_RANGES=$(cat <<EOF
[[ranges]]
name = "lab-out"
cidrs = ["127.0.1.1/32", "127.0.1.2/32", "127.0.1.3/32", "127.0.1.4/32", "127.0.1.5/32", "127.0.1.6/32"]
spf_domains = ["lab.test", "wide.lab.test"]
helo = "probe.lab.test"
expected_ptr = "*.out.lab.test"
warmup_start = "$WARMUP_START"

[[ranges]]
name = "pool"
cidrs = ["127.0.3.0/28"]
spf_domains = ["bulk.lab.test"]
mx_probe = false

[[ranges]]
name = "dark"
cidrs = ["127.0.5.0/28"]
mx_probe = false
EOF
)
# The stuck agent watches addresses of its own: range-wide sums add agents up (shards).
STUCK_RANGES='
[[ranges]]
name = "legacy"
cidrs = ["127.0.4.0/30"]
'

CONF_A="$LAB_DIR/lab.toml"
{
  agent_conf lab "$DNS_ADDR:$DNS_PORT" 500ms 2
  printf '%s\n\n' "$LAB_RANGES"
  cat <<EOF
[mx_probe]
domains = ["normal.lab.test", "closed.lab.test"]
mail_from = $(mx_key mail_from)
rcpt_to = $(mx_key rcpt_to)
connect_timeout = "2s"
banner_timeout = "2s"
command_timeout = "3s"

EOF
  hook failing "http://$FAIL_ADDR:$FAIL_PORT/hooks"
  hook gone "http://$GONE_ADDR:$GONE_PORT/hooks"
  # One MTA log that reads (empty so far) and one that cannot be read (a directory).
  cat <<EOF
[[volume.sources]]
name = "exim-main"
kind = "exim"
path = "$LAB_DIR/exim-mainlog"

[[volume.sources]]
name = "exim-broken"
kind = "exim"
path = "$LAB_DIR/exim-dir"
EOF
} >"$CONF_A"
: >"$LAB_DIR/exim-mainlog"
mkdir -p "$LAB_DIR/exim-dir"
# "stuck": first an ordinary one-shot cycle (an hour ago), then a resolver that never answers.
CONF_B_ONCE="$LAB_DIR/stuck-once.toml"
CONF_B="$LAB_DIR/stuck.toml"
{ agent_conf stuck "$DNS_ADDR:$DNS_PORT" 500ms 2; echo "$STUCK_RANGES"; hook closed "http://$CLOSED_HOOK/hooks"; } >"$CONF_B_ONCE"
{ agent_conf stuck "$BH_ADDR:$BH_PORT" 300s 1; echo "$STUCK_RANGES"; hook closed "http://$CLOSED_HOOK/hooks"; } >"$CONF_B"
for c in "$CONF_A" "$CONF_B_ONCE" "$CONF_B"; do
  lab_check "${c##*/} validates" "$REPWATCH" validate --config.file="$c"
done

# ---------------------------------------------------------------------------
# Prometheus first, so it sees the agents' counters grow from their start.
cat >"$LAB_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: repwatch
    static_configs:
      - targets: ["$A_WEB", "$B_WEB", "$DOWN_WEB"]
EOF
lab_check "promtool check config (the live test's prometheus.yml)" \
  promtool check config "$LAB_DIR/prometheus.yml"
lab_spawn prometheus prometheus --config.file="$LAB_DIR/prometheus.yml" --storage.tsdb.path="$LAB_DIR/tsdb" \
  --web.listen-address="$PROM_WEB" --log.level=warn
PROM_PID=$LAB_LAST_PID
lab_wait_http "$PROM/-/ready" 60 "$PROM_PID"
# ---------------------------------------------------------------------------
lab_log "agent stuck: one cycle an hour ago (faketime), in the background"
B_ONCE_FROM=$(date +%s)
FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "-1h" \
  "$REPWATCH" run --once --config.file="$CONF_B_ONCE" >"$LAB_DIR/stuck-once.log" 2>&1 &
B_ONCE_PID=$!
LAB_PIDS+=("$B_ONCE_PID")

lab_log "agent lab, first run: a full cycle, then the day's volume through POST /api/v1/volume"
lab_spawn lab-1 "$REPWATCH" run --config.file="$CONF_A" --web.listen-address="$A_WEB"
A_PID=$LAB_LAST_PID
lab_wait_http "http://$A_WEB/-/ready" 60 "$A_PID"
lab_log "agent lab ready after $((SECONDS - T0))s"
NOW=$(date +%s)
cat >"$LAB_DIR/volume.json" <<EOF
[
 {"ip": "127.0.1.2", "count": 50000, "outcome": "delivered", "receiver": "gmail.com", "at": $NOW},
 {"ip": "127.0.1.4", "count": 900, "outcome": "delivered", "receiver": "gmail.com", "at": $NOW},
 {"ip": "127.0.1.4", "count": 300, "outcome": "deferred", "receiver": "gmail.com", "at": $NOW,
  "reply": "421-4.7.28 [127.0.1.4] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited."},
 {"ip": "127.0.1.4", "count": 20, "outcome": "bounced", "receiver": "yahoo.com", "at": $NOW,
  "reply": "554 5.7.9 Message not accepted for policy reasons."}
]
EOF
code=$(curl -s -o "$LAB_DIR/volume.out" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
  -H 'Content-Type: application/json' --data-binary @"$LAB_DIR/volume.json" "http://$A_WEB/api/v1/volume") || true
lab_check "POST /api/v1/volume accepted the day's volume (HTTP $code: $(head -c 200 "$LAB_DIR/volume.out"))" \
  test "$code" = 200
rc=0
lab_stop "$A_PID" 20 || rc=$?
lab_check "agent lab (first run) exits 0 on SIGTERM (rc=$rc)" test "$rc" = 0

lab_log "agent lab, second run: the warm-up check sees the volume in its first cycle"
lab_spawn lab-2 "$REPWATCH" run --config.file="$CONF_A" --web.listen-address="$A_WEB"
A_PID=$LAB_LAST_PID

rc=0
wait "$B_ONCE_PID" || rc=$?
lab_check "agent stuck: run --once an hour ago exits 0 (rc=$rc, $(($(date +%s) - B_ONCE_FROM))s)" test "$rc" = 0
lab_check "agent stuck: its webhook items were not delivered (the receiver's port is closed)" \
  grep -q "not delivered yet" "$LAB_DIR/stuck-once.log"
lab_spawn stuck "$REPWATCH" run --config.file="$CONF_B" --web.listen-address="$B_WEB"
B_PID=$LAB_LAST_PID

lab_wait_http "http://$A_WEB/-/ready" 60 "$A_PID"
lab_wait_http "http://$B_WEB/-/healthy" 30 "$B_PID"
lab_log "agents and Prometheus up after $((SECONDS - T0))s"

# ---------------------------------------------------------------------------
# What the agents export is what the scenario says (so an empty panel below
# cannot be blamed on the lab).
curl -fsS --max-time 10 "http://$A_WEB/metrics" >"$LAB_DIR/metrics-lab.txt"
curl -fsS --max-time 10 "http://$B_WEB/metrics" >"$LAB_DIR/metrics-stuck.txt"
has() { grep -qF -- "$2" "$1" || { printf '  %s has no line with: %s\n' "${1##*/}" "$2"; return 1; }; }
warmup_signals() {
  local m="$LAB_DIR/metrics-lab.txt"
  has "$m" 'repwatch_warmup_signal{ip="127.0.1.2",range="lab-out",signal="ahead"} 1' &&
    has "$m" 'repwatch_warmup_signal{ip="127.0.1.4",range="lab-out",signal="backoff"} 1' &&
    has "$m" 'repwatch_warmup_signal{ip="127.0.1.1",range="lab-out",signal="stalled"} 1'
}
lab_check "lab: warm-up signals ahead (127.0.1.2), backoff (127.0.1.4), stalled (127.0.1.1)" warmup_signals
zones_up() {
  has "$LAB_DIR/metrics-lab.txt" 'repwatch_dnsbl_zone_up{zone="broken.lab.test"} 0' &&
    has "$LAB_DIR/metrics-lab.txt" 'repwatch_dnsbl_zone_up{zone="bl.spamcop.net"} 1'
}
lab_check "lab: broken.lab.test is not usable, bl.spamcop.net is" zones_up
listing_info() {
  has "$LAB_DIR/metrics-lab.txt" 'repwatch_dnsbl_listing_info{ip="127.0.1.2",zone="bl.spamcop.net",code="127.0.0.2",range="lab-out",meaning="listed by SpamCop (recent spam reports or spam traps); expires by itself",delist_url="https://www.spamcop.net/bl.shtml?127.0.1.2"} 1'
}
lab_check "lab: a listing's info names the catalogue's meaning and delisting URL" listing_info
stale_now() {
  python3 - "$LAB_DIR/metrics-stuck.txt" <<'PY'
import re, sys, time
text = open(sys.argv[1]).read()
last = float(re.search(r"^repwatch_last_cycle_success_timestamp_seconds (\S+)$", text, re.M).group(1))
interval = float(re.search(r"^repwatch_cycle_interval_seconds (\S+)$", text, re.M).group(1))
age = time.time() - last
print(f"  stuck: last success {age:.0f}s ago, interval {interval:.0f}s")
sys.exit(0 if age > 3 * interval else 1)
PY
}
lab_check "stuck: its last successful cycle is older than 3 intervals" stale_now

# A reload with a file that does not load: the agent runs on with the old config.
printf '\n[agent\n' >>"$CONF_A"
kill -HUP "$A_PID"
# metrics_show LINE...: waits (up to 15 s) until the lab agent's /metrics has every LINE.
metrics_show() {
  local deadline=$((SECONDS + 15)) file="$LAB_DIR/metrics-lab-late.txt" line missing
  while :; do
    missing=""
    curl -fsS --max-time 5 -o "$file" "http://$A_WEB/metrics" || missing="(no answer)"
    for line in "$@"; do
      [[ -n $missing ]] || grep -qxF -- "$line" "$file" || missing=$line
    done
    [[ -z $missing ]] && return 0
    ((SECONDS < deadline)) || { printf '  /metrics lacks: %s\n' "$missing"; return 1; }
    sleep 0.2
  done
}
lab_check "lab: SIGHUP with a broken config: repwatch_config_last_reload_successful 0, the agent runs on" \
  metrics_show 'repwatch_config_last_reload_successful 0'
lab_check "lab: the MTA log that is a directory is reported unreadable, the other one is fine" \
  metrics_show 'repwatch_volume_log_up{source="exim-broken"} 0' 'repwatch_volume_log_up{source="exim-main"} 1'

# ---------------------------------------------------------------------------
lab_log "every dashboard and rule expression through Prometheus (until all have data, at most 90s)"
t_check=$SECONDS
lab_check "every panel target, variable and rule returns data; every metric exists; every alert pending or firing" \
  python3 "$LAB_ROOT/promql_check.py" --prom "$PROM" \
  --dashboard "$SRC"/grafana/dashboards/*.json --rules "$RULES" \
  --var ip="$DRILL_IP" \
  --window 20 --rules-state --until 90 --table "$LAB_DIR/expressions.txt"
lab_log "expressions checked in $((SECONDS - t_check))s"

# The checker is not vacuous: a misspelt metric, and an unknown one hidden behind
# `or vector(0)` (which has data), each fail it.
cat >"$LAB_DIR/typo-dashboard.json" <<'EOF'
{"uid": "typo", "templating": {"list": []}, "panels": [
  {"id": 1, "type": "table", "targets": [{"refId": "A", "expr": "repwatch_dnsbl_listedd", "instant": true}]},
  {"id": 2, "type": "stat", "targets": [{"refId": "A", "expr": "count(repwatch_no_such_metric) or vector(0)"}]}]}
EOF
typo_caught() {
  local out rc=0
  out=$(python3 "$LAB_ROOT/promql_check.py" --prom "$PROM" --dashboard "$LAB_DIR/typo-dashboard.json" 2>&1) || rc=$?
  if [[ $rc == 1 ]] && grep -q "typo #1 A: no data" <<<"$out" &&
    grep -q "typo #2 A: metric(s) Prometheus never scraped: repwatch_no_such_metric" <<<"$out"; then
    return 0
  fi
  printf '  rc=%s\n%s\n' "$rc" "$out"
  return 1
}
lab_check "the checker fails a dashboard that queries metrics nobody exports" typo_caught

# The stuck agent is still mid-cycle (its resolver never answers), the other one cycles.
still_stuck() { lab_alive "$B_PID" && ! grep -q "cycle done" "$LAB_DIR/stuck.log"; }
lab_check "stuck: still running, no cycle completed" still_stuck
lab_check "the webhook receivers got requests (500 and 410 answered)" \
  test -s "$LAB_DIR/hook-fail.jsonl" -a -s "$LAB_DIR/hook-gone.jsonl"
rc=0
lab_stop "$A_PID" 20 || rc=$?
lab_check "agent lab exits 0 on SIGTERM (rc=$rc)" test "$rc" = 0
# Its cycle still waits on the zones' test points (300 s timeouts): SIGTERM ends
# that wait after the stop grace (2 s), and the agent exits 0 on its own.
rc=0
t_stop=$SECONDS
lab_stop "$B_PID" 10 || rc=$?
lab_check "agent stuck exits 0 on SIGTERM while its zones' test points hang (rc=$rc, $((SECONDS - t_stop))s)" \
  test "$rc" = 0
lab_check "Prometheus is still running" lab_alive "$PROM_PID"
lab_log "total $((SECONDS - T0))s"
lab_summary
