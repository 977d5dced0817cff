#!/usr/bin/env python3
"""Data for the FCrDNS + SPF benchmark (tests/bench/run_fcrdns_spf_bench.sh).

Every address of a /16 (default 198.18.0.0/16, RFC 2544's benchmarking range) gets
a PTR and an A record, served by unbound from local-data (loopback only):

  - most:   PTR mailer-<n>.out.bench.example, whose A is the address (FCrDNS pass)
  - ~1%:    PTR <a>-<b>-<c>-<d>.pool.bench.example, A back (pass, but generic)
  - ~1%:    PTR mailer-<n>.old.bench.example, whose A is in 203.0.113.0/24 (fail)

(<n> is the address's index in the range. The first label is never "mostly
digits", which the agent also counts as generic.)

Two SPF domains, every record with TTL 3600:

  bench.example         v=spf1 ip4:<first half of the range> include: x 3 -all
      _spf.esp1.bench.example   ip4 x 2, a:, mx: (two MX hosts)          ~all
      _spf.esp2.bench.example   ip4 x 2, a: (two addresses), mx: (one)   ~all
      _spf.esp3.bench.example   ip4:<last quarter of the range>, mx:      -all
    -> the first half passes at once (1 DNS question uncached), the last quarter
       passes through esp3 (11 questions, 7 RFC 7208 lookups), the third quarter
       fails (14 questions, 8 lookups). With a per-cycle cache the whole tree is
       14 questions, whatever the number of addresses.
  macro.bench.example   v=spf1 exists:%{i}._spf.bench.example -all
    -> one question per address that no cache can share (the name is the
       address); the exists name is served for the even-indexed addresses only.

  fcrdns_spf_data.py generate DIR --dns ADDR:PORT --state-dir D [--cidr C] [--seed N]
      writes unbound.conf, repwatch-{spf,macro,all}.toml, queries.txt (dnsperf:
      the PTR and A question of every address), bench.json (what was generated)
      and expected.json (per run: the results the state must hold, the DNS cost).
  fcrdns_spf_data.py verify-db DIR RUN STATE.db
      the fcrdns and spf sections the agent stored for every address against
      expected.json; prints the result counts, exit 1 on any difference.

The expectations are not taken from the generator's own bookkeeping: unbound.conf
is read back with tests/lab/dnsdata.py's model of what unbound serves and every
address is judged by dnsdata's FCrDNS and RFC 7208 evaluators; the result counts
must then equal what the generator meant to produce.
"""

import argparse
import ipaddress
import json
import random
import sqlite3
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lab"))
import dnsdata  # noqa: E402  (the lab's unbound model and evaluators, imported, not copied)

TTL = 3600
DOMAIN = "bench.example"
MACRO = "macro.bench.example"
RUNS = {
    # run name -> (fcrdns enabled, spf_domains)
    "spf": (False, [DOMAIN]),
    "macro": (False, [DOMAIN, MACRO]),
    "all": (True, [DOMAIN]),
}


