#!/usr/bin/env python3
"""DNS data for the FCrDNS and SPF lab, and the checks that compare repwatch with it.

One fixture description (`build_fixture` below: PTR/A/AAAA/CNAME/MX/TXT records,
zones that never answer, ranges) is written out as an unbound config (local-zone /
local-data), a repwatch config and lab.json. The verifiers never use the
description directly: they read unbound.conf back into a small model of what
unbound answers (local-data answers a CNAME without chasing it; names under a
"dead" zone are forwarded to a server that never replies) and derive every
expectation from that model with their own simple FCrDNS and RFC 7208 rules.
So an expectation cannot drift from what the server actually serves.

  dnsdata.py fixture DIR --dns ADDR:PORT --blackhole ADDR:PORT --state-dir D [--interval 1h]
  dnsdata.py targets DIR                      # `repwatch check` targets, one per line
  dnsdata.py blackhole ADDR:PORT              # UDP+TCP DNS server that never answers
  dnsdata.py verify-lab DIR                   # dig every name: does unbound serve the model?
  dnsdata.py expected DIR                     # the expectations, readable
  dnsdata.py verify-check DIR < check.jsonl   # `repwatch check --json` output
  dnsdata.py verify-ip DIR IP < api.json      # GET /api/v1/ips/{ip}
  dnsdata.py verify-metrics DIR < metrics     # /metrics

Verifiers print one line per problem and exit 1 if there is any.
"""

import argparse
import concurrent.futures
import fnmatch
import ipaddress
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

# The DNSBL lab's result bookkeeping and metrics parser serve this lab unchanged.
from labzones import Problems, parse_metrics

# ---------------------------------------------------------------------------
# The fixture description

REV4 = "2.0.192.in-addr.arpa"                  # 192.0.2.0/24 (RFC 6303 default zone: overridden)
REV6 = "0.1.0.0.8.b.d.0.1.0.0.2.ip6.arpa"      # 2001:db8:10::/48
SPF_V4 = "192.0.2.50"
SPF_V6 = "2001:db8:10::50"


def rev_name(ip):
    return ipaddress.ip_address(ip).reverse_pointer


class Fixture:
    def __init__(self):
        self.records = []       # (name, type, rdata) in presentation format, in order
        self.static = [".", REV4, REV6]
        self.dead = []          # transparent zones forwarded to the blackhole
        self.ranges = []
        self.notes = {}         # ip or domain -> what the case is about

    def add(self, name, rtype, rdata):
        self.records.append((name.rstrip(".").lower(), rtype, rdata))

    def ptr(self, ip, *names):
        for n in names:
            self.add(rev_name(ip), "PTR", n + ".")

    def addr(self, name, *ips):
        for ip in ips:
            self.add(name, "AAAA" if ":" in ip else "A", ip)

    def cname(self, name, target):
        self.add(name, "CNAME", target + ".")

    def mx(self, name, pref, host):
        self.add(name, "MX", f"{pref} {host}.")

    def txt(self, name, text):
        """One TXT record; text longer than 255 bytes is split into several strings."""
        parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
        self.add(name, "TXT", " ".join(f'"{p}"' for p in parts))

    def rng(self, name, ips, spf_domains=(), helo=None, expected_ptr=None):
        cidrs = [f"{ip}/{128 if ':' in ip else 32}" for ip, _ in ips]
        self.ranges.append({"name": name, "cidrs": cidrs, "spf_domains": list(spf_domains),
                            "helo": helo, "expected_ptr": expected_ptr})
        for ip, note in ips:
            self.notes[ip] = note


