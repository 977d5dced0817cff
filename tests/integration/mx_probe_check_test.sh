#!/usr/bin/env bash
# `repwatch check --json` with the MX probe against real SMTP servers in a
# loopback-only namespace: a Postfix instance whose client access table answers
# each sending address (127.0.1.x) as a receiver would (OK; Spamhaus block;
# Outlook banned IP; Gmail 421 4.7.28 rate limit over three lines; greylisting;
# AOL RTR:), with STARTTLS and a certificate for mx.lab.test only; MX fallback
# past a host that refuses; a host that refuses; one that never greets; a
# tarpit with a slow multi-line banner; and a source that is not local. unbound
# serves the MX/A data. Expectations are derived from the servers' config files
# and the lab is proven first (tests/lab/mxdata.py). The probe must never send
# DATA and must end every session with QUIT (Postfix's own counters say so).
#   bash tests/integration/mx_probe_check_test.sh /path/to/repwatch
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 /path/to/repwatch" >&2; exit 2; }
REPWATCH=$(readlink -f "$1")
# shellcheck source=tests/lab/lab.sh
source "$(dirname "$(readlink -f "$0")")/../lab/lab.sh"
MXDATA="$LAB_ROOT/mxdata.py"

lab_enter_netns "$@"
lab_init
[[ -x $REPWATCH ]] || lab_die "not an executable: $REPWATCH"

DNS_ADDR=127.0.0.53
DNS_PORT=$(lab_free_port "$DNS_ADDR")
DATA="$LAB_DIR/mx"
MAILLOG="$LAB_DIR/postfix-maillog.log"   # in LAB_DIR: shown with the other logs on failure


python3 "$MXDATA" fixture "$DATA" --dns "$DNS_ADDR:$DNS_PORT" --state-dir "$LAB_DIR/state" --maillog "$MAILLOG"
mapfile -t targets < <(python3 "$MXDATA" targets "$DATA")
# Where /etc/resolv.conf points in the namespace: it logs any query, and nothing
# (not Postfix, not the probe) may send one.
lab_mx_server sentinel 127.0.0.1:53 "$DATA"
lab_unbound "$DATA/unbound.conf" "$DNS_ADDR:$DNS_PORT"
UNBOUND_PID=$LAB_LAST_PID
lab_postfix "$DATA/postfix"
POSTFIX_PID=$LAB_LAST_PID
# The servers that are not Postfix: their addresses are in lab.json, port 25.
lab_mx_receivers "$DATA"
lab_log "unbound on $DNS_ADDR:$DNS_PORT; Postfix, silent and tarpit on port 25 of 127.0.0.25-29"

# The lab itself first: a broken lab must not look like a broken agent.
lab_check "lab: every source gets from every receiver what the fixture says" \
  python3 "$MXDATA" verify-lab "$DATA"

validate_rc=0
"$REPWATCH" validate --config.file="$DATA/repwatch.toml" >"$LAB_DIR/validate.out" 2>&1 || validate_rc=$?
lab_check "repwatch validate accepts the lab config (rc=$validate_rc)" test "$validate_rc" = 0
[[ $validate_rc == 0 ]] || cat "$LAB_DIR/validate.out"

# Only the sessions of `repwatch check` count in the servers' logs.
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
postfix_from=$(size "$MAILLOG")
tarpit_from=$(size "$DATA/tarpit.jsonl")
silent_from=$(size "$DATA/silent.jsonl")

# At most one session at a time per MX host: the never-greeting host alone costs
# 6 sources x 1.5 s banner_timeout; everything else runs beside it.
check_rc=0
t0=$SECONDS
timeout 120 "$REPWATCH" check --config.file="$DATA/repwatch.toml" --json "${targets[@]}" \
  >"$LAB_DIR/check.jsonl" 2>"$LAB_DIR/check.log" || check_rc=$?
took=$((SECONDS - t0))
lab_log "repwatch check (${#targets[@]} addresses): rc=$check_rc in ${took}s, $(wc -l <"$LAB_DIR/check.jsonl") lines"
if ((check_rc > 128 && check_rc != 124)); then
  # 141 = SIGPIPE: a write (QUIT) to a connection the server closed, e.g. after its 421.
  lab_log "repwatch check was killed by signal $((check_rc - 128))"
fi
lab_check "repwatch check --json exits 0 (rc=$check_rc)" test "$check_rc" = 0
lab_check "repwatch check finished within 30s (${took}s)" test "$took" -le 30
lab_check "check --json output matches what the servers answer, field by field" \
  python3 "$MXDATA" verify-check "$DATA" <"$LAB_DIR/check.jsonl"
lab_check "the servers saw one session per source and domain, no DATA, each ended with QUIT" \
  python3 "$MXDATA" verify-sessions "$DATA" --postfix-from "$postfix_from" \
  --tarpit-from "$tarpit_from" --silent-from "$silent_from"
lab_check "check stored nothing in state_dir" test ! -e "$LAB_DIR/state/repwatch.db"
lab_check "nothing asked the system resolver (resolv.conf -> 127.0.0.1:53)" test ! -s "$DATA/sentinel.jsonl"
[[ -s $DATA/sentinel.jsonl ]] && head -n 5 "$DATA/sentinel.jsonl"
lab_check "unbound is still running" lab_alive "$UNBOUND_PID"
lab_check "postfix is still running" lab_alive "$POSTFIX_PID"

lab_summary
