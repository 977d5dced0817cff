# shellcheck shell=bash
# The loopback lab: helpers that integration tests, the demo and the benchmark
# source to run real servers in a private network namespace that has only
# loopback. Nothing started through these helpers can send a packet off the
# machine: the namespace has no other interface, no route, and its
# /etc/resolv.conf points at 127.0.0.1.
#
#   source tests/lab/lab.sh
#   lab_enter_netns "$@"          # re-executes the script inside the namespace
#   lab_init                      # LAB_DIR, cleanup on exit
#   lab_rbldnsd "$dir" 127.0.0.53:5353 good.test:ip4set:good.ip4set ...
#   lab_postfix "$dir/postfix"    # a Postfix instance of the lab's own, port 25
#
# Every process is started with lab_spawn and stopped by its PID on exit; what
# is left of a process group registered in LAB_PGIDS (Postfix's master and its
# children) is killed after that.

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # used by the scripts that source this file
LAB_ZONES="$LAB_ROOT/labzones.py"
LAB_PIDS=()        # every process lab_spawn started, in start order
LAB_DIR=""         # scratch directory of this run (world-readable for rbldnsd)
LAB_LAST_PID=""    # PID of the process lab_spawn started last
LAB_PGIDS=()       # process groups to clear after the PIDs are stopped (lab_postfix)

lab_log() { printf '[lab] %s\n' "$*" >&2; }

lab_die() {
  printf '[lab] FAIL: %s\n' "$*" >&2
  exit 1
}

# True when the calling script already runs inside the namespace it made.
# The marker names the script, so a test started from inside another lab
# namespace (ctest under tests/lab/netns-run) still gets a namespace of its own.
lab_in_netns() { [[ ${REPWATCH_LAB_NETNS:-} == "$(readlink -f "$0")" ]]; }

# Re-executes the calling script in a new network + mount namespace, unless it
# already runs in one. Root is required: rbldnsd drops privileges to its own
# user, which a user namespace cannot map.
lab_enter_netns() {
  if ! lab_in_netns; then
    [[ $(id -u) == 0 ]] || lab_die "the lab needs root (unshare --net --mount; rbldnsd changes user)"
    command -v unshare >/dev/null || lab_die "unshare not found (util-linux)"
    local script
    script=$(readlink -f "$0")
    REPWATCH_LAB_NETNS=$script exec unshare --net --mount -- bash "$script" "$@"
  fi
  _lab_netns_setup
}

# Brings up loopback, hides the host's resolver and proves the namespace is
# loopback-only before anything runs in it.
_lab_netns_setup() {
  ip link set lo up
  local links
  links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
  [[ $links == "lo " ]] || lab_die "namespace has links other than lo: $links"
  if ip route show default | grep -q . || ip -6 route show default | grep -q .; then
    lab_die "namespace has a default route"
  fi
  # Anything that falls back to the system resolver gets 127.0.0.1, where
  # nothing listens, instead of the host's resolver. A namespace made inside
  # another lab namespace inherits that already (and the unlinked file under
  # the outer bind mount cannot be mounted over).
  [[ $(cat /etc/resolv.conf 2>/dev/null) == "nameserver 127.0.0.1" ]] && return 0
  local resolv
  resolv=$(mktemp /tmp/repwatch-resolv.XXXXXX)
  printf 'nameserver 127.0.0.1\n' >"$resolv"
  chmod 644 "$resolv"
  mount --bind "$resolv" /etc/resolv.conf
  rm -f "$resolv"   # the bind mount keeps the inode alive
}

# Creates LAB_DIR and installs the exit trap. rbldnsd reads its data after
# dropping privileges, so the directory is world-readable.
lab_init() {
  lab_in_netns || lab_die "lab_init outside the lab namespace; call lab_enter_netns first"
  LAB_DIR=$(mktemp -d /tmp/repwatch-lab.XXXXXX)
  chmod 755 "$LAB_DIR"
  trap lab_cleanup EXIT
}