def build_fixture():
    f = Fixture()
    f.dead = ["dead.example", rev_name("192.0.2.10")]

    # --- FCrDNS, default HELO (= the PTR name) ------------------------------------
    f.ptr("192.0.2.1", "alpha.plain.example")
    f.addr("alpha.plain.example", "192.0.2.1")
    f.ptr("192.0.2.2", "bravo.plain.example")
    f.addr("bravo.plain.example", "192.0.2.202")                 # somebody else's address
    # 192.0.2.3: no PTR at all (NXDOMAIN)
    f.txt(rev_name("192.0.2.4"), "the name exists, without a PTR")  # NODATA
    f.ptr("192.0.2.6", "charlie.plain.example")                  # forward CNAME chain, 2 hops
    f.cname("charlie.plain.example", "alias.charlie.plain.example")
    f.cname("alias.charlie.plain.example", "real.charlie.plain.example")
    f.addr("real.charlie.plain.example", "192.0.2.6")
    f.ptr("192.0.2.7", "192-0-2-7.dyn.isp.example")              # generic, but confirms
    f.addr("192-0-2-7.dyn.isp.example", "192.0.2.7")
    # RFC 2317 classless delegation: the PTR lives behind a CNAME.
    f.cname(rev_name("192.0.2.8"), "8.0-15." + REV4)
    f.add("8.0-15." + REV4, "PTR", "echo.plain.example.")
    f.addr("echo.plain.example", "192.0.2.8")
    # A CNAME loop on the reverse side.
    f.cname(rev_name("192.0.2.9"), "9.loop." + REV4)
    f.cname("9.loop." + REV4, rev_name("192.0.2.9"))
    # 192.0.2.10: its reverse name sits in a dead zone (PTR lookup times out).
    f.ptr("192.0.2.11", "foxtrot.dead.example")                  # forward lookup times out
    f.ptr("192.0.2.13", "golf.plain.example")                    # forward NXDOMAIN
    f.ptr("192.0.2.20", "mailhost")                              # HELO (= PTR) not an FQDN
    f.addr("mailhost", "192.0.2.20")
    f.rng("plain", [
        ("192.0.2.1", "pass"),
        ("192.0.2.2", "fail: PTR name resolves to another address"),
        ("192.0.2.3", "no_ptr: NXDOMAIN"),
        ("192.0.2.4", "no_ptr: NODATA (the name exists, no PTR)"),
        ("192.0.2.6", "pass through a forward CNAME chain"),
        ("192.0.2.7", "generic PTR that confirms"),
        ("192.0.2.8", "pass through an RFC 2317 CNAME on the reverse side"),
        ("192.0.2.9", "temperror: CNAME loop on the reverse side"),
        ("192.0.2.10", "temperror: the reverse zone never answers"),
        ("192.0.2.11", "temperror: the PTR name's zone never answers"),
        ("192.0.2.13", "fail: PTR name does not exist"),
        ("192.0.2.20", "pass, but HELO (= PTR) is a single label"),
    ], spf_domains=["cidr.spf.example"])

    # --- several PTR names ------------------------------------------------------
    f.ptr("192.0.2.5", "one.multi.example", "two.multi.example")
    f.addr("one.multi.example", "192.0.2.205")
    f.addr("two.multi.example", "192.0.2.5")
    f.ptr("192.0.2.12", "slow.dead.example", "three.multi.example")
    f.addr("three.multi.example", "192.0.2.12")
    f.rng("multi", [
        ("192.0.2.5", "two PTRs, only the second confirms"),
        ("192.0.2.12", "two PTRs, the first times out, the second confirms"),
    ], helo="two.multi.example")

    # --- expected_ptr, and a "{ptr}" HELO ---------------------------------------------
    f.ptr("192.0.2.16", "mta.out.acme.example")
    f.addr("mta.out.acme.example", "192.0.2.16")
    f.ptr("192.0.2.17", "smtp.acme.example")
    f.addr("smtp.acme.example", "192.0.2.17")
    f.rng("expect", [
        ("192.0.2.16", "PTR matches expected_ptr"),
        ("192.0.2.17", "PTR does not match expected_ptr"),
    ], helo="{ptr}", expected_ptr="*.out.acme.example")

    # --- HELO cases: FCrDNS passes, the configured HELO does not ----------------------
    for ip, ptr, helo, rng, note in [
        ("192.0.2.21", "india.helo.example", "elsewhere.helo.example", "helo-elsewhere",
         "HELO resolves to another address"),
        ("192.0.2.22", "kilo.helo.example", "juliet.helo.example", "helo-mismatch",
         "HELO resolves to the IP but is not its PTR name"),
        ("192.0.2.23", "lima.helo.example", "missing.helo.example", "helo-missing",
         "HELO does not exist"),
        ("192.0.2.24", "mike.helo.example", "mail.dead.example", "helo-dead",
         "HELO lookup times out"),
    ]:
        f.ptr(ip, ptr)
        f.addr(ptr, ip)
        f.rng(rng, [(ip, note)], helo=helo)
    f.addr("elsewhere.helo.example", "192.0.2.201")
    f.addr("juliet.helo.example", "192.0.2.22")

    # --- IPv6 ---------------------------------------------------------------------
    f.ptr("2001:db8:10::25", "mail.v6.example")
    f.addr("mail.v6.example", "2001:db8:10::25")
    f.ptr("2001:db8:10::26", "bad.v6.example")
    f.addr("bad.v6.example", "2001:db8:10::99", "192.0.2.26")
    f.rng("v6", [
        ("2001:db8:10::25", "IPv6 pass (ip6.arpa nibbles, AAAA)"),
        ("2001:db8:10::26", "IPv6 fail (AAAA is another address)"),
        ("2001:db8:10::27", "IPv6 no_ptr"),
    ])

    # --- SPF ---------------------------------------------------------------------
    f.ptr(SPF_V4, "relay.spf.example")
    f.ptr(SPF_V6, "relay.spf.example")
    f.addr("relay.spf.example", SPF_V4, SPF_V6)
    domains = []

    def spf(domain, record, note):
        domains.append(domain)
        f.notes[domain] = note
        if record is not None:
            f.txt(domain, record)

    spf("cidr.spf.example", "v=spf1 ip4:192.0.2.48/29 ip6:2001:db8:10::/64 -all", "pass via ip4/ip6 CIDR")
    spf("include.spf.example", "v=spf1 include:target.include.spf.example -all", "pass via include")
    f.txt("target.include.spf.example", f"v=spf1 ip4:{SPF_V4} ip6:{SPF_V6} -all")
    spf("acname.spf.example", "v=spf1 a:www.acname.spf.example -all", "pass via a: with a CNAME")
    f.cname("www.acname.spf.example", "real.acname.spf.example")
    f.addr("real.acname.spf.example", SPF_V4, SPF_V6)
    spf("mx.spf.example", "v=spf1 mx -all", "pass via mx")
    f.mx("mx.spf.example", 10, "mx1.mx.spf.example")
    f.mx("mx.spf.example", 20, "mx2.mx.spf.example")
    f.addr("mx1.mx.spf.example", "198.51.100.25")
    f.addr("mx2.mx.spf.example", SPF_V4, SPF_V6)
    spf("redirect.spf.example", "v=spf1 redirect=cidr.spf.example", "pass via redirect")
    spf("fail.spf.example", "v=spf1 ip4:198.51.100.0/24 -all", "fail (-all)")
    spf("softfail.spf.example", "v=spf1 ip4:198.51.100.0/24 ~all", "softfail (~all)")
    spf("neutral.spf.example", "v=spf1 ip4:198.51.100.0/24 ?all", "neutral (?all)")
    spf("none.spf.example", None, "none (a TXT record, but no SPF)")
    f.txt("none.spf.example", "site-verification=abcdef")
    spf("two.spf.example", "v=spf1 -all", "permerror: two SPF records")
    f.txt("two.spf.example", f"v=spf1 ip4:{SPF_V4} -all")
    # 11 nested includes; the last would pass if the limit were not enforced.
    spf("limit.spf.example", "v=spf1 include:l1.limit.spf.example -all",
        "permerror: more than 10 DNS lookups")
    for i in range(1, 11):
        f.txt(f"l{i}.limit.spf.example", f"v=spf1 include:l{i + 1}.limit.spf.example -all")
    f.txt("l11.limit.spf.example", f"v=spf1 ip4:{SPF_V4} ip6:{SPF_V6} -all")
    spf("void.spf.example", "v=spf1 a:nx1.void.spf.example a:nx2.void.spf.example "
        f"a:nx3.void.spf.example ip4:{SPF_V4} ip6:{SPF_V6} -all", "permerror: 3 void lookups")
    spf("wide.spf.example", "v=spf1 +all", "pass, permissive +all")
    spf("widecidr.spf.example", "v=spf1 ip4:0.0.0.0/0 ip6:::/0 -all", "pass, permissive /0 CIDRs")
    spf("spf.dead.example", None, "temperror: the TXT lookup times out")
    # ~10 kB: 700 foreign ip4 terms, then ours. Strings are cut every 255 bytes,
    # mid-term, so only joining them without a separator gives the right record.
    big = "v=spf1 " + " ".join(f"ip4:10.{i // 250}.{i % 250}.1" for i in range(700))
    spf("big.spf.example", big + f" ip4:{SPF_V4} ip6:{SPF_V6} -all",
        "~10 kB TXT in 255-byte strings (TCP): pass at the end")
    # %{i} four times: 255+ characters for IPv6, so RFC 7208 7.3 truncates the name
    # from the left to 253; the truncated name exists (for IPv6 only).
    spf("macro.spf.example", "v=spf1 exists:%{i}.%{i}.%{i}.%{i}.mac.spf.example -all",
        "macro expanding past 253 characters (IPv6)")
    nibbles = ".".join(ipaddress.ip_address(SPF_V6).exploded.replace(":", ""))
    long6 = ".".join([nibbles] * 4)
    f.addr(truncate_name(long6 + ".mac.spf.example"), "127.0.0.2")

    f.rng("spf", [(SPF_V4, "every SPF domain, IPv4"), (SPF_V6, "every SPF domain, IPv6")],
          spf_domains=domains)
    return f


