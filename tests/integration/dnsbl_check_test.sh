#!/usr/bin/env bash
# `repwatch check --json` against real DNSBL zones served by rbldnsd in a
# loopback-only namespace: healthy IPv4/IPv6/dual zones with several codes and
# TXT, an open-resolver answer, a zone listing everything, a parked zone, a zone
# that is not served (REFUSED) and one that drops every query (timeouts).
# Expectations are read back from the very files rbldnsd serves.
#   bash tests/integration/dnsbl_check_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
DATA="$LAB_DIR/zones"

python3 "$LAB_ZONES" fixture "$DATA" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$LAB_DIR/state"
mapfile -t specs < <(python3 "$LAB_ZONES" specs "$DATA")
mapfile -t targets < <(python3 "$LAB_ZONES" targets "$DATA")
lab_rbldnsd "$DATA" "$DNS_ADDR:$DNS_PORT" "${specs[@]}"
lab_log "rbldnsd serves ${#specs[@]} datasets on $DNS_ADDR:$DNS_PORT"

# The lab itself first: a broken lab must not look like a broken agent.
check_dig() {
  local name=$1 want=$2 got
  got=$(dig +short +time=1 +tries=1 @"$DNS_ADDR" -p "$DNS_PORT" "$name" A | sort | tr '\n' ' ')
  [[ $got == "$want" ]] || { echo "  dig $name A: '$got', want '$want'"; return 1; }
}
lab_check "lab: good.test lists 192.0.2.3 with two A records" check_dig 3.2.0.192.good.test "127.0.0.2 127.0.0.4 "
lab_check "lab: good.test does not list 127.0.0.1" check_dig 1.0.0.127.good.test ""
lab_check "lab: openresolver.test answers 127.255.255.254" check_dig 2.0.0.127.openresolver.test "127.255.255.254 "

validate_rc=0
"$REPWATCH" validate --config.file="$DATA/repwatch.toml" >"$LAB_DIR/validate.out" 2>&1 || validate_rc=$?
lab_check "repwatch validate accepts the lab config (rc=$validate_rc)" test "$validate_rc" = 0
[[ $validate_rc == 0 ]] || cat "$LAB_DIR/validate.out"

# check stores nothing: its exit status only says whether it could run.
check_rc=0
timeout 120 "$REPWATCH" check --config.file="$DATA/repwatch.toml" --json "${targets[@]}" \
  >"$LAB_DIR/check.jsonl" 2>"$LAB_DIR/check.log" || check_rc=$?
lab_log "repwatch check ${targets[*]}: rc=$check_rc, $(wc -l <"$LAB_DIR/check.jsonl") lines"
lab_check "repwatch check --json ran (rc=$check_rc is not a crash or timeout)" test "$check_rc" -lt 124
lab_check "check --json output matches the zone data exactly" \
  python3 "$LAB_ZONES" verify-check "$DATA" <"$LAB_DIR/check.jsonl"
lab_check "check stored nothing in state_dir" test ! -e "$LAB_DIR/state/repwatch.db"

lab_summary
