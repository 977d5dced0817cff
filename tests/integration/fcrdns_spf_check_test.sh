#!/usr/bin/env bash
# `repwatch check --json` with the fcrdns and spf checks against a real unbound
# serving local-data in a loopback-only namespace: FCrDNS pass / fail / no_ptr
# (NXDOMAIN and NODATA) / temperror (CNAME loop, zones that never answer),
# several PTRs, CNAMEs on both sides (RFC 2317), generic PTR, expected_ptr,
# HELO problems, IPv6; SPF pass via ip4/include/a+CNAME/mx/redirect, fail,
# softfail, neutral, none, permerror (two records, lookup and void limits),
# +all, temperror, a ~10 kB TXT (TCP) and a macro past 253 characters.
# Expectations are derived from the unbound.conf unbound serves (tests/lab/dnsdata.py).
#   bash tests/integration/fcrdns_spf_check_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"
DNSDATA="$LAB_ROOT/dnsdata.py"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
DEAD_ADDR=127.0.0.54               # takes the queries of the "dead" zones, never answers
DEAD_PORT=$(lab_free_port "$DEAD_ADDR")
DATA="$LAB_DIR/dns"

python3 "$DNSDATA" fixture "$DATA" --dns "$DNS_ADDR:$DNS_PORT" \
  --blackhole "$DEAD_ADDR:$DEAD_PORT" --state-dir "$LAB_DIR/state"
mapfile -t targets < <(python3 "$DNSDATA" targets "$DATA")
lab_spawn blackhole python3 "$DNSDATA" blackhole "$DEAD_ADDR:$DEAD_PORT"
lab_unbound "$DATA/unbound.conf" "$DNS_ADDR:$DNS_PORT"
UNBOUND_PID=$LAB_LAST_PID
lab_log "unbound serves the FCrDNS/SPF data on $DNS_ADDR:$DNS_PORT; dead zones go to $DEAD_ADDR:$DEAD_PORT"

# The lab itself first: a broken lab must not look like a broken agent.
lab_check "lab: unbound answers every name as the fixture says" python3 "$DNSDATA" verify-lab "$DATA"

validate_rc=0
"$REPWATCH" validate --config.file="$DATA/repwatch.toml" >"$LAB_DIR/validate.out" 2>&1 || validate_rc=$?
lab_check "repwatch validate accepts the lab config (rc=$validate_rc)" test "$validate_rc" = 0
[[ $validate_rc == 0 ]] || cat "$LAB_DIR/validate.out"

# Timeouts are 500ms x 2 attempts: even the dead zones must not take long.
check_rc=0
t0=$SECONDS
timeout 120 "$REPWATCH" check --config.file="$DATA/repwatch.toml" --json "${targets[@]}" \
  >"$LAB_DIR/check.jsonl" 2>"$LAB_DIR/check.log" || check_rc=$?
took=$((SECONDS - t0))
lab_log "repwatch check (${#targets[@]} addresses): rc=$check_rc in ${took}s, $(wc -l <"$LAB_DIR/check.jsonl") lines"
lab_check "repwatch check --json exits 0 (rc=$check_rc)" test "$check_rc" = 0
lab_check "repwatch check finished within 30s (${took}s)" test "$took" -le 30
lab_check "check --json output matches the DNS data exactly" \
  python3 "$DNSDATA" verify-check "$DATA" <"$LAB_DIR/check.jsonl"
lab_check "check stored nothing in state_dir" test ! -e "$LAB_DIR/state/repwatch.db"
lab_check "unbound is still running" lab_alive "$UNBOUND_PID"

lab_summary