def truncate_name(name):
    """RFC 7208 7.3: drop labels from the left until the name fits in 253 characters."""
    while len(name) > 253:
        name = name.split(".", 1)[1]
    return name


# Results the verifier accepts besides the RFC result, for records that are bad
# data rather than a plain policy (the brief: "permerror or whatever the RFC implies").
ALSO_ACCEPTED = {"big.spf.example": {"permerror"}, "macro.spf.example": {"permerror"}}

# ---------------------------------------------------------------------------
# Writing


def unbound_server(listen, directory):
    """The "server:" clause every lab unbound shares: loopback only, no chroot, no
    user change, iterator only, answers to 127/8 (mxdata.py uses it too)."""
    addr, port = listen.rsplit(":", 1)
    return [
        "server:",
        "  verbosity: 1",
        f"  interface: {addr}",
        f"  port: {port}",
        "  do-ip4: yes",
        "  do-ip6: no",
        "  do-udp: yes",
        "  do-tcp: yes",
        "  num-threads: 1",
        '  chroot: ""',
        '  username: ""',
        f'  directory: "{directory}"',
        f'  pidfile: "{directory}/unbound.pid"',
        "  use-syslog: no",
        '  logfile: ""',
        '  module-config: "iterator"',
        "  do-not-query-localhost: no",
        "  qname-minimisation: no",
        "  rrset-roundrobin: no",
        "  access-control: 127.0.0.0/8 allow",
    ]


def unbound_conf(f, listen, blackhole, directory):
    bh_addr, bh_port = blackhole.rsplit(":", 1)
    out = [
        "# Written by tests/lab/dnsdata.py: unbound for the FCrDNS/SPF lab, loopback only.",
        "# Everything is local-data under local-zone \".\" static; the few \"dead\" zones are",
        "# transparent and forwarded to a loopback server that never answers. No root hints",
        "# are ever used (forward-zone \".\"), no trust anchor, no remote control.",
    ] + unbound_server(listen, directory)
    for z in f.static:
        out.append(f'  local-zone: "{z.rstrip(".")}." static' if z != "." else '  local-zone: "." static')
    for z in f.dead:
        out.append(f'  local-zone: "{z}." transparent')
    for name, rtype, rdata in f.records:
        out.append(f"  local-data: '{name}. 300 IN {rtype} {rdata}'")
    out += [
        "remote-control:",
        "  control-enable: no",
        "forward-zone:",
        '  name: "."',
        f"  forward-addr: {bh_addr}@{bh_port}",
    ]
    return "\n".join(out) + "\n"


def toml_str(s):
    return json.dumps(s)


def repwatch_toml(f, dns, state_dir, interval):
    out = [
        "# Written by tests/lab/dnsdata.py: FCrDNS and SPF against the lab's unbound.",
        "[agent]",
        f"state_dir = {toml_str(state_dir)}",
        f"interval = {toml_str(interval)}",
        "",
        "[dns]",
        f"servers = [{toml_str(dns)}]",
        'timeout = "500ms"',
        "attempts = 2",
        "",
        "[fcrdns]",
        "enabled = true",
        "",
        "[spf]",
        "enabled = true",
    ]
    for r in f.ranges:
        out += ["", "[[ranges]]", f"name = {toml_str(r['name'])}",
                "cidrs = [" + ", ".join(toml_str(c) for c in r["cidrs"]) + "]"]
        if r["spf_domains"]:
            out.append("spf_domains = [" + ", ".join(toml_str(d) for d in r["spf_domains"]) + "]")
        if r["helo"]:
            out.append(f"helo = {toml_str(r['helo'])}")
        if r["expected_ptr"]:
            out.append(f"expected_ptr = {toml_str(r['expected_ptr'])}")
    return "\n".join(out) + "\n"


def cmd_fixture(args):
    f = build_fixture()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "unbound.conf").write_text(unbound_conf(f, args.dns, args.blackhole, str(out)))
    (out / "repwatch.toml").write_text(repwatch_toml(f, args.dns, args.state_dir, args.interval))
    lab = {"dns": args.dns, "blackhole": args.blackhole, "ranges": f.ranges, "notes": f.notes}
    (out / "lab.json").write_text(json.dumps(lab, indent=1) + "\n")
    lab = Lab(out)
    problems = lab.self_check()
    if problems:
        sys.exit("lab data is inconsistent:\n" + "\n".join("  " + p for p in problems))
    return 0


# ---------------------------------------------------------------------------
# Reading unbound.conf back: a model of what unbound answers

TIMEOUT, NXDOMAIN, NODATA, OK, LOOP = "timeout", "nxdomain", "nodata", "ok", "loop"
MAX_CNAME_HOPS = 8


class Model:
    def __init__(self, conf_text):
        self.zones = {}     # zone name ("" = root) -> type
        self.data = {}      # name -> [(type, rdata)] in file order
        for line in conf_text.splitlines():
            line = line.strip()
            if line.startswith("local-zone:"):
                name, ztype = shlex.split(line[len("local-zone:"):])
                self.zones[norm(name)] = ztype
            elif line.startswith("local-data:"):
                (rr,) = shlex.split(line[len("local-data:"):])
                name, _ttl, _cls, rtype, rdata = rr.split(None, 4)
                self.data.setdefault(norm(name), []).append((rtype.upper(), rdata))
        self.names = set(self.data)

    def zone_of(self, name):
        labels = name.split(".") if name else []
        for i in range(len(labels) + 1):
            z = ".".join(labels[i:])
            if z in self.zones:
                return z, self.zones[z]
        return "", "static"

    def lookup(self, name, qtype):
        """One question, as unbound answers it: (status, [rdata]) or ("cname", target)."""
        name = norm(name)
        _, ztype = self.zone_of(name)
        if ztype == "transparent" and name not in self.data:
            return TIMEOUT, []
        rrs = self.data.get(name)
        if rrs is None:
            if any(n.endswith("." + name) for n in self.names):
                return NODATA, []     # empty non-terminal
            return NXDOMAIN, []
        cn = [r for t, r in rrs if t == "CNAME"]
        if cn and qtype != "CNAME":
            return "cname", [norm(cn[0])]
        got = [parse_rdata(t, r) for t, r in rrs if t == qtype]
        return (OK, got) if got else (NODATA, [])

    def follow(self, name, qtype):
        """What the agent sees after following CNAMEs itself: (status, [rdata])."""
        seen = [norm(name)]
        cur = seen[0]
        for _ in range(MAX_CNAME_HOPS + 1):
            status, rr = self.lookup(cur, qtype)
            if status != "cname":
                return status, rr
            cur = rr[0]
            if cur in seen:
                return LOOP, []
            seen.append(cur)
        return LOOP, []