# Stops every process we started (newest first), shows the logs of a failed
# run, and removes LAB_DIR unless REPWATCH_LAB_KEEP=1.
lab_cleanup() {
  local rc=$?
  local i
  for ((i = ${#LAB_PIDS[@]} - 1; i >= 0; i--)); do
    lab_stop "${LAB_PIDS[i]}" >/dev/null 2>&1 || true
  done
  local pgid
  for pgid in "${LAB_PGIDS[@]}"; do
    _lab_kill_group "$pgid" || true
  done
  if [[ $rc != 0 && -n $LAB_DIR && -d $LAB_DIR ]]; then
    local log
    for log in "$LAB_DIR"/*.log; do
      [[ -s $log ]] || continue
      printf '\n----- %s (last 40 lines) -----\n' "${log##*/}" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [[ -n $LAB_DIR && -d $LAB_DIR ]]; then
    if [[ ${REPWATCH_LAB_KEEP:-} == 1 ]]; then
      lab_log "kept $LAB_DIR"
    else
      rm -rf "$LAB_DIR"
    fi
  fi
  exit "$rc"
}

# lab_spawn NAME CMD [ARG...]: runs CMD in the background with its output in
# $LAB_DIR/NAME.log; sets LAB_LAST_PID and remembers the PID for cleanup.
lab_spawn() {
  local name=$1
  shift
  "$@" >"$LAB_DIR/$name.log" 2>&1 &
  LAB_LAST_PID=$!
  LAB_PIDS+=("$LAB_LAST_PID")
}

# lab_stop PID [TIMEOUT_S]: SIGTERM, then SIGKILL after TIMEOUT_S (default 10).
# Returns the process's exit status (a killed process gives 128+signal).
lab_stop() {
  local pid=$1 timeout=${2:-10}
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    lab_log "PID $pid ignored SIGTERM for ${timeout}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# lab_stop_ok PID WHAT: lab_stop with 20 s, recorded as a check that the agent
# exited 0 on SIGTERM (WHAT says when).
lab_stop_ok() {
  local rc=0
  lab_stop "$1" 20 || rc=$?
  lab_check "agent exits 0 on SIGTERM ($2; rc=$rc)" test "$rc" = 0
}

# lab_alive PID: true while the process runs.
lab_alive() { kill -0 "$1" 2>/dev/null; }

# lab_free_port ADDR: prints a port free for both UDP and TCP on ADDR.
lab_free_port() {
  python3 - "$1" <<'PY'
import socket, sys
addr = sys.argv[1]
for _ in range(100):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        t.bind((addr, 0))
        port = t.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((addr, port))
        except OSError:
            continue
    print(port)
    sys.exit(0)
sys.exit("no free port")
PY
}

# lab_rbldnsd DATA_DIR ADDR:PORT ZONE_SPEC...: starts rbldnsd in the foreground
# (-n; -f keeps answering during reloads) on ADDR:PORT with zone specs relative
# to DATA_DIR, and waits until it answers. Sets LAB_LAST_PID.
lab_rbldnsd() {
  local dir=$1 listen=$2
  shift 2
  local addr=${listen%:*} port=${listen##*:}
  # rbldnsd reads the files as user rbldns: make the tree world-readable.
  chmod 755 "$dir"
  find "$dir" -type f -exec chmod 644 {} +
  lab_spawn "rbldnsd-$addr-$port" rbldnsd -n -f -b "$addr/$port" -w "$dir" "$@"
  local pid=$LAB_LAST_PID
  local deadline=$((SECONDS + 20))
  # version.bind answers whatever the zones are, once the data is loaded.
  until dig +short +time=1 +tries=1 @"$addr" -p "$port" version.bind CH TXT >/dev/null 2>&1; do
    lab_alive "$pid" || lab_die "rbldnsd on $listen exited (see rbldnsd-$addr-$port.log)"
    ((SECONDS < deadline)) || lab_die "rbldnsd on $listen did not answer within 20s"
    sleep 0.1
  done
  LAB_LAST_PID=$pid
}

# lab_unbound CONF ADDR:PORT: starts unbound in the foreground (-d, no pidfile
# of its own: -p) with CONF, which must listen on ADDR:PORT and never recurse
# off the machine (local-data only, forward-zone to loopback, no remote
# control), and waits until it answers. Stopped by PID with the rest of the lab.
# Sets LAB_LAST_PID.
lab_unbound() {
  local conf=$1 listen=$2
  local addr=${listen%:*} port=${listen##*:}
  local name="unbound-$addr-$port"
  unbound-checkconf "$conf" >"$LAB_DIR/$name.checkconf.log" 2>&1 ||
    lab_die "unbound-checkconf $conf: $(tail -n 5 "$LAB_DIR/$name.checkconf.log")"
  lab_spawn "$name" unbound -d -p -c "$conf"
  local pid=$LAB_LAST_PID
  local deadline=$((SECONDS + 20))
  # version.server is answered by unbound itself, whatever the configured data.
  until dig +short +time=1 +tries=1 @"$addr" -p "$port" version.server CH TXT 2>/dev/null | grep -q .; do
    lab_alive "$pid" || lab_die "unbound on $listen exited (see $name.log)"
    ((SECONDS < deadline)) || lab_die "unbound on $listen did not answer within 20s"
    sleep 0.1
  done
  LAB_LAST_PID=$pid
}

# lab_postfix CONFIG_DIR: runs the Postfix instance configured in CONFIG_DIR
# (main.cf and master.cf; queue_directory, data_directory and maillog_file must
# lie under LAB_DIR, nothing may chroot) in the foreground (master -c DIR -d)
# and waits until smtpd greets with 220 on port 25 of every inet_interfaces
# address. Postfix binds only addresses an interface holds, so those addresses
# are first added to lo (this namespace's own; 127.0.0.0/8 is local anyway).
# The master runs in a process group of its own (setsid): on SIGTERM it stops
# its children (smtpd, tlsmgr, ...) itself, and lab_cleanup then kills whatever
# is left of that group. master's own output goes to postfix-CONFIG_NAME.log,
# the mail log to maillog_file. Sets LAB_LAST_PID (the master).
lab_postfix() {
  local conf
  conf=$(readlink -f "$1")
  lab_in_netns || lab_die "lab_postfix outside the lab namespace"
  [[ -f $conf/main.cf && -f $conf/master.cf ]] || lab_die "lab_postfix: no main.cf/master.cf in $conf"
  local name="postfix-${conf##*/}" addrs addr
  addrs=$(postconf -c "$conf" -xh inet_interfaces | tr ',' ' ')
  [[ -n ${addrs// /} ]] || lab_die "lab_postfix: $conf has no inet_interfaces"
  for addr in $addrs; do
    [[ $addr == 127.* ]] || lab_die "lab_postfix: inet_interfaces $addr is not a loopback address"
    ip -o addr show dev lo | grep -q " inet $addr/" || ip addr add "$addr/32" dev lo
  done
  postconf -c "$conf" -n >"$LAB_DIR/$name.postconf.out" 2>&1 ||
    lab_die "postconf -c $conf: $(tail -n 5 "$LAB_DIR/$name.postconf.out")"
  lab_spawn "$name" setsid /usr/lib/postfix/sbin/master -c "$conf" -d
  local pid=$LAB_LAST_PID
  LAB_PGIDS+=("$pid")
  # setsid execs the master directly (a background job is no group leader), so
  # the PID is the master's and, once setsid has run, so is its process group.
  local deadline=$((SECONDS + 5))
  until [[ $(ps -o pgid= -p "$pid" | tr -d ' ') == "$pid" ]]; do
    lab_alive "$pid" || lab_die "postfix master exited (see $name.log and the maillog)"
    ((SECONDS < deadline)) || lab_die "postfix master $pid is not a process group leader"
    sleep 0.05
  done
  deadline=$((SECONDS + 20))
  for addr in $addrs; do
    until python3 - "$addr" <<'PY' 2>/dev/null; do
import smtplib, sys
s = smtplib.SMTP(local_hostname="lab.test", timeout=2)
code, _ = s.connect(sys.argv[1], 25)
s.quit()
sys.exit(0 if code == 220 else 1)
PY
      lab_alive "$pid" || lab_die "postfix master exited (see $name.log and the maillog)"
      ((SECONDS < deadline)) || lab_die "postfix on $addr:25 did not greet within 20s"
      sleep 0.1
    done
  done
  LAB_LAST_PID=$pid
}

# _lab_group_alive PGID: true while a process of the group runs (zombies,
# waiting for their parent or init to reap them, do not count).
_lab_group_alive() {
  ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# _lab_kill_group PGID: SIGKILLs what is left of a process group and waits
# (up to 5 s) until nothing of it runs.
_lab_kill_group() {
  local pgid=$1 deadline=$((SECONDS + 5))
  while _lab_group_alive "$pgid"; do
    kill -KILL -- "-$pgid" 2>/dev/null || true
    ((SECONDS < deadline)) || { lab_log "process group $pgid survives SIGKILL"; return 1; }
    sleep 0.1
  done
}

# lab_webhook_receiver NAME ADDR:PORT LOG [RECEIVER_ARG...]: starts
# tests/lab/webhook_receiver.py on ADDR:PORT, logging every request as a JSON
# line to LOG (see its --script / --state / --then), and waits until it
# listens. Sets LAB_LAST_PID.
lab_webhook_receiver() {
  local name=$1 listen=$2 log=$3
  shift 3
  local ready="$LAB_DIR/$name.ready"
  rm -f "$ready"
  lab_spawn "$name" python3 "$LAB_ROOT/webhook_receiver.py" --listen "$listen" --log "$log" \
    --ready-file "$ready" "$@"
  local pid=$LAB_LAST_PID
  local deadline=$((SECONDS + 20))
  until [[ -s $ready ]]; do
    lab_alive "$pid" || lab_die "webhook receiver $name exited (see $name.log)"
    ((SECONDS < deadline)) || lab_die "webhook receiver $name did not listen within 20s"
    sleep 0.05
  done
  LAB_LAST_PID=$pid
}

# lab_http_code URL: prints the HTTP status (000 when nothing answers).
lab_http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true
}

# lab_wait_http URL [TIMEOUT_S] [PID]: waits for a 200 from URL; fails early if
# PID (the server) exits.
lab_wait_http() {
  local url=$1 timeout=${2:-60} pid=${3:-}
  local deadline=$((SECONDS + timeout)) code
  while :; do
    code=$(lab_http_code "$url")
    [[ $code == 200 ]] && return 0
    if [[ -n $pid ]] && ! lab_alive "$pid"; then
      lab_die "server (PID $pid) exited while waiting for $url"
    fi
    ((SECONDS < deadline)) || lab_die "$url did not answer 200 within ${timeout}s (last: $code)"
    sleep 0.2
  done
}

# Test bookkeeping: lab_ok / lab_not_ok print one line per assertion and
# lab_summary prints "N passed, N failed" and fails the script if any failed.
LAB_PASSED=0
LAB_FAILED=0

lab_ok() {
  LAB_PASSED=$((LAB_PASSED + 1))
  printf 'ok - %s\n' "$*"
}

lab_not_ok() {
  LAB_FAILED=$((LAB_FAILED + 1))
  printf 'not ok - %s\n' "$*"
}

# lab_check DESCRIPTION CMD [ARG...]: runs CMD and records pass/fail; its
# output is shown either way (verifiers print only what is wrong).
lab_check() {
  local what=$1
  shift
  if "$@"; then lab_ok "$what"; else lab_not_ok "$what"; fi
}

lab_summary() {
  printf '%s: %d passed, %d failed\n' "${0##*/}" "$LAB_PASSED" "$LAB_FAILED"
  ((LAB_FAILED == 0))
}

# lab_mx_server KIND ADDR:PORT DATA: one of mxdata.py's servers (sentinel, silent,
# tarpit), logging what it sees to DATA/KIND.jsonl; returns once it listens.
lab_mx_server() {
  local kind=$1 listen=$2 data=$3
  lab_spawn "$kind" python3 "$LAB_ROOT/mxdata.py" "serve-$kind" "$listen" --log "$data/$kind.jsonl" \
    --ready-file "$LAB_DIR/$kind.ready"
  local pid=$LAB_LAST_PID deadline=$((SECONDS + 20))
  until [[ -s $LAB_DIR/$kind.ready ]]; do
    lab_alive "$pid" || lab_die "$kind server exited (see $kind.log)"
    ((SECONDS < deadline)) || lab_die "$kind server did not listen within 20s"
    sleep 0.05
  done
}

# lab_mx_receivers DATA: the MX lab's receivers that are not Postfix (the silent
# and the tarpit one), on port 25 of the addresses the fixture's lab.json gives them.
lab_mx_receivers() {
  local data=$1 kind addr
  for kind in silent tarpit; do
    addr=$(python3 -c 'import json, sys
print(next(a for a, k in json.load(open(sys.argv[1]))["services"].items() if k == sys.argv[2]))' \
      "$data/lab.json" "$kind")
    lab_mx_server "$kind" "$addr:25" "$data"
  done
}