def build(cidr, seed):
    net = ipaddress.ip_network(cidr)
    if net.version != 4 or net.prefixlen > 22:
        sys.exit("--cidr: an IPv4 block of at least /22")
    n_ips = net.num_addresses
    rnd = random.Random(seed)
    picked = rnd.sample(range(n_ips), 2 * round(n_ips * 0.01))
    generic = set(picked[: len(picked) // 2])
    elsewhere = set(picked[len(picked) // 2:])
    records = []

    def add(name, rtype, rdata):
        records.append((name, rtype, rdata))

    for n in range(n_ips):
        ip = net[n]
        rev = ip.reverse_pointer
        if n in generic:
            name = str(ip).replace(".", "-") + ".pool.bench.example"
            add(rev, "PTR", name + ".")
            add(name, "A", str(ip))
        elif n in elsewhere:
            name = f"mailer-{n}.old.bench.example"
            add(rev, "PTR", name + ".")
            add(name, "A", f"203.0.113.{n % 254 + 1}")
        else:
            name = f"mailer-{n}.out.bench.example"
            add(rev, "PTR", name + ".")
            add(name, "A", str(ip))

    first_half = ipaddress.ip_network(f"{net[0]}/{net.prefixlen + 1}")
    last_quarter = ipaddress.ip_network(f"{net[n_ips * 3 // 4]}/{net.prefixlen + 2}")
    spf = {
        DOMAIN: f"v=spf1 ip4:{first_half} include:_spf.esp1.bench.example "
                "include:_spf.esp2.bench.example include:_spf.esp3.bench.example -all",
        "_spf.esp1.bench.example": "v=spf1 ip4:203.0.113.0/25 ip4:198.51.100.0/26 "
                                   "a:smtp.esp1.bench.example mx:esp1.bench.example ~all",
        "_spf.esp2.bench.example": "v=spf1 ip4:198.51.100.64/26 ip4:192.0.2.0/24 "
                                   "a:out.esp2.bench.example mx:esp2.bench.example ~all",
        "_spf.esp3.bench.example": f"v=spf1 ip4:{last_quarter} mx:esp3.bench.example -all",
        MACRO: "v=spf1 exists:%{i}._spf.bench.example -all",
    }
    for name, text in spf.items():
        add(name, "TXT", f'"{text}"')
    add("smtp.esp1.bench.example", "A", "203.0.113.200")
    add("esp1.bench.example", "MX", "10 mx1.esp1.bench.example.")
    add("esp1.bench.example", "MX", "20 mx2.esp1.bench.example.")
    add("mx1.esp1.bench.example", "A", "203.0.113.201")
    add("mx2.esp1.bench.example", "A", "203.0.113.202")
    add("out.esp2.bench.example", "A", "198.51.100.130")
    add("out.esp2.bench.example", "A", "198.51.100.131")
    add("esp2.bench.example", "MX", "10 mx.esp2.bench.example.")
    add("mx.esp2.bench.example", "A", "198.51.100.140")
    add("esp3.bench.example", "MX", "10 mx1.esp3.bench.example.")
    add("esp3.bench.example", "MX", "10 mx2.esp3.bench.example.")
    add("mx1.esp3.bench.example", "A", "192.0.2.201")
    add("mx2.esp3.bench.example", "A", "192.0.2.202")
    exists = [n for n in range(n_ips) if n % 2 == 0]
    for n in exists:
        add(f"{net[n]}._spf.bench.example", "A", "127.0.0.2")

    plan = {
        "cidr": str(net), "seed": seed, "addresses": n_ips,
        "fcrdns": {"pass": n_ips - len(elsewhere), "fail": len(elsewhere), "generic": len(generic)},
        "spf": {
            DOMAIN: {"pass": n_ips // 2 + n_ips // 4, "fail": n_ips // 4},
            MACRO: {"pass": len(exists), "fail": n_ips - len(exists)},
        },
        "spf_records": spf,
        "exists_names": len(exists),
    }
    return net, records, plan


def unbound_conf(records, listen, directory, threads):
    addr, port = listen.rsplit(":", 1)
    out = [
        "# Written by tests/bench/fcrdns_spf_data.py: the FCrDNS/SPF benchmark's unbound.",
        "# Loopback only: every name is local-data under local-zone \".\" static, so nothing",
        "# is ever recursed (no root hints used; the forward-zone below points at a closed",
        "# loopback port in case anything tried), no trust anchor, no remote control.",
        "server:",
        "  verbosity: 1",
        f"  interface: {addr}",
        f"  port: {port}",
        "  do-ip4: yes",
        "  do-ip6: no",
        "  do-udp: yes",
        "  do-tcp: yes",
        f"  num-threads: {threads}",
        "  so-reuseport: yes",
        "  so-rcvbuf: 4m",
        "  so-sndbuf: 4m",
        "  msg-cache-size: 64m",
        "  rrset-cache-size: 128m",
        "  num-queries-per-thread: 4096",
        "  outgoing-range: 8192",
        '  chroot: ""',
        '  username: ""',
        f'  directory: "{directory}"',
        '  pidfile: ""',
        "  use-syslog: no",
        '  logfile: ""',
        '  module-config: "iterator"',
        "  do-not-query-localhost: no",
        "  qname-minimisation: no",
        "  rrset-roundrobin: no",
        "  minimal-responses: yes",
        "  access-control: 127.0.0.0/8 allow",
        '  local-zone: "." static',
    ]
    for name, rtype, rdata in records:
        out.append(f"  local-data: '{name}. {TTL} IN {rtype} {rdata}'")
    out += [
        "remote-control:",
        "  control-enable: no",
        "forward-zone:",
        '  name: "."',
        "  forward-addr: 127.0.0.1@9",
    ]
    return "\n".join(out) + "\n"


def repwatch_toml(run, net, dns, state_dir, in_flight):
    fcrdns, domains = RUNS[run]
    return "\n".join([
        f"# Written by tests/bench/fcrdns_spf_data.py: benchmark run \"{run}\".",
        "[agent]",
        f"state_dir = {json.dumps(state_dir)}",
        'interval = "1h"',
        "",
        "[dns]",
        f"servers = [{json.dumps(dns)}]",
        'timeout = "1s"',
        "attempts = 2",
        f"max_in_flight = {in_flight}",
        "",
        "[fcrdns]",
        f"enabled = {'true' if fcrdns else 'false'}",
        "",
        "[spf]",
        "enabled = true",
        "",
        "[[ranges]]",
        'name = "bench"',
        f"cidrs = [{json.dumps(str(net))}]",
        "spf_domains = [" + ", ".join(json.dumps(d) for d in domains) + "]",
    ]) + "\n"


# ---------------------------------------------------------------------------
# Expectations from unbound.conf, through dnsdata's model and evaluators


class FastModel(dnsdata.Model):
    """dnsdata.Model with an index of empty non-terminals: its lookup scans every
    name for each NXDOMAIN, which is too slow for 32,768 missing exists names."""

    def __init__(self, conf_text):
        super().__init__(conf_text)
        self.parents = set()
        for n in self.names:
            labels = n.split(".")
            for i in range(1, len(labels)):
                self.parents.add(".".join(labels[i:]))

    def lookup(self, name, qtype):
        name = dnsdata.norm(name)
        if name not in self.data:
            return (dnsdata.NODATA if name in self.parents else dnsdata.NXDOMAIN), []
        return super().lookup(name, qtype)


class Counting:
    """Counts the questions an evaluation asks (each one the DNS would see uncached)."""

    def __init__(self, model):
        self.model, self.asked, self.distinct = model, 0, set()

    def follow(self, name, qtype):
        self.asked += 1
        self.distinct.add((dnsdata.norm(name), qtype))
        return self.model.follow(name, qtype)


def expectations(directory, plan):
    model = FastModel((directory / "unbound.conf").read_text())
    net = ipaddress.ip_network(plan["cidr"])
    rng = {"helo": None, "expected_ptr": None}
    fc, spf, cost = {}, {}, {}
    for d in (DOMAIN, MACRO):
        counting = Counting(model)
        per_ip, lookups = {}, Counter()
        for ip in net:
            ev = dnsdata.Spf(counting, ip, f"postmaster@{d}", None)
            result, _why, _ = ev.check(d)
            per_ip[str(ip)] = result
            lookups[ev.lookups] += 1
        spf[d] = per_ip
        cost[d] = {"uncached_questions": counting.asked, "distinct_questions": len(counting.distinct),
                   "rfc7208_lookups_per_ip": {str(k): v for k, v in sorted(lookups.items())}}
    for ip in net:
        e = dnsdata.expect_fcrdns(model, ip, rng)
        fc[str(ip)] = {"result": e["result"], "generic": e["generic"], "ptr": e["ptr"], "confirmed": e["confirmed"]}
    return fc, spf, cost


def counts(fc, spf):
    out = {"fcrdns": dict(Counter(e["result"] for e in fc.values())),
           "spf": {d: dict(Counter(per.values())) for d, per in spf.items()}}
    out["fcrdns"]["generic"] = sum(e["generic"] for e in fc.values())
    return out


def cmd_generate(args):
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    net, records, plan = build(args.cidr, args.seed)
    (out / "unbound.conf").write_text(unbound_conf(records, args.dns, str(out), args.threads))
    for run in RUNS:
        (out / f"repwatch-{run}.toml").write_text(
            repwatch_toml(run, net, args.dns, f"{args.state_dir}/{run}", args.in_flight))
    ptr = {name: rdata.rstrip(".") for name, rtype, rdata in records if rtype == "PTR"}
    with open(out / "queries.txt", "w") as q:
        for ip in net:
            q.write(f"{ip.reverse_pointer} PTR\n{ptr[ip.reverse_pointer]} A\n")
    (out / "bench.json").write_text(json.dumps(plan, indent=1) + "\n")

    fc, spf, cost = expectations(out, plan)
    got = counts(fc, spf)
    want = {"fcrdns": {"pass": plan["fcrdns"]["pass"], "fail": plan["fcrdns"]["fail"],
                       "generic": plan["fcrdns"]["generic"]},
            "spf": plan["spf"]}
    if got != want:
        sys.exit(f"the data does not come out as planned:\n  model: {got}\n  plan:  {want}")
    expected = {"fcrdns": fc, "spf": spf, "cost": cost, "counts": got}
    (out / "expected.json").write_text(json.dumps(expected) + "\n")
    print(f"  {net}: {len(records)} records; FCrDNS {got['fcrdns']}; "
          + "; ".join(f"SPF {d} {c}" for d, c in got["spf"].items()))
    for d, c in cost.items():
        print(f"  {d}: uncached {c['uncached_questions']} questions "
              f"({c['uncached_questions'] / plan['addresses']:.2f} per address), "
              f"{c['distinct_questions']} distinct; RFC 7208 lookups per address {c['rfc7208_lookups_per_ip']}")
    return 0


def cmd_verify_db(args):
    expected = json.loads((Path(args.dir) / "expected.json").read_text())
    fcrdns, domains = RUNS[args.run]
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    rows = db.execute("SELECT ip, range, fcrdns, spf FROM ips").fetchall()
    problems = []
    seen = set()
    got_fc, got_spf = Counter(), {d: Counter() for d in domains}
    generic = 0

    def problem(msg):
        if len(problems) < 20:
            print(f"  {msg}")
        problems.append(msg)

    for ip, rng, fc_text, spf_text in rows:
        seen.add(ip)
        if ip not in expected["fcrdns"]:
            problem(f"{ip}: stored, but not in the range")
            continue
        if fcrdns:
            want = expected["fcrdns"][ip]
            got = json.loads(fc_text) if fc_text else None
            if not isinstance(got, dict):
                problem(f"{ip}: no fcrdns section")
            else:
                got_fc[got.get("result")] += 1
                generic += bool(got.get("generic"))
                for k in ("result", "generic", "ptr", "confirmed"):
                    g = got.get(k)
                    if k == "confirmed" and g == "":
                        g = None
                    if g != want[k]:
                        problem(f"{ip}: fcrdns {k} {g!r}, want {want[k]!r} ({got.get('reason', '')})")
        elif fc_text:
            problem(f"{ip}: an fcrdns section with [fcrdns] disabled")
        got = json.loads(spf_text) if spf_text else None
        if not isinstance(got, list) or [g.get("domain") for g in got] != domains:
            problem(f"{ip}: spf {got!r:.200}, want one result per {domains}")
            continue
        for g in got:
            d = g["domain"]
            got_spf[d][g.get("result")] += 1
            if g.get("result") != expected["spf"][d][ip]:
                problem(f"{ip}: spf {d} {g.get('result')!r} ({g.get('reason')}), want {expected['spf'][d][ip]!r}")
    missing = set(expected["fcrdns"]) - seen
    if missing:
        problem(f"{len(missing)} addresses not stored, e.g. {sorted(missing)[:3]}")
    parts = []
    if fcrdns:
        parts.append("fcrdns " + ", ".join(f"{k} {v}" for k, v in sorted(got_fc.items())) + f", generic {generic}")
    for d in domains:
        parts.append(f"spf {d} " + ", ".join(f"{k} {v}" for k, v in sorted(got_spf[d].items())))
    print("  stored: " + "; ".join(parts))
    if problems:
        print(f"  ({len(problems)} difference(s) from the generated data)")
        return 1
    print(f"  {len(seen)} addresses: equal to the generated data")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--dns", required=True, help="ADDR:PORT unbound listens on")
    g.add_argument("--state-dir", required=True, help="each run's state goes to STATE_DIR/<run>")
    g.add_argument("--cidr", default="198.18.0.0/16")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--threads", type=int, default=1, help="unbound num-threads")
    g.add_argument("--in-flight", type=int, default=100, help="the agent's dns.max_in_flight")
    v = sub.add_parser("verify-db")
    v.add_argument("dir")
    v.add_argument("run", choices=sorted(RUNS))
    v.add_argument("db")
    args = p.parse_args()
    return {"generate": cmd_generate, "verify-db": cmd_verify_db}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