def norm(name):
    return name.strip().rstrip(".").lower()


def parse_rdata(rtype, rdata):
    if rtype in ("A", "AAAA"):
        return ipaddress.ip_address(rdata.strip())
    if rtype in ("PTR", "CNAME"):
        return norm(rdata)
    if rtype == "MX":
        pref, host = rdata.split()
        return (int(pref), norm(host))
    if rtype == "TXT":
        return re.findall(r'"((?:[^"\\]|\\.)*)"', rdata)   # the record's strings
    return rdata


# ---------------------------------------------------------------------------
# Expectations: FCrDNS


GENERIC_WORDS = ("dynamic|dyn|dynip|dhcp|pool|dsl|adsl|xdsl|ppp|pppoe|pptp|cable|catv|broadband|"
                 "bredband|dial-?up|client|customer|user|homeuser|nat|gprs|cdma|wifi|fbx|kabel|"
                 "static|unused-addr|in-addr")
GENERIC_RE = re.compile(rf"(?:^|[.-])(?:{GENERIC_WORDS})(?:[.-]|$)|(?:{GENERIC_WORDS})[.-]?\d|"
                        rf"\d[.-]?(?:{GENERIC_WORDS})|host\d|ip-\d")


def generic_reason(name, ip):
    if ip.version == 4:
        o = str(ip).split(".")
        forms = [sep.join(x) for sep in ("-", ".", "") for x in (o, o[::-1])]
        forms.append("".join(f"{int(x):02x}" for x in o))
        for form in forms:
            if form in name:
                return f"contains the address ({form})"
    m = GENERIC_RE.search(name)
    if m:
        return f"dynamic keyword ({m.group(0)})"
    return None


def is_fqdn(name):
    try:
        ipaddress.ip_address(name.strip("[]"))
        return False
    except ValueError:
        pass
    labels = [x for x in name.split(".") if x]
    return len(labels) >= 2 and name != "localhost" and not name.endswith(".localhost")


def expect_fcrdns(model, ip, rng):
    qtype = "A" if ip.version == 4 else "AAAA"
    e = {"ptr": [], "confirmed": None, "generic": False}
    status, names = model.follow(ip.reverse_pointer, "PTR")
    if status == LOOP:
        e.update(result="temperror", reason_has="loop")
    elif status == TIMEOUT:
        e.update(result="temperror")
    elif status in (NXDOMAIN, NODATA):
        e.update(result="no_ptr")
    else:
        names = names[:10]
        e["ptr"] = names
        failed = False
        for n in names:
            st, addrs = model.follow(n, qtype)
            if st == OK and ip in addrs:
                e["confirmed"] = n
                break
            failed |= st in (TIMEOUT, LOOP)
        e["result"] = "pass" if e["confirmed"] else ("temperror" if failed else "fail")
        reasons = [generic_reason(n, ip) for n in names]
        e["generic"] = any(reasons)
        e["generic_any_of"] = [r for r in reasons if r]
    if rng.get("expected_ptr"):
        pat = rng["expected_ptr"]
        e["expected_ptr"] = {"pattern": pat, "ok": any(glob_match(pat, n) for n in e["ptr"])}
    helo = rng.get("helo")
    if helo and "{ptr}" in helo:
        helo = helo.replace("{ptr}", e["ptr"][0]) if e["ptr"] else None
    elif not helo:
        helo = e["ptr"][0] if e["ptr"] else None
    if helo:
        problems = []
        if not is_fqdn(helo):
            problems.append("not_fqdn")
        st, addrs = model.follow(helo, qtype)
        if st in (TIMEOUT, LOOP):
            problems.append("temperror")
        elif st in (NXDOMAIN, NODATA):
            problems.append("no_address")
        elif ip not in addrs:
            problems.append("wrong_address")
        if helo.lower() not in e["ptr"]:
            problems.append("ptr_mismatch")
        e["helo"] = {"name": helo, "ok": not problems, "problems": problems}
    return e


def glob_match(pattern, name):
    """'*' matches one or more characters; nothing else is special."""
    rx = "".join(".+" if c == "*" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(rx, name.lower()) is not None


# ---------------------------------------------------------------------------
# Expectations: SPF (RFC 7208), a small independent evaluator over the model


class SpfError(Exception):
    def __init__(self, result, reason):
        super().__init__(reason)
        self.result, self.reason = result, reason


MECHS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}


