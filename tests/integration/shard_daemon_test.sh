#!/usr/bin/env bash
# Sharding with the real binary: rbldnsd lists every address of 198.18.0.0/22
# (two ranges of a /23 each); `repwatch run --once --shard.index=I
# --shard.count=N` runs once per shard, each on its own state_dir, for N = 1, 3
# and 4. The listings each shard stored are the addresses it owns: for every N
# they must cover all 1,024 addresses exactly once, and from 3 to 4 shards only
# the new shard may win addresses, about a quarter of them. Bad shard flags are
# refused with their reason.
#   bash tests/integration/shard_daemon_test.sh /path/to/repwatch
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
mkdir -p "$DATA"
# The RFC 5782 test points (127.0.0.2 listed, 127.0.0.1 not) keep the zone healthy.
cat >"$DATA/shard.zone" <<'ZONE'
127.0.0.2 :127.0.0.2:test point
198.18.0.0/22 :127.0.0.2:every address of the sharded ranges
ZONE
lab_rbldnsd "$DATA" "$DNS_ADDR:$DNS_PORT" shard.test:ip4set:shard.zone

write_config() {  # write_config FILE STATE_DIR
  cat >"$1" <<TOML
[agent]
state_dir = "$2"
interval = "1m"
[dns]
servers = ["$DNS_ADDR:$DNS_PORT"]
[fcrdns]
enabled = false
[[dnsbl]]
zone = "shard.test"
family = "ipv4"
[[ranges]]
name = "a"
cidrs = ["198.18.0.0/23"]
[[ranges]]
name = "b"
cidrs = ["198.18.2.0/23"]
TOML
}

# One `run --once` per shard; owned-N-I.txt lists the addresses shard I of N stored as listed.
run_shards() {
  local n=$1 i state config rc
  for ((i = 0; i < n; i++)); do
    state="$LAB_DIR/state-$n-$i"
    config="$LAB_DIR/repwatch-$n-$i.toml"
    write_config "$config" "$state"
    rc=0
    timeout 120 "$REPWATCH" run --once --config.file="$config" --log.level=error \
      --shard.index="$i" --shard.count="$n" >"$LAB_DIR/run-$n-$i.log" 2>&1 || rc=$?
    lab_check "run --once --shard.index=$i --shard.count=$n exits 0 (rc=$rc)" test "$rc" = 0
    sqlite3 "$state/repwatch.db" \
      "SELECT ip FROM dnsbl_state WHERE zone = 'shard.test' AND status = 'listed' ORDER BY ip" \
      >"$LAB_DIR/owned-$n-$i.txt"
  done
}

for n in 1 3 4; do run_shards "$n"; done

# Every address exactly once for each N; 3 -> 4 moves only to shard 3, ~1/4.
lab_check "shards cover every address exactly once (N = 1, 3, 4); 3 -> 4 moves ~1/4, only to the new shard" \
  python3 - "$LAB_DIR" <<'PY'
import ipaddress, sys
lab = sys.argv[1]
every = {str(ipaddress.ip_address("198.18.0.0") + k) for k in range(1024)}
owner = {}
ok = True
for n in (1, 3, 4):
    seen = {}
    for i in range(n):
        with open(f"{lab}/owned-{n}-{i}.txt") as f:
            ips = f.read().split()
        print(f"  {n} shards: shard {i} owns {len(ips)}")
        for ip in ips:
            seen.setdefault(ip, []).append(i)
    twice = [ip for ip, s in seen.items() if len(s) > 1]
    missing = every - seen.keys()
    extra = seen.keys() - every
    if twice or missing or extra:
        ok = False
        print(f"  {n} shards: {len(missing)} missing, {len(twice)} owned twice, {len(extra)} foreign "
              f"(e.g. {sorted(missing)[:3]} {twice[:3]} {sorted(extra)[:3]})")
    owner[n] = {ip: s[0] for ip, s in seen.items()}
moved = [ip for ip in every if owner[3].get(ip) != owner[4].get(ip)]
wrong = [ip for ip in moved if owner[4].get(ip) != 3]
share = len(moved) / len(every)
print(f"  3 -> 4 shards: {len(moved)} of {len(every)} addresses moved ({share:.1%}), {len(wrong)} not to the new shard")
ok = ok and not wrong and 0.18 < share < 0.32
sys.exit(0 if ok else 1)
PY

# Flags out of range are refused before anything runs.
write_config "$LAB_DIR/repwatch-bad.toml" "$LAB_DIR/state-bad"
rc=0
out=$("$REPWATCH" run --once --config.file="$LAB_DIR/repwatch-bad.toml" --shard.index=3 --shard.count=3 2>&1) || rc=$?
lab_check "--shard.index=3 --shard.count=3 is refused with its reason" \
  test "$rc" != 0 -a "$out" = "--shard.index 3 must be below --shard.count 3"
lab_check "a refused start creates no state" test ! -e "$LAB_DIR/state-bad/repwatch.db"

lab_summary
