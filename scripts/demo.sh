#!/usr/bin/env bash
# demo.sh: repwatch end to end on this machine, with nothing leaving it.
# Installs the packages, builds, then in a private loopback-only network
# namespace serves sample DNSBL zones with rbldnsd (listings with several codes
# and TXT, an IPv6 zone, a zone that lists everything, one that answers like
# Spamhaus does to an open resolver), checks two ranges once, and runs the
# agent to show its Prometheus metrics. Then unbound serves PTR, A, AAAA, CNAME,
# MX and TXT data and `repwatch check` shows the FCrDNS, HELO and SPF verdicts.
# Last, a real Postfix answers each sending address as a reputation-blocking,
# rate-limiting or greylisting receiver would, and the MX probe classifies it.
# Everything is stopped by PID at the end.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$(readlink -f "$0")")/lib.sh"
# shellcheck source=tests/lab/lab.sh
source "$REPO_ROOT/tests/lab/lab.sh"

if ! lab_in_netns; then
  say "set-up and build (quiet when there is nothing to do)"
  bash "$REPO_ROOT/scripts/setup.sh"
  rw_build build >/dev/null
  say "entering a private network namespace with only loopback"
fi
lab_enter_netns "$@"
lab_init

REPWATCH="$REPO_ROOT/build/repwatch"
DNS="127.0.0.53:5353"
WEB="127.0.0.1:9754"
DATA="$LAB_DIR/zones"
CONFIG="$DATA/repwatch.toml"

python3 "$LAB_ZONES" fixture "$DATA" --profile demo --dns "$DNS" --state-dir "$LAB_DIR/state" --interval 1m
mapfile -t specs < <(python3 "$LAB_ZONES" specs "$DATA")
lab_rbldnsd "$DATA" "$DNS" "${specs[@]}"

say "rbldnsd serves these zones on $DNS (data in $DATA, removed at the end):"
cat <<'TXT'
  good.test          192.0.2.3 (two codes), .5, .9, .12/30 except .13 (IPv4, with TXT)
  v6.test            2001:db8::5, 2001:db8::8/126 except ::9 (IPv6)
  everything.test    lists every address, 127.0.0.1 included: a dead zone
  openresolver.test  answers 127.255.255.254 to everyone: "you use an open resolver"
TXT
say "the agent's config ($CONFIG):"
sed 's/^/  /' "$CONFIG"

say "repwatch check --config.file=... 192.0.2.0/28 2001:db8::/124"
# --log.level=error: skip the warnings that the lab's zones are not in the catalogue.
"$REPWATCH" check --config.file="$CONFIG" --log.level=error 192.0.2.0/28 2001:db8::/124 || true

say "repwatch run --config.file=... --web.listen-address=$WEB (in the background)"
lab_spawn repwatch "$REPWATCH" run --config.file="$CONFIG" --web.listen-address="$WEB"
agent=$LAB_LAST_PID
echo "  PID $agent; waiting for http://$WEB/-/ready (after its first full cycle)..."
lab_wait_http "http://$WEB/-/ready" 180 "$agent"

say "curl -s $WEB/metrics | grep ^repwatch_"
curl -s "http://$WEB/metrics" | grep '^repwatch_'

say "stopping the agent (PID $agent)"
lab_stop "$agent" 20 || echo "  agent exited with status $?"

say "reverse DNS, HELO and SPF: unbound serves the test data of tests/lab/dnsdata.py"
DNSDATA="$LAB_ROOT/dnsdata.py"
DNS2_ADDR=127.0.0.54
DEAD="127.0.0.55:5353"            # a server that never answers, for the "dead" zones
python3 "$DNSDATA" fixture "$LAB_DIR/dns" --dns "$DNS2_ADDR:5353" --blackhole "$DEAD" --state-dir "$LAB_DIR/state2"
lab_spawn blackhole python3 "$DNSDATA" blackhole "$DEAD"
lab_unbound "$LAB_DIR/dns/unbound.conf" "$DNS2_ADDR:5353"
mapfile -t targets < <(python3 "$DNSDATA" targets "$LAB_DIR/dns")
say "its ranges:"
grep -E '^(name|cidrs|spf_domains|helo|expected_ptr) ' "$LAB_DIR/dns/repwatch.toml" | sed 's/^/  /'
say "repwatch check --config.file=... ${targets[*]}"
"$REPWATCH" check --config.file="$LAB_DIR/dns/repwatch.toml" "${targets[@]}" || true
say "the same as JSON, one address: repwatch check --json ... ${targets[0]}"
"$REPWATCH" check --config.file="$LAB_DIR/dns/repwatch.toml" --json "${targets[0]}" | python3 -m json.tool || true

say "MX probes: a real Postfix answers each sending address differently (tests/lab/mxdata.py)"
MX="$LAB_DIR/mx"
python3 "$LAB_ROOT/mxdata.py" fixture "$MX" --dns "127.0.0.56:5353" --state-dir "$LAB_DIR/state3" \
  --maillog "$LAB_DIR/postfix-maillog.log" >/dev/null
lab_unbound "$MX/unbound.conf" "127.0.0.56:5353"
lab_postfix "$MX/postfix"
lab_mx_receivers "$MX"
mapfile -t sources < <(python3 "$LAB_ROOT/mxdata.py" targets "$MX")
say "its [mx_probe] section:"
sed -n '/^\[mx_probe\]/,/^$/p' "$MX/repwatch.toml" | sed 's/^/  /'
say "repwatch check --config.file=... ${sources[*]}   (sessions to the same host run one at a time)"
"$REPWATCH" check --config.file="$MX/repwatch.toml" "${sources[@]}" || true
say "one address as JSON: repwatch check --json ... ${sources[2]}"
"$REPWATCH" check --config.file="$MX/repwatch.toml" --json "${sources[2]}" | python3 -m json.tool || true
say "the same catalogue by hand: repwatch classify"
"$REPWATCH" classify 'status=deferred (host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.28 [192.0.2.7] Gmail has detected an unusual rate of unsolicited mail originating from your IP address. 421 4.7.28 To protect our users from spam, mail sent from your IP address has been temporarily rate limited.)'
"$REPWATCH" classify --json '553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.7, because the ip is in Spamhaus'"'"'s list; see https://postmaster.yahooinc.com/error-codes'

say "stopping rbldnsd, unbound, Postfix and the other lab servers"
echo "done: nothing was left running, nothing left the machine."