class Spf:
    def __init__(self, model, ip, sender, helo):
        self.model, self.ip, self.sender, self.helo = model, ip, sender, helo
        self.lookups = 0
        self.voids = 0
        self.permissive = []    # (term, domain) met while evaluating

    def check(self, domain):
        try:
            return self.check_host(domain) + (None,)
        except SpfError as e:
            return e.result, e.reason, e.reason

    def count(self):
        self.lookups += 1
        if self.lookups > 10:
            raise SpfError("permerror", "more than 10 DNS lookups")

    def query(self, name, qtype):
        st, rr = self.model.follow(name, qtype)
        if st in (TIMEOUT, LOOP):
            raise SpfError("temperror", f"{qtype} {name}: timeout")
        if st in (NXDOMAIN, NODATA):
            self.voids += 1
            if self.voids > 2:
                raise SpfError("permerror", "more than 2 void lookups")
        return rr

    def record(self, domain):
        st, rr = self.model.follow(domain, "TXT")
        if st in (TIMEOUT, LOOP):
            raise SpfError("temperror", "TXT lookup failed")
        recs = ["".join(strings) for strings in rr] if st == OK else []
        spf = [r for r in recs if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
        if len(spf) > 1:
            raise SpfError("permerror", "two SPF records")
        return spf[0] if spf else None

    def check_host(self, domain):
        rec = self.record(domain)
        if rec is None:
            return "none", "no SPF record"
        terms = rec.split()[1:]
        mechs, redirect = [], None
        for t in terms:
            m = re.fullmatch(r"([+\-~?]?)([a-z0-9]+)([:/].*)?", t, re.I)
            if "=" in t and not (m and m.group(2).lower() in MECHS):
                key, val = t.split("=", 1)
                if key.lower() == "redirect":
                    redirect = val
                continue
            if not m or m.group(2).lower() not in MECHS:
                raise SpfError("permerror", f"unknown term {t}")
            mechs.append((m.group(1) or "+", m.group(2).lower(), (m.group(3) or ""), t))
        for q, mech, arg, term in mechs:
            if permissive_term(q, mech, arg):
                self.permissive.append((term, domain))
        for q, mech, arg, term in mechs:
            if self.match(mech, arg, domain):
                return {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}[q], f"matched {term}"
        if redirect:
            self.count()
            target = self.expand(redirect, domain)
            r = self.check_host(target)
            if r[0] == "none":
                raise SpfError("permerror", "redirect target has no SPF record")
            return r
        return "neutral", "no match"

    def match(self, mech, arg, domain):
        ip = self.ip
        if mech == "all":
            return True
        if mech in ("ip4", "ip6"):
            net = ipaddress.ip_network(arg[1:], strict=False)
            return ip.version == net.version and ip in net
        if mech == "include":
            self.count()
            r, why = self.check_host(self.expand(arg[1:], domain))
            if r == "pass":
                return True
            if r in ("fail", "softfail", "neutral"):
                return False
            if r == "temperror":
                raise SpfError("temperror", why)
            raise SpfError("permerror", f"include: {r}")
        if mech in ("a", "mx"):
            self.count()
            spec, _, cidr = arg.partition("/")
            target = self.expand(spec[1:], domain) if spec.startswith(":") else domain
            qtype = "A" if ip.version == 4 else "AAAA"
            hosts = [target]
            if mech == "mx":
                hosts = [h for _, h in sorted(self.query(target, "MX"), key=lambda x: x[0])]
                if len(hosts) > 10:
                    raise SpfError("permerror", "more than 10 MX names")
            for h in hosts:
                if any(a == ip for a in self.query(h, qtype)):
                    return True
            return False
        if mech == "exists":
            self.count()
            return bool(self.query(self.expand(arg[1:], domain), "A"))
        raise SpfError("permerror", f"{mech} not modelled")

    def expand(self, spec, domain):
        def letter(c):
            local, _, dom = self.sender.partition("@")
            if c == "i":
                if self.ip.version == 4:
                    return str(self.ip)
                return ".".join(self.ip.exploded.replace(":", ""))
            return {"s": self.sender, "l": local, "o": dom, "d": domain, "h": self.helo or "",
                    "v": "in-addr" if self.ip.version == 4 else "ip6"}[c]

        def macro(m):
            if m.group(0) in ("%%", "%_", "%-"):
                return {"%%": "%", "%_": " ", "%-": "%20"}[m.group(0)]
            c, digits, rev, delims = m.group(1).lower(), m.group(2), m.group(3), m.group(4) or "."
            parts = re.split("[" + re.escape(delims) + "]", letter(c))
            if rev:
                parts.reverse()
            if digits:
                parts = parts[-int(digits):]
            return ".".join(parts)

        return truncate_name(re.sub(r"%\{([a-zA-Z])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-", macro, spec))


def permissive_term(q, mech, arg):
    if q != "+":
        return False
    return mech == "all" or (mech in ("ip4", "ip6") and arg.endswith("/0"))


def expect_spf(model, ip, rng, helo):
    out = []
    for d in rng["spf_domains"]:
        ev = Spf(model, ip, f"postmaster@{d}", helo)
        result, why, reason_has = ev.check(d)
        e = {"domain": d, "result": result, "why": why}
        if result == "permerror" and "lookups" in why and "void" not in why:
            e["reason_has"] = "lookups"
        elif result == "permerror" and "void" in why:
            e["reason_has"] = "void"
        if result == "pass":
            matched = why.removeprefix("matched ")
            e["permissive"] = [t for t, _ in ev.permissive]
            e["permissive_matched"] = matched if (matched, d) in ev.permissive or any(
                t == matched for t, _ in ev.permissive) else None
            if not e["permissive_matched"]:
                e["permissive"] = []
        else:
            e["permissive"] = []
        out.append(e)
    return out


# ---------------------------------------------------------------------------
# The lab as the verifiers see it


class Lab:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.spec = json.loads((self.dir / "lab.json").read_text())
        self.model = Model((self.dir / "unbound.conf").read_text())
        self.ranges = {r["name"]: r for r in self.spec["ranges"]}
        self.range_of, self.order = {}, []
        for r in self.spec["ranges"]:
            for c in r["cidrs"]:
                for ip in ipaddress.ip_network(c):
                    self.range_of[ip] = r["name"]
                    self.order.append(ip)
        self._exp = {}

    def expect(self, ip):
        if ip not in self._exp:
            rng = self.ranges[self.range_of[ip]]
            fc = expect_fcrdns(self.model, ip, rng)
            helo = fc["helo"]["name"] if "helo" in fc else None
            self._exp[ip] = {"range": rng["name"], "fcrdns": fc,
                             "spf": expect_spf(self.model, ip, rng, helo)}
        return self._exp[ip]

    def note(self, key):
        return self.spec["notes"].get(str(key), "")

    def self_check(self):
        """The fixture must be unambiguous for the contract's open points."""
        problems = []
        for ip in self.order:
            rng = self.ranges[self.range_of[ip]]
            fc = self.expect(ip)["fcrdns"]
            gens = [bool(generic_reason(n, ip)) for n in fc["ptr"]]
            if gens and any(gens) != all(gens):
                problems.append(f"{ip}: PTR names disagree on generic")
            if (not rng["helo"] or "{ptr}" in rng["helo"]) and len(fc["ptr"]) > 1:
                problems.append(f"{ip}: default HELO with several PTR names is ambiguous")
            if rng["expected_ptr"] and not fc["ptr"]:
                problems.append(f"{ip}: expected_ptr on an address without PTR is ambiguous")
            if rng["helo"] and "{ptr}" not in rng["helo"] and not fc["ptr"]:
                problems.append(f"{ip}: explicit HELO on an address without PTR is ambiguous")
        want = {  # the cases the brief asks for must come out as described
            "192.0.2.1": "pass", "192.0.2.2": "fail", "192.0.2.3": "no_ptr", "192.0.2.4": "no_ptr",
            "192.0.2.5": "pass", "192.0.2.6": "pass", "192.0.2.7": "pass", "192.0.2.8": "pass",
            "192.0.2.9": "temperror", "192.0.2.10": "temperror", "192.0.2.11": "temperror",
            "2001:db8:10::25": "pass", "2001:db8:10::26": "fail",
        }
        for ip, result in want.items():
            got = self.expect(ipaddress.ip_address(ip))["fcrdns"]["result"]
            if got != result:
                problems.append(f"{ip}: model gives {got}, the case is {result}")
        spf_want = {"cidr": "pass", "include": "pass", "acname": "pass", "mx": "pass",
                    "redirect": "pass", "fail": "fail", "softfail": "softfail", "neutral": "neutral",
                    "none": "none", "two": "permerror", "limit": "permerror", "void": "permerror",
                    "wide": "pass", "widecidr": "pass", "big": "pass"}
        for ip in (SPF_V4, SPF_V6):
            got = {e["domain"]: e["result"] for e in self.expect(ipaddress.ip_address(ip))["spf"]}
            for d, result in spf_want.items():
                if got.get(f"{d}.spf.example") != result:
                    problems.append(f"{ip} {d}.spf.example: model gives {got.get(d + '.spf.example')}")
            if got.get("spf.dead.example") != "temperror":
                problems.append(f"{ip} spf.dead.example: model gives {got.get('spf.dead.example')}")
        mac = {ip: e["result"] for ip in (SPF_V4, SPF_V6)
               for e in self.expect(ipaddress.ip_address(ip))["spf"] if e["domain"] == "macro.spf.example"}
        if mac != {SPF_V4: "fail", SPF_V6: "pass"}:
            problems.append(f"macro.spf.example: model gives {mac}")
        return problems


# ---------------------------------------------------------------------------
# The lab itself: does unbound serve the model?


def dig(server, name, qtype, *opts):
    addr, port = server.rsplit(":", 1)
    cmd = ["dig", "+time=1", "+tries=1", "+noall", "+comments", "+answer", *opts,
           "@" + addr, "-p", port, name, qtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    m = re.search(r"status: (\w+)", p.stdout)
    status = m.group(1) if m else "TIMEOUT"
    answers = []
    for line in p.stdout.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        owner, _ttl, _cls, rtype, rdata = line.split(None, 4)
        answers.append((norm(owner), rtype, rdata))
    flags = re.search(r"flags: ([a-z ]+);", p.stdout)
    return status, answers, (flags.group(1).split() if flags else [])


def cmd_verify_lab(args):
    lab = Lab(args.dir)
    server = lab.spec["dns"]
    m = lab.model
    questions = set()
    for name, rrs in m.data.items():
        for t, _ in rrs:
            questions.add((name, "CNAME" if t == "CNAME" else t))
    for ip in lab.order:
        questions.add((ip.reverse_pointer, "PTR"))
    questions |= {("nx1.void.spf.example", "A"), ("nothing.example", "A"),
                  ("x.dead.example", "A"), ("spf.dead.example", "TXT"),
                  ("alpha.plain.example", "AAAA"), ("spf.example", "TXT"),     # empty non-terminal
                  ("mac.spf.example", "A"), ("nx.mac.spf.example", "A")}
    problems = Problems()

    def one(q):
        name, qtype = q
        st, rr = m.lookup(name, qtype)
        status, answers, _ = dig(server, name, qtype)
        want_status = {OK: "NOERROR", NODATA: "NOERROR", "cname": "NOERROR", NXDOMAIN: "NXDOMAIN",
                       TIMEOUT: "TIMEOUT"}[st]
        if st == TIMEOUT:
            if status not in ("TIMEOUT", "SERVFAIL"):
                return f"{name} {qtype}: {status}, want a timeout or SERVFAIL (dead zone)"
            return None
        if status != want_status:
            return f"{name} {qtype}: status {status}, want {want_status}"
        got = [(t, parse_rdata(t, r)) for o, t, r in answers]
        want = [("CNAME", rr[0])] if st == "cname" else [(qtype, r) for r in rr]
        if got != want:
            return f"{name} {qtype}: answer {got!r:.300}, want {want!r:.300}"
        return None

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for res in pool.map(one, sorted(questions)):
            if res:
                problems.add(res)
    # The big TXT must not fit in UDP: the agent has to fall back to TCP.
    status, _, flags = dig(server, "big.spf.example", "TXT", "+ignore", "+notcp", "+bufsize=1232")
    if "tc" not in flags:
        problems.add(f"big.spf.example TXT over UDP: flags {flags}, want tc (truncated)")
    status, answers, _ = dig(server, "big.spf.example", "TXT", "+tcp")
    size = sum(len(s) for _, _, r in answers for s in parse_rdata("TXT", r))
    if status != "NOERROR" or size < 9000:
        problems.add(f"big.spf.example TXT over TCP: {status}, {size} bytes")
    rc = problems.finish("the lab's unbound")
    if rc == 0:
        print(f"  {len(questions)} questions answered as the model says; big TXT {size} bytes, TC over UDP")
    return rc


def cmd_blackhole(args):
    """Reads DNS queries over UDP and TCP and never answers."""
    addr, port = args.listen.rsplit(":", 1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, int(port)))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, int(port)))
    tcp.listen(64)
    held = []

    def accept():
        while True:
            conn, _ = tcp.accept()
            held.append(conn)   # keep it open, never reply

    threading.Thread(target=accept, daemon=True).start()
    print(f"blackhole on {args.listen}", flush=True)
    n = 0
    while True:
        udp.recvfrom(65535)
        n += 1
        if n in (1, 10, 100, 1000):
            print(f"{n} queries swallowed", flush=True)


