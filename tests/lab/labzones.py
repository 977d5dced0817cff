#!/usr/bin/env python3
"""Zone data for the loopback lab, and the checks that compare repwatch with it.

Writing and checking are kept apart on purpose: the writers (`fixture`, `bench`)
produce rbldnsd data files plus `lab.json` (zones, ranges, targets, expected
zone health); the verifiers read those same data files back with an independent
reader of the rbldnsd syntax, so an expectation can never drift from what
rbldnsd actually serves.

  labzones.py fixture DIR --dns ADDR:PORT --state-dir D [--profile test|demo]
  labzones.py bench DIR --dns ADDR:PORT --state-dir D [--cidr C --zones N --fraction F]
  labzones.py specs DIR                      # rbldnsd zone specs, one per line
  labzones.py targets DIR                    # `repwatch check` targets, one per line
  labzones.py verify-check DIR < check.jsonl # `repwatch check --json` output
  labzones.py verify-ip DIR IP < api.json    # GET /api/v1/ips/{ip}
  labzones.py verify-metrics DIR < metrics   # /metrics
  labzones.py verify-db DIR DB [--dump F] [--before F]  # SQLite dnsbl_state

Verifiers print one line per problem and exit 1 if there is any.
"""

import argparse
import ipaddress
import json
import random
import re
import sqlite3
import sys
from pathlib import Path

REQUESTOR = ipaddress.ip_address("127.0.0.1")  # where the agent's queries come from
HEALTH_VALUES = {"ok", "not_answering", "lists_everything", "error"}

# ---------------------------------------------------------------------------
# Writing data files