# ---------------------------------------------------------------------------
# Verifying repwatch


def check_fcrdns(lab, ip, got, where, problems):
    e = lab.expect(ip)["fcrdns"]
    note = lab.note(ip)
    at = f"{where} fcrdns ({note})"
    if not isinstance(got, dict):
        problems.add(f"{at}: {got!r}, want an object with result {e['result']!r}")
        return
    if got.get("result") != e["result"]:
        problems.add(f"{at}: result {got.get('result')!r} (reason {got.get('reason')!r}), want {e['result']!r}")
    if got.get("ptr") != e["ptr"]:
        problems.add(f"{at}: ptr {got.get('ptr')!r}, want {e['ptr']!r}")
    if "confirmed" not in got or got["confirmed"] != e["confirmed"]:
        problems.add(f"{at}: confirmed {got.get('confirmed', '<absent>')!r}, want {e['confirmed']!r}")
    if got.get("generic") is not e["generic"]:
        problems.add(f"{at}: generic {got.get('generic')!r}, want {e['generic']!r}"
                     + (f" ({e['generic_any_of'][0]})" if e["generic"] else ""))
    if e["generic"] and not isinstance(got.get("generic_reason"), str):
        problems.add(f"{at}: generic without a generic_reason")
    if not e["generic"] and "generic_reason" in got:
        problems.add(f"{at}: generic_reason {got['generic_reason']!r} on a non-generic name")
    if e["result"] != "pass":
        reason = got.get("reason")
        if not isinstance(reason, str) or not reason:
            problems.add(f"{at}: result {got.get('result')!r} without a reason")
        elif e.get("reason_has") and e["reason_has"] not in reason.lower():
            problems.add(f"{at}: reason {reason!r} does not mention {e['reason_has']!r}")
    elif "reason" in got and got.get("result") == "pass":
        problems.add(f"{at}: reason {got['reason']!r} on a pass")
    if "expected_ptr" in e:
        if got.get("expected_ptr") != e["expected_ptr"]:
            problems.add(f"{at}: expected_ptr {got.get('expected_ptr', '<absent>')!r}, want {e['expected_ptr']!r}")
    elif "expected_ptr" in got:
        problems.add(f"{at}: expected_ptr {got['expected_ptr']!r} present, the range sets none")
    if "helo" in e:
        h = got.get("helo")
        w = e["helo"]
        if not isinstance(h, dict):
            problems.add(f"{at}: helo {h!r}, want {w!r}")
        else:
            if h.get("name") != w["name"] or h.get("ok") is not w["ok"]:
                problems.add(f"{at}: helo name/ok {h.get('name')!r}/{h.get('ok')!r}, "
                             f"want {w['name']!r}/{w['ok']!r}")
            gp = h.get("problems")
            if not isinstance(gp, list) or sorted(gp) != sorted(w["problems"]) or len(set(gp)) != len(gp):
                problems.add(f"{at}: helo {w['name']} problems {gp!r}, want {w['problems']!r}")
    elif "helo" in got:
        problems.add(f"{at}: helo {got['helo']!r} present, want absent (no HELO configured and no PTR)")


def check_spf(lab, ip, got, where, problems):
    want = lab.expect(ip)["spf"]
    if not isinstance(got, list):
        problems.add(f"{where} spf: {got!r}, want a list of {len(want)}")
        return
    got_domains = [g.get("domain") if isinstance(g, dict) else None for g in got]
    want_domains = [e["domain"] for e in want]
    if got_domains != want_domains:
        problems.add(f"{where} spf: domains {got_domains}, want {want_domains}")
    by = {g.get("domain"): g for g in got if isinstance(g, dict)}
    for e in want:
        g = by.get(e["domain"])
        if g is None:
            continue
        at = f"{where} spf {e['domain']} ({lab.note(e['domain'])})"
        res, reason = g.get("result"), g.get("reason")
        also = ALSO_ACCEPTED.get(e["domain"], set())
        if res != e["result"]:
            if res in also:
                print(f"  note: {at}: {res!r} (reason {reason!r}); RFC 7208 gives {e['result']!r}, accepted")
            else:
                problems.add(f"{at}: result {res!r} (reason {reason!r}), want {e['result']!r} ({e['why']})")
                continue
        if not isinstance(reason, str):
            problems.add(f"{at}: no reason text")
        elif res == e["result"] and e.get("reason_has") and e["reason_has"] not in reason.lower():
            problems.add(f"{at}: reason {reason!r} does not mention {e['reason_has']!r}")
        perm = g.get("permissive")
        if perm is not None and (not isinstance(perm, list) or not perm):
            problems.add(f"{at}: permissive {perm!r} (must be absent or a non-empty list)")
            continue
        if e["permissive"]:
            if not perm:
                problems.add(f"{at}: permissive absent, want a term like {e['permissive_matched']!r}")
            elif not any(e["permissive_matched"].lstrip("+") in p for p in perm) or \
                    not all(isinstance(p, str) and " in " in p for p in perm):
                problems.add(f"{at}: permissive {perm!r}, want '{e['permissive_matched']} in DOMAIN'")
        elif perm:
            problems.add(f"{at}: permissive {perm!r}, want none")


def check_ip_line(lab, obj, where, problems):
    try:
        ip = ipaddress.ip_address(obj.get("ip"))
    except (TypeError, ValueError):
        problems.add(f"{where}: bad \"ip\" {obj.get('ip')!r}")
        return None
    if ip not in lab.range_of:
        problems.add(f"{where}: {ip} is in no range of the lab")
        return ip
    where = f"{where} {ip}"
    if obj.get("range") != lab.range_of[ip]:
        problems.add(f"{where}: range {obj.get('range')!r}, want {lab.range_of[ip]!r}")
    if "fcrdns" not in obj:
        problems.add(f"{where}: no \"fcrdns\" key")
    else:
        check_fcrdns(lab, ip, obj["fcrdns"], where, problems)
    if "spf" not in obj:
        problems.add(f"{where}: no \"spf\" key")
    else:
        check_spf(lab, ip, obj["spf"], where, problems)
    if "dnsbl" in obj and obj["dnsbl"]:
        problems.add(f"{where}: dnsbl results {obj['dnsbl']!r:.100} without any [[dnsbl]] configured")
    return ip


def cmd_verify_check(args):
    lab = Lab(args.dir)
    problems = Problems()
    seen = {}
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(f"line {n}: not JSON ({e}): {line.strip()[:120]}")
            continue
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind != "ip":
            problems.add(f"line {n}: unexpected {kind!r} line: {line.strip()[:120]}")
            continue
        ip = check_ip_line(lab, obj, f"line {n}", problems)
        if ip is not None:
            if ip in seen:
                problems.add(f"line {n}: second line for {ip} (first on line {seen[ip]})")
            seen[ip] = n
    missing = [str(ip) for ip in lab.order if ip not in seen]
    if missing:
        problems.add(f"no line for {len(missing)} target(s): {missing}")
    rc = problems.finish("check --json output")
    if rc == 0:
        nspf = sum(len(lab.expect(ip)["spf"]) for ip in lab.order)
        print(f"  {len(seen)} address lines, {nspf} SPF results: as expected")
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
        problems.add(f"not an object: {obj!r:.200}")
    else:
        ip = check_ip_line(lab, obj, "api", problems)
        if ip is not None and ip != ipaddress.ip_address(args.ip):
            problems.add(f"asked for {args.ip}, got {ip}")
    return problems.finish(f"/api/v1/ips/{args.ip}")


def fmt_series(fam, key):
    return fam + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(dict(key).items())) + "}"