def write_file(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(0o644)


def ip4set(default, entries):
    """Lines of an ip4set/ip6trie file. default: (A, TXT or None);
    entries: (net, None | (A, TXT or None)) or ("!", net)."""
    a, txt = default
    lines = [f":{a}:{txt or ''}"]
    for entry in entries:
        if entry[0] == "!":
            lines.append(f"!{entry[1]}")
            continue
        net, value = entry
        if value is None:
            lines.append(net)
        else:
            lines.append(f"{net} :{value[0]}:{value[1] or ''}")
    return lines


def fixture_zones(profile):
    """The lab's zones: (zone, family, health, {file: lines}, [specs])."""
    good_a = ip4set(("127.0.0.2", "Listed in good.test, see https://good.test/lookup?$"), [
        ("127.0.0.2", None),                       # RFC 5782 positive test point
        ("192.0.2.3", None),
        ("192.0.2.5", ("127.0.0.10", "Snowshoe range $")),
        ("192.0.2.12/30", None),
        ("!", "192.0.2.13"),
        ("198.51.100.1", None),
    ])
    good_b = ip4set(("127.0.0.4", None), [         # second dataset: second A record, no TXT
        ("127.0.0.2", None),
        ("192.0.2.3", None),
        ("192.0.2.9", None),
        ("198.51.100.1", None),
    ])
    v6 = ip4set(("127.0.0.2", "Listed in v6.test: $"), [
        ("::ffff:7f00:2", None),                   # IPv6 positive test point
        ("2001:db8::5", None),
        ("2001:db8::8/126", ("127.0.0.3", "Range $")),
        ("!", "2001:db8::9"),
    ])
    dual4 = ip4set(("127.0.0.5", "dual.test v4 $"), [("127.0.0.2", None), ("192.0.2.7", None)])
    dual6 = ip4set(("127.0.0.6", None), [("::ffff:7f00:2", None), ("2001:db8::c", None)])
    everything = ip4set(("127.0.0.2", "Everything is listed"), [("0-255", None)])
    parked = ip4set(("192.0.2.1", "Parked domain"), [("0-255", None)])
    # acl datasets match the *requestor*: the agent is on 127.0.0.1.
    openresolver_acl = ["127.0.0.0/8 :127.255.255.254:Open resolver $ is not allowed"]
    dropped_acl = ["127.0.0.0/8 :ignore"]

    zones = [
        ("good.test", "ipv4", "ok", {"good-a.ip4set": good_a, "good-b.ip4set": good_b},
         ["good.test:ip4set:good-a.ip4set", "good.test:ip4set:good-b.ip4set"]),
        ("v6.test", "ipv6", "ok", {"v6.ip6trie": v6}, ["v6.test:ip6trie:v6.ip6trie"]),
        ("dual.test", "both", "ok", {"dual.ip4set": dual4, "dual.ip6trie": dual6},
         ["dual.test:ip4set:dual.ip4set", "dual.test:ip6trie:dual.ip6trie"]),
        # Real data behind an ACL that answers 127.255.255.254 to every query, as
        # Spamhaus does for open resolvers: the data must never show through.
        ("openresolver.test", "ipv4", "error", {"openresolver.acl": openresolver_acl},
         ["openresolver.test:ip4set:good-a.ip4set", "openresolver.test:acl:openresolver.acl"]),
        ("everything.test", "ipv4", "lists_everything", {"everything.ip4set": everything},
         ["everything.test:ip4set:everything.ip4set"]),
        # Answers outside 127/8 (an expired domain parked on a web host): any
        # health but ok is right.
        ("parked.test", "ipv4", "unhealthy", {"parked.ip4set": parked},
         ["parked.test:ip4set:parked.ip4set"]),
        # Configured in repwatch, not served: rbldnsd answers REFUSED.
        ("absent.test", "both", "not_answering", {}, []),
        # Served, but every query is dropped (a resolver that blocks us): timeouts.
        ("dropped.test", "ipv4", "not_answering", {"dropped.acl": dropped_acl},
         ["dropped.test:ip4set:good-a.ip4set", "dropped.test:acl:dropped.acl"]),
    ]
    if profile == "demo":
        keep = {"good.test", "v6.test", "everything.test", "openresolver.test"}
        zones = [z for z in zones if z[0] in keep]
    return zones


def write_config(path, lab, state_dir, interval, dns_extra):
    out = [
        "# Written by tests/lab/labzones.py: a repwatch config for the loopback lab.",
        "# Its only DNS server is the lab's rbldnsd on 127.0.0.x.",
        "[agent]",
        f'state_dir = "{state_dir}"',
        f'interval = "{interval}"',
        "",
        "[dns]",
        f'servers = ["{lab["dns"]}"]',
        'timeout = "1s"',
        "attempts = 2",
    ]
    out += [f"{k} = {v}" for k, v in dns_extra]
    # rbldnsd serves only the DNSBL zones; reverse DNS and SPF have their own lab
    # (unbound, tests/lab/dnsdata.py).
    out += ["", "[fcrdns]", "enabled = false", "", "[spf]", "enabled = false"]
    for zone in lab["zones"]:
        out += ["", "[[dnsbl]]", f'zone = "{zone["zone"]}"', f'family = "{zone["family"]}"']
    for rng in lab["ranges"]:
        cidrs = ", ".join(f'"{c}"' for c in rng["cidrs"])
        out += ["", "[[ranges]]", f'name = "{rng["name"]}"', f"cidrs = [{cidrs}]"]
    path.write_text("\n".join(out) + "\n")


def write_lab(out, lab, files, args, dns_extra=()):
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    for name, lines in files.items():
        write_file(out / name, lines)
    (out / "lab.json").write_text(json.dumps(lab, indent=1) + "\n")
    write_config(out / "repwatch.toml", lab, args.state_dir, args.interval, dns_extra)
    problems = self_check(out, lab)
    if problems:
        sys.exit("lab data is inconsistent:\n" + "\n".join(problems))


def cmd_fixture(args):
    out = Path(args.dir)
    files, zones = {}, []
    for name, family, health, zone_files, specs in fixture_zones(args.profile):
        files.update(zone_files)
        zones.append({"zone": name, "family": family, "health": health, "specs": specs})
    lab = {
        "dns": args.dns,
        "zones": zones,
        "ranges": [
            {"name": "lab-v4", "cidrs": ["192.0.2.0/28"]},
            {"name": "lab-v4b", "cidrs": ["198.51.100.0/30"]},
            {"name": "lab-v6", "cidrs": ["2001:db8::/124"]},
        ],
        # Whole CIDRs and single addresses, each inside one range.
        "targets": ["192.0.2.0/28", "198.51.100.1", "198.51.100.2", "2001:db8::/124"],
    }
    if args.profile == "demo":
        lab["ranges"] = [r for r in lab["ranges"] if r["name"] != "lab-v4b"]
        lab["targets"] = ["192.0.2.0/28", "2001:db8::/124"]
    write_lab(out, lab, files, args)


def cmd_bench(args):
    """N zones over one CIDR, `fraction` of it listed per zone, deterministic."""
    out = Path(args.dir)
    net = ipaddress.ip_network(args.cidr)
    hosts = net.num_addresses
    files, zones = {}, []
    for i in range(1, args.zones + 1):
        zone = f"bench{i:02d}.test"
        rnd = random.Random(f"repwatch-bench-{i}")
        picks = sorted(rnd.sample(range(hosts), max(1, int(hosts * args.fraction))))
        entries = [("127.0.0.2", None)]  # RFC 5782 positive test point
        for n in picks:
            code = rnd.choice(["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.10"])
            entries.append((str(net.network_address + n), (code, f"{zone} lists $ (code {code})")))
        fname = f"{zone}.ip4set"
        files[fname] = ip4set(("127.0.0.2", "Listed in " + zone), entries)
        zones.append({"zone": zone, "family": "ipv4", "health": "ok",
                      "specs": [f"{zone}:ip4set:{fname}"]})
    # dnsperf's input: the names the agent asks, one "name A" per line.
    out.mkdir(parents=True, exist_ok=True)
    names = [".".join(reversed(str(net.network_address + n).split("."))) for n in range(hosts)]
    with open(out / "queries.txt", "w") as q:
        for zone in zones:
            suffix = "." + zone["zone"] + " A\n"
            q.writelines(name + suffix for name in names)
    lab = {"dns": args.dns, "zones": zones,
           "ranges": [{"name": "bench", "cidrs": [args.cidr]}], "targets": [args.cidr]}
    extra = [tuple(kv.split("=", 1)) for kv in args.dns_extra]
    write_lab(out, lab, files, args, extra)
    listed = sum(len(lines) - 2 for lines in files.values())  # less default line and test point
    print(f"  {len(zones)} zones, {listed} listings, {hosts * len(zones)} names in queries.txt")


# ---------------------------------------------------------------------------
# Reading data files back (the independent side)


def parse_a(value):
    value = value.strip()
    return value if "." in value else "127.0.0." + value


class Dataset:
    """The subset of rbldnsd's ip4set / ip4tset / ip6trie syntax the lab writes."""

    def __init__(self, path):
        self.exact = {}      # address -> (A, TXT template or None)
        self.nets = []       # (network, (A, TXT or None))
        self.excluded = []   # networks
        default = ("127.0.0.2", None)
        for raw in Path(path).read_text().splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith(":") and not line.startswith("::"):  # "::1" is an address
                default = self._value(line, default)
                continue
            if line.startswith("!"):
                self.excluded.append(self._net(line[1:].split()[0]))
                continue
            key, _, rest = line.partition(" ")
            value = self._value(rest.strip(), default) if rest.strip() else default
            net = self._net(key)
            if net.num_addresses == 1:
                self.exact[net.network_address] = value
            else:
                self.nets.append((net, value))
        self.nets.sort(key=lambda nv: nv[0].prefixlen, reverse=True)  # longest prefix first

    @staticmethod
    def _net(key):
        if key == "0-255":
            return ipaddress.ip_network("0.0.0.0/0")
        return ipaddress.ip_network(key, strict=True)

    @staticmethod
    def _value(text, default):
        if not text.startswith(":"):
            return (default[0], text)  # TXT only
        a, sep, txt = text[1:].partition(":")
        if not sep:
            return (parse_a(a), default[1])
        return (parse_a(a), txt or None)

    def lookup(self, ip):
        if any(ip.version == n.version and ip in n for n in self.excluded):
            return None
        if ip in self.exact:
            return self.exact[ip]
        for net, value in self.nets:
            if ip.version == net.version and ip in net:
                return value
        return None


def expand_txt(template, ip):
    """rbldnsd's TXT template: "$" is the address, "$$" a dollar sign."""
    return re.sub(r"\$\$|\$", lambda m: "$" if m.group(0) == "$$" else str(ip), template)


class Lab:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.spec = json.loads((self.dir / "lab.json").read_text())
        self.zones = {z["zone"]: z for z in self.spec["zones"]}
        self.datasets = {}   # zone -> [(type, Dataset)]
        cache = {}
        for z in self.spec["zones"]:
            sets = []
            for spec in z["specs"]:
                _, kind, fname = spec.split(":", 2)
                if fname not in cache:
                    cache[fname] = Dataset(self.dir / fname) if kind != "acl" else None
                sets.append((kind, cache[fname]))
            self.datasets[z["zone"]] = sets
        self.range_of = {}
        self.range_ips = {}
        for r in self.spec["ranges"]:
            ips = [ip for c in r["cidrs"] for ip in ipaddress.ip_network(c)]
            self.range_ips[r["name"]] = ips
            for ip in ips:
                self.range_of[ip] = r["name"]

    def applies(self, zone, ip):
        family = self.zones[zone]["family"]
        return family == "both" or family == f"ipv{ip.version}"

    def healthy(self, zone):
        return self.zones[zone]["health"] == "ok"

    def answer(self, zone, ip):
        """What rbldnsd answers for ip in zone, ignoring ACLs: (codes, txts)."""
        codes, txts = [], []
        for kind, ds in self.datasets[zone]:
            if kind == "acl":
                continue
            hit = ds.lookup(ip)
            if hit:
                codes.append(hit[0])
                if hit[1] is not None:
                    txts.append(expand_txt(hit[1], ip))
        return codes, txts

    def listing(self, zone, ip):
        """Expected (codes, txt) for a healthy zone, or None when clean."""
        codes, txts = self.answer(zone, ip)
        if not codes:
            return None
        return sorted(codes), (txts[0] if txts else "")

    def targets(self):
        seen, out = set(), []
        for t in self.spec["targets"]:
            for ip in ipaddress.ip_network(t) if "/" in t else [ipaddress.ip_address(t)]:
                if ip not in seen:
                    seen.add(ip)
                    out.append(ip)
        return out

    def all_range_ips(self):
        return list(self.range_of)


def self_check(out, lab_spec):
    """The data must mean what lab.json says: healthy zones honour RFC 5782's
    test points, and a listed address has at most one TXT record (repwatch's
    "txt" is one record's strings joined, so several would be ambiguous)."""
    lab = Lab(out)
    problems = []
    points = {4: ("127.0.0.2", "127.0.0.1"), 6: ("::ffff:7f00:2", "::ffff:7f00:1")}
    for z in lab_spec["zones"]:
        if z["health"] != "ok":
            continue
        for version, (pos, neg) in points.items():
            if z["family"] not in ("both", f"ipv{version}"):
                continue
            if not lab.answer(z["zone"], ipaddress.ip_address(pos))[0]:
                problems.append(f"{z['zone']}: positive test point {pos} not listed")
            if lab.answer(z["zone"], ipaddress.ip_address(neg))[0]:
                problems.append(f"{z['zone']}: negative test point {neg} listed")
        if len(lab.range_of) > 4096:
            continue  # the bench writes one TXT per entry by construction
        for ip in lab.range_of:
            if lab.applies(z["zone"], ip) and len(lab.answer(z["zone"], ip)[1]) > 1:
                problems.append(f"{z['zone']}: {ip} would get several TXT records")
    return problems


# ---------------------------------------------------------------------------
# Verifying repwatch


class Problems(list):
    def add(self, msg):
        self.append(msg)

    def finish(self, what):
        for p in self:
            print(f"  {p}")
        if self:
            print(f"  ({len(self)} problem(s) in {what})")
            return 1
        return 0


def check_dnsbl_results(lab, ip, results, where, problems):
    """One IP line's "dnsbl" array against the data."""
    if not isinstance(results, list):
        problems.add(f"{where}: \"dnsbl\" is not a list: {results!r}")
        return
    want_zones = [z for z in lab.zones if lab.applies(z, ip)]
    got_zones = [r.get("zone") for r in results if isinstance(r, dict)]
    if sorted(got_zones) != sorted(want_zones):
        problems.add(f"{where}: zones {sorted(got_zones)} != expected {sorted(want_zones)}")
    for r in results:
        zone = r.get("zone") if isinstance(r, dict) else None
        if zone not in lab.zones or not lab.applies(zone, ip):
            continue
        at = f"{where} zone {zone}"
        status = r.get("status")
        codes = r.get("codes") or []
        meanings = r.get("meanings") or []
        txt = r.get("txt") or ""
        err = r.get("error") or ""
        if not lab.healthy(zone):
            if status != "error":
                problems.add(f"{at}: status {status!r}, expected \"error\" (zone health is "
                             f"{lab.zones[zone]['health']})")
            elif not err:
                problems.add(f"{at}: status error without an \"error\" reason")
            continue
        want = lab.listing(zone, ip)
        if want is None:
            if status != "clean" or codes or txt or err:
                problems.add(f"{at}: expected clean, got status={status!r} codes={codes} "
                             f"txt={txt!r} error={err!r}")
            continue
        want_codes, want_txt = want
        if status != "listed":
            problems.add(f"{at}: status {status!r} error={err!r}, expected listed {want_codes}")
            continue
        if sorted(codes) != want_codes:
            problems.add(f"{at}: codes {sorted(codes)} != expected {want_codes}")
        if len(meanings) != len(codes) or not all(isinstance(m, str) for m in meanings):
            problems.add(f"{at}: meanings {meanings} are not one string per code {codes}")
        if txt != want_txt:
            problems.add(f"{at}: txt {txt!r} != expected {want_txt!r}")
        if err:
            problems.add(f"{at}: listed with an error {err!r}")


def check_ip_line(lab, obj, where, problems):
    try:
        ip = ipaddress.ip_address(obj.get("ip"))
    except (TypeError, ValueError):
        problems.add(f"{where}: bad \"ip\" {obj.get('ip')!r}")
        return None
    if obj.get("range") != lab.range_of.get(ip):
        problems.add(f"{where} {ip}: range {obj.get('range')!r} != {lab.range_of.get(ip)!r}")
    if "dnsbl" not in obj:
        problems.add(f"{where} {ip}: no \"dnsbl\" key")
    else:
        check_dnsbl_results(lab, ip, obj["dnsbl"], f"{where} {ip}", problems)
    return ip


def check_zone_health(lab, zone, health, where, problems):
    want = lab.zones[zone]["health"]
    if health not in HEALTH_VALUES:
        problems.add(f"{where}: zone {zone} health {health!r} is not one of {sorted(HEALTH_VALUES)}")
    elif want == "unhealthy":
        if health == "ok":
            problems.add(f"{where}: zone {zone} health ok, expected anything but ok")
    elif health != want:
        problems.add(f"{where}: zone {zone} health {health!r}, expected {want!r}")


def cmd_verify_check(args):
    lab = Lab(args.dir)
    problems = Problems()
    ips, zones = {}, {}
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(f"line {n}: not JSON ({e}): {line.strip()[:120]}")
            continue
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind == "zone":
            zone = obj.get("zone")
            if zone not in lab.zones:
                problems.add(f"line {n}: zone line for unconfigured zone {zone!r}")
            elif zone in zones:
                problems.add(f"line {n}: second zone line for {zone}")
            else:
                zones[zone] = obj.get("health")
                check_zone_health(lab, zone, obj.get("health"), f"line {n}", problems)
        elif kind == "ip":
            ip = check_ip_line(lab, obj, f"line {n}", problems)
            if ip is not None:
                if ip in ips:
                    problems.add(f"line {n}: second line for {ip} (first on line {ips[ip]})")
                ips[ip] = n
        else:
            problems.add(f"line {n}: unknown kind {kind!r}")
    for zone in lab.zones:
        if zone not in zones:
            problems.add(f"no zone line for {zone}")
    want_ips = lab.targets()
    missing = [str(ip) for ip in want_ips if ip not in ips]
    extra = [str(ip) for ip in ips if ip not in set(want_ips)]
    if missing:
        problems.add(f"no line for {len(missing)} target(s): {missing[:8]}")
    if extra:
        problems.add(f"lines for addresses that are not targets: {extra[:8]}")
    rc = problems.finish("check --json output")
    if rc == 0:
        listed = sum(1 for ip in want_ips for z in lab.zones
                     if lab.applies(z, ip) and lab.healthy(z) and lab.listing(z, ip))
        print(f"  {len(ips)} address lines, {len(zones)} zone lines, {listed} listings: as expected")
    return rc


def cmd_verify_ip(args):
    lab = Lab(args.dir)
    problems = Problems()
    try:
        obj = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        problems.add(f"not JSON: {e}")
        return problems.finish("API answer")
    if not isinstance(obj, dict):
        problems.add(f"not an object: {obj!r}")
    else:
        if obj.get("kind", "ip") != "ip":
            problems.add(f"kind {obj.get('kind')!r}, expected \"ip\"")
        ip = check_ip_line(lab, obj, "api", problems)
        if ip is not None and str(ip) != str(ipaddress.ip_address(args.ip)):
            problems.add(f"asked for {args.ip}, got {ip}")
    return problems.finish(f"/api/v1/ips/{args.ip}")


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text, problems):
    """Prometheus text format -> [(name, {labels}, value)]."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.add(f"unparsable metrics line: {line[:120]}")
            continue
        labels, rest = {}, m.group(2) or ""
        pos = 0
        while pos < len(rest):
            lm = LABEL.match(rest, pos)
            if not lm:
                problems.add(f"unparsable labels: {line[:120]}")
                break
            labels[lm.group(1)] = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                                         lm.group(2))
            pos = lm.end()
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def cmd_verify_metrics(args):
    lab = Lab(args.dir)
    problems = Problems()
    samples = parse_metrics(sys.stdin.read(), problems)
    by_name = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))

    # Per-IP series: exactly the current listings of healthy zones.
    want = set()
    for ip in lab.all_range_ips():
        for zone in lab.zones:
            if lab.applies(zone, ip) and lab.healthy(zone):
                hit = lab.listing(zone, ip)
                for code in hit[0] if hit else []:
                    want.add((str(ip), zone, code, lab.range_of[ip]))
    got = set()
    for labels, value in by_name.get("repwatch_dnsbl_listed", []):
        key = (labels.get("ip"), labels.get("zone"), labels.get("code"), labels.get("range"))
        if value != 1:
            problems.add(f"repwatch_dnsbl_listed{labels} = {value}, expected 1")
        if key in got:
            problems.add(f"repwatch_dnsbl_listed{labels} appears twice")
        got.add(key)
    for key in sorted(want - got):
        problems.add("missing repwatch_dnsbl_listed{ip=%s,zone=%s,code=%s,range=%s}" % key)
    for key in sorted(got - want, key=str):
        problems.add("unexpected repwatch_dnsbl_listed{ip=%s,zone=%s,code=%s,range=%s}" % key)

    # Bounded cardinality: no other series may carry an address.
    listed_ips = {k[0] for k in want}
    for name, series in by_name.items():
        for labels, _ in series:
            if "ip" in labels and name != "repwatch_dnsbl_listed" and labels["ip"] not in listed_ips:
                problems.add(f"{name}{labels}: a per-IP series for an address that is not listed")

    # Listed addresses per (zone, range).
    counts = {}
    for labels, value in by_name.get("repwatch_dnsbl_listed_ips", []):
        counts[(labels.get("zone"), labels.get("range"))] = value
    for zone in lab.zones:
        for rng, ips in lab.range_ips.items():
            family_ips = [ip for ip in ips if lab.applies(zone, ip)]
            n = 0
            if lab.healthy(zone):
                n = sum(1 for ip in family_ips if lab.listing(zone, ip))
            key = (zone, rng)
            if key not in counts:
                if family_ips:
                    problems.add(f"missing repwatch_dnsbl_listed_ips{{zone={zone},range={rng}}} (want {n})")
            elif counts[key] != n:
                problems.add(f"repwatch_dnsbl_listed_ips{{zone={zone},range={rng}}} = {counts[key]:g}, want {n}")
    for key in counts:
        if key[0] not in lab.zones or key[1] not in lab.range_ips:
            problems.add(f"repwatch_dnsbl_listed_ips for unknown zone/range {key}")

    # Lookups that ended in error (not a DESIGN.md name, checked when exported):
    # every address of an unhealthy zone, none of a healthy one.
    for labels, value in by_name.get("repwatch_dnsbl_error_ips", []):
        zone, rng = labels.get("zone"), labels.get("range")
        if zone in lab.zones and rng in lab.range_ips:
            n = 0 if lab.healthy(zone) else sum(1 for ip in lab.range_ips[rng] if lab.applies(zone, ip))
            if value != n:
                problems.add(f"repwatch_dnsbl_error_ips{{zone={zone},range={rng}}} = {value:g}, want {n}")

    # Zone health.
    up = {labels.get("zone"): value for labels, value in by_name.get("repwatch_dnsbl_zone_up", [])}
    for zone in lab.zones:
        want_up = 1 if lab.healthy(zone) else 0
        if zone not in up:
            problems.add(f"missing repwatch_dnsbl_zone_up{{zone={zone}}}")
        elif up[zone] != want_up:
            problems.add(f"repwatch_dnsbl_zone_up{{zone={zone}}} = {up[zone]:g}, want {want_up}")
    for zone in up:
        if zone not in lab.zones:
            problems.add(f"repwatch_dnsbl_zone_up for unconfigured zone {zone!r}")

    # Targets per range.
    targets = {labels.get("range"): value for labels, value in by_name.get("repwatch_targets", [])}
    for rng, ips in lab.range_ips.items():
        if targets.get(rng) != len(ips):
            problems.add(f"repwatch_targets{{range={rng}}} = {targets.get(rng)}, want {len(ips)}")

    build = by_name.get("repwatch_build_info", [])
    if len(build) != 1:
        problems.add(f"repwatch_build_info: {len(build)} series, want 1")
    else:
        labels, value = build[0]
        if value != 1 or not labels.get("version") or not labels.get("revision"):
            problems.add(f"repwatch_build_info{labels} = {value:g}: want version, revision and value 1")

    queries = by_name.get("repwatch_dns_queries_total", [])
    if not queries or sum(v for _, v in queries) <= 0:
        problems.add("repwatch_dns_queries_total missing or zero after a cycle")
    for name in ("repwatch_cycle_duration_seconds", "repwatch_last_cycle_success_timestamp_seconds"):
        if name not in by_name:
            problems.add(f"missing {name}")
    last = by_name.get("repwatch_last_cycle_success_timestamp_seconds", [])
    if last and last[0][1] <= 0:
        problems.add("repwatch_last_cycle_success_timestamp_seconds is 0 after a cycle")
    rc = problems.finish("metrics")
    if rc == 0:
        print(f"  {len(samples)} samples, {len(want)} listing series: as expected")
    return rc


def parse_codes(value):
    if value is None:
        return []
    text = str(value).strip()
    if text.startswith("["):
        return json.loads(text)
    return [c for c in re.split(r"[,\s]+", text) if c]


def cmd_verify_db(args):
    """The listed rows of dnsbl_state against the data; optionally that
    first_seen survived (compared with an earlier --dump)."""
    lab = Lab(args.dir)
    problems = Problems()
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT * FROM dnsbl_state WHERE status = 'listed'").fetchall()
    got = {}
    for row in rows:
        key = (row["ip"], row["zone"])
        got[key] = {"codes": sorted(parse_codes(row["codes"])),
                    "first_seen": row["first_seen"], "last_seen": row["last_seen"]}
    want = {}
    for ip in lab.all_range_ips():
        for zone in lab.zones:
            if lab.applies(zone, ip) and lab.healthy(zone):
                hit = lab.listing(zone, ip)
                if hit:
                    want[(str(ip), zone)] = hit[0]
    for key in sorted(set(want) - set(got)):
        problems.add(f"no listed row for {key}, want codes {want[key]}")
    for key in sorted(set(got) - set(want)):
        problems.add(f"listed row for {key} ({got[key]['codes']}) that the data does not list")
    for key in sorted(set(got) & set(want)):
        if got[key]["codes"] != want[key]:
            problems.add(f"{key}: codes {got[key]['codes']} != {want[key]}")
    if args.before:
        before = {tuple(k.split(" ", 1)): v for k, v in json.loads(Path(args.before).read_text()).items()}
        for key, old in before.items():
            new = got.get(key)
            if new is None:
                problems.add(f"{key}: listed before the restart, not after")
            elif new["first_seen"] != old["first_seen"]:
                problems.add(f"{key}: first_seen {old['first_seen']} became {new['first_seen']}")
            elif new["last_seen"] < old["last_seen"]:
                problems.add(f"{key}: last_seen went back from {old['last_seen']} to {new['last_seen']}")
    if args.dump:
        Path(args.dump).write_text(json.dumps({f"{k[0]} {k[1]}": v for k, v in got.items()}))
    rc = problems.finish(f"{args.db} dnsbl_state")
    if rc == 0:
        print(f"  {len(got)} listed rows: as expected" + (", first_seen kept" if args.before else ""))
    return rc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("fixture", "bench"):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("--dns", required=True, help="ADDR:PORT of the lab's rbldnsd")
        s.add_argument("--state-dir", required=True)
        s.add_argument("--interval", default="1m")
    sub.choices["fixture"].add_argument("--profile", choices=["test", "demo"], default="test")
    b = sub.choices["bench"]
    b.add_argument("--cidr", default="198.18.0.0/16")
    b.add_argument("--zones", type=int, default=20)
    b.add_argument("--fraction", type=float, default=0.01)
    b.add_argument("--dns-extra", action="append", default=[], metavar="KEY=TOML",
                   help="extra [dns] line for the config, e.g. max_in_flight=100")
    for name in ("specs", "targets", "verify-check", "verify-metrics"):
        sub.add_parser(name).add_argument("dir")
    v = sub.add_parser("verify-ip")
    v.add_argument("dir")
    v.add_argument("ip")
    d = sub.add_parser("verify-db")
    d.add_argument("dir")
    d.add_argument("db")
    d.add_argument("--dump")
    d.add_argument("--before")
    args = p.parse_args()

    if args.cmd == "fixture":
        return cmd_fixture(args)
    if args.cmd == "bench":
        return cmd_bench(args)
    if args.cmd in ("specs", "targets"):
        spec = json.loads((Path(args.dir) / "lab.json").read_text())
        if args.cmd == "specs":
            print("\n".join(s for z in spec["zones"] for s in z["specs"]))
        else:
            print("\n".join(spec["targets"]))
        return 0
    return {"verify-check": cmd_verify_check, "verify-ip": cmd_verify_ip,
            "verify-metrics": cmd_verify_metrics, "verify-db": cmd_verify_db}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