def expected_metrics(lab):
    """{family: {label tuple: value}} for the per-IP and per-range families."""
    per_ip = {k: {} for k in ("repwatch_fcrdns_failing", "repwatch_ptr_generic", "repwatch_ptr_unexpected",
                              "repwatch_helo_problem", "repwatch_spf_unauthorized")}
    counts = {"repwatch_fcrdns_ips": {}, "repwatch_spf_ips": {}}
    permissive = {}   # domain -> matched term
    for ip in lab.order:
        e = lab.expect(ip)
        rng, fc, s = e["range"], e["fcrdns"], str(ip)
        if fc["result"] in ("fail", "no_ptr"):
            per_ip["repwatch_fcrdns_failing"][(("ip", s), ("range", rng), ("result", fc["result"]))] = 1
        if fc["generic"]:
            for n in fc["ptr"]:
                if generic_reason(n, ip):
                    per_ip["repwatch_ptr_generic"][(("ip", s), ("range", rng), ("ptr", n))] = 1
                    break
        if "expected_ptr" in fc and not fc["expected_ptr"]["ok"]:
            per_ip["repwatch_ptr_unexpected"][(("ip", s), ("range", rng), ("ptr", fc["ptr"][0]))] = 1
        for p in fc.get("helo", {}).get("problems", []):
            if p != "temperror":
                key = (("ip", s), ("range", rng), ("helo", fc["helo"]["name"]), ("problem", p))
                per_ip["repwatch_helo_problem"][key] = 1
        k = (("range", rng), ("result", fc["result"]))
        counts["repwatch_fcrdns_ips"][k] = counts["repwatch_fcrdns_ips"].get(k, 0) + 1
        for r in e["spf"]:
            if r["result"] not in ("pass", "temperror"):
                key = (("ip", s), ("range", rng), ("domain", r["domain"]), ("result", r["result"]))
                per_ip["repwatch_spf_unauthorized"][key] = 1
            k = (("range", rng), ("domain", r["domain"]), ("result", r["result"]))
            counts["repwatch_spf_ips"][k] = counts["repwatch_spf_ips"].get(k, 0) + 1
            if r["permissive"]:
                permissive.setdefault(r["domain"], set()).add(r["permissive_matched"])
    return per_ip, counts, permissive


def cmd_verify_metrics(args):
    lab = Lab(args.dir)
    problems = Problems()
    samples = parse_metrics(sys.stdin.read(), problems)
    by_name = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))
    per_ip, counts, permissive = expected_metrics(lab)
    # Bad-data domains may legitimately be permerror instead of the RFC result:
    # their series are checked for presence/shape only.
    loose = set(ALSO_ACCEPTED)

    def is_loose(key):
        return dict(key).get("domain") in loose

    for fam, want in per_ip.items():
        got = {}
        for labels, value in by_name.get(fam, []):
            key = tuple(sorted(labels.items()))
            if key in got:
                problems.add(f"{fmt_series(fam, labels.items())} appears twice")
            got[key] = value
        want = {tuple(sorted(k)): v for k, v in want.items()}
        for key, v in sorted(want.items()):
            if is_loose(key):
                continue
            if key not in got:
                problems.add(f"missing {fmt_series(fam, key)} ({lab.note(dict(key)['ip'])})")
            elif got[key] != v:
                problems.add(f"{fmt_series(fam, key)} = {got[key]:g}, want {v}")
        for key in sorted(got):
            if key not in want and not (is_loose(key) and dict(key).get("result") in
                                        ALSO_ACCEPTED[dict(key)["domain"]]):
                ip = dict(key).get("ip", "")
                problems.add(f"unexpected {fmt_series(fam, key)} ({lab.note(ip)})")
    for fam, want in counts.items():
        got = {}
        for labels, value in by_name.get(fam, []):
            got[tuple(sorted(labels.items()))] = value
        want = {tuple(sorted(k)): v for k, v in want.items()}
        for key, v in sorted(want.items()):
            if is_loose(key):
                continue
            if got.get(key, 0) != v:
                problems.add(f"{fmt_series(fam, key)} = {got.get(key, '<absent>')}, want {v}")
        for key, v in sorted(got.items()):
            if key not in want and v != 0 and not is_loose(key):
                problems.add(f"{fmt_series(fam, key)} = {v:g}, want 0 or absent")
    got_perm = {}
    for labels, value in by_name.get("repwatch_spf_permissive", []):
        got_perm.setdefault(labels.get("domain"), []).append(labels.get("term", ""))
        if value != 1:
            problems.add(f"repwatch_spf_permissive{labels} = {value:g}, want 1")
    for d, terms in sorted(permissive.items()):
        got_terms = got_perm.get(d, [])
        for t in sorted(terms):
            if not any(t.lstrip("+") in g for g in got_terms):
                problems.add(f"repwatch_spf_permissive{{domain={d}}}: terms {got_terms}, want one with {t!r}")
    for d in got_perm:
        if d not in permissive:
            problems.add(f"repwatch_spf_permissive for {d} ({got_perm[d]}), which authorises nobody at large")
    # Bounded cardinality: an "ip" label only on a problem series of a problem IP.
    problem_ips = {dict(k)["ip"] for want in per_ip.values() for k in want}
    for name, series in by_name.items():
        for labels, _ in series:
            if "ip" in labels and labels["ip"] not in problem_ips:
                problems.add(f"{name}{labels}: a per-IP series for an address without a problem")
    targets = {labels.get("range"): value for labels, value in by_name.get("repwatch_targets", [])}
    for rng, r in lab.ranges.items():
        n = sum(1 for ip in lab.order if lab.range_of[ip] == rng)
        if targets.get(rng) != n:
            problems.add(f"repwatch_targets{{range={rng}}} = {targets.get(rng)}, want {n}")
    rc = problems.finish("metrics")
    if rc == 0:
        n = sum(len(w) for w in per_ip.values())
        print(f"  {len(samples)} samples, {n} per-IP problem series: as expected")
    return rc


def cmd_expected(args):
    lab = Lab(args.dir)
    for ip in lab.order:
        e = lab.expect(ip)
        fc = {k: v for k, v in e["fcrdns"].items() if k != "generic_any_of"}
        print(json.dumps({"ip": str(ip), "range": e["range"], "note": lab.note(ip), "fcrdns": fc}))
        for s in e["spf"]:
            print(f"    spf {s['domain']}: {s['result']} ({s['why']})"
                  + (f" permissive {s['permissive']}" if s["permissive"] else ""))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("fixture")
    s.add_argument("dir")
    s.add_argument("--dns", required=True, help="ADDR:PORT unbound listens on")
    s.add_argument("--blackhole", required=True, help="ADDR:PORT of the server that never answers")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--interval", default="1h")
    for name in ("targets", "verify-lab", "expected", "verify-check", "verify-metrics"):
        sub.add_parser(name).add_argument("dir")
    v = sub.add_parser("verify-ip")
    v.add_argument("dir")
    v.add_argument("ip")
    b = sub.add_parser("blackhole")
    b.add_argument("listen")
    args = p.parse_args()
    if args.cmd == "fixture":
        return cmd_fixture(args)
    if args.cmd == "blackhole":
        return cmd_blackhole(args)
    if args.cmd == "targets":
        print("\n".join(str(ip) for ip in Lab(args.dir).order))
        return 0
    return {"verify-lab": cmd_verify_lab, "expected": cmd_expected, "verify-check": cmd_verify_check,
            "verify-ip": cmd_verify_ip, "verify-metrics": cmd_verify_metrics}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
