#!/usr/bin/env python3
"""SMTP receivers for the MX probe lab, and the checks that compare repwatch with them.

One fixture description (`build_fixture` below: receiver domains and their MX
hosts, which server answers on each host's address, the sending addresses and
what Postfix's client access table says to each) is written out as an unbound
config (local-data MX and A records), a Postfix config directory (main.cf,
master.cf, a cidr client access table, a reject footer table, a self-signed
certificate), a repwatch config and lab.json. The verifiers never use the
description directly: they read unbound.conf, main.cf, the cidr and footer
tables and the certificate back, build from them what Postfix answers each
source (Postfix's own prefix "<unknown[IP]>: Client host rejected: ", its default
enhanced code, the footer as continuation lines), and derive the probe's
expected result with their own small copy of the reply classification rules
(domain-facts §4.3). `verify-lab` first proves that the servers really answer
so, from every source address, so an expectation cannot drift from what the
lab serves.

  mxdata.py fixture DIR --dns ADDR:PORT --state-dir D [--maillog FILE] [--exact-ranges]
  mxdata.py targets DIR                          # `repwatch check` targets, one per line
  mxdata.py serve-silent ADDR:PORT [--log F] [--ready-file F]   # accepts, never greets
  mxdata.py serve-tarpit ADDR:PORT [--log F] [--ready-file F]   # slow multi-line banner, then 250s
  mxdata.py serve-sentinel 127.0.0.1:53 [--log F] [--ready-file F]  # logs any use of resolv.conf
  mxdata.py verify-lab DIR                       # SMTP from every source to every receiver
  mxdata.py expected DIR                         # the expectations, readable
  mxdata.py verify-check DIR < check.jsonl       # `repwatch check --json` output
  mxdata.py verify-sessions DIR [--postfix-from N] [--tarpit-from N] [--silent-from N] [--retried]
                                                 # the servers' logs of the probe's sessions (--retried:
                                                 # only those of results in error, as a daemon within
                                                 # [mx_probe] min_interval opens)
  mxdata.py expected DIR --json                  # the expectations, one JSON line per (source, domain)
  mxdata.py set-access DIR IP RESULT             # rewrites IP's line of Postfix's client access table
  mxdata.py verify-stored DIR (--db F | --api URL) --probed-from T --probed-to T [--reused-from F] [--save F]
                                                 # the daemon's stored results (sqlite, read only, or
                                                 # GET /api/v1/ips/IP) and when they were probed
  mxdata.py verify-webhooks DIR LOG [--from-line N] [--before F] [--expect-some]
                                                 # the mx.* items a standard webhook sink received
  mxdata.py verify-metrics DIR < metrics.txt     # the repwatch_mx_* families of /metrics

Every server listens on port 25 of its own 127.0.0.x address (the probe's default
port); the lab namespace is ours, so Postfix's addresses are added to lo
(lab_postfix). Verifiers print one line per problem and exit 1 if there is any.
"""

import argparse
import concurrent.futures
import datetime
import errno
import grp
import ipaddress
import json
import os
import pwd
import re
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections import Counter
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (for the lab modules below)
# The DNS lab's model of what unbound answers, and the DNSBL lab's bookkeeping.
from dnsdata import Model, dig, parse_rdata, unbound_server  # noqa: E402
from labzones import Problems  # noqa: E402

# ---------------------------------------------------------------------------
# The fixture description

SMTP_PORT = 25                  # the probe's default port (mx_probe.port is left out)
CERT_NAME = "mx.lab.test"       # the name in Postfix's certificate
HELO = "probe.lab.test"
MAIL_FROM = "probe@lab.test"
RCPT_TO = "postmaster@{domain}"
NOT_LOCAL = "192.0.2.10"        # in a range, but on no interface of the namespace
SOURCE_CIDR = "127.0.1.0/24"
POSTFIX_ADDRS = ("127.0.0.25", "127.0.0.26")
CLOSED_ADDR = "127.0.0.27"      # nothing listens: connection refused
SILENT_ADDR = "127.0.0.28"
TARPIT_ADDR = "127.0.0.29"

# What the tarpit says. Its banner trickles out TARPIT_CHUNK bytes at a time
# over TARPIT_SECONDS; the replies after it come at once.
TARPIT_BANNER = ["220-tarpit.lab.test ESMTP the greeting starts here",
                 "220-and arrives a few bytes at a time",
                 "220 tarpit.lab.test ready"]
TARPIT_CHUNK = 4
TARPIT_SECONDS = 1.0
TARPIT_EHLO = ["250-tarpit.lab.test", "250-PIPELINING", "250-SIZE 10240000", "250 8BITMIME"]
TARPIT_REPLIES = {"HELO": ["250 tarpit.lab.test"], "MAIL": ["250 Sender ok"], "RCPT": ["250 Recipient ok"],
                  "RSET": ["250 Reset"], "NOOP": ["250 Nothing done"], "QUIT": ["221 tarpit.lab.test closing"],
                  "DATA": ["554 No DATA for probes"]}
TARPIT_UNKNOWN = ["502 Command not implemented"]


class Fixture:
    def __init__(self):
        self.hosts = {}         # MX host name -> address
        self.mx = {}            # receiver domain -> [(preference, host)], in config order
        self.services = {}      # address -> "postfix" | "silent" | "tarpit" (absent: nothing listens)
        self.sources = []       # (ip, client access result or None, the class the case is about, note)
        self.footers = []       # (regexp matched against the reply, footer text with \n line breaks)
        self.notes = {}         # ip or domain -> what the case is about

    def domain(self, name, note, *mx):
        self.mx[name] = list(mx)
        self.notes[name] = note

    def source(self, ip, access, cls, note):
        self.sources.append((ip, access, cls, note))
        self.notes[ip] = note


def build_fixture():
    f = Fixture()
    f.hosts = {"mx.lab.test": POSTFIX_ADDRS[0], "other.lab.test": POSTFIX_ADDRS[1],
               "closed.lab.test": CLOSED_ADDR, "silent.lab.test": SILENT_ADDR, "tarpit.lab.test": TARPIT_ADDR}
    f.services = {POSTFIX_ADDRS[0]: "postfix", POSTFIX_ADDRS[1]: "postfix",
                  SILENT_ADDR: "silent", TARPIT_ADDR: "tarpit"}
    f.domain("normal.lab.test", "Postfix, STARTTLS, the certificate names the MX host", (10, "mx.lab.test"))
    f.domain("mismatch.lab.test", "the same Postfix as other.lab.test: the certificate does not name it",
             (10, "other.lab.test"))
    f.domain("fallback.lab.test", "the first MX refuses the connection; the second is Postfix",
             (5, "closed.lab.test"), (10, "mx.lab.test"))
    f.domain("closed.lab.test", "the only MX refuses the connection", (10, "closed.lab.test"))
    f.domain("silent.lab.test", "the only MX accepts and never greets", (10, "silent.lab.test"))
    f.domain("tarpit.lab.test", "the only MX greets slowly over several lines, no STARTTLS",
             (10, "tarpit.lab.test"))

    f.source("127.0.1.1", "OK", "ok", "accepted")
    f.source("127.0.1.2", "554 5.7.1 Service unavailable; Client host [127.0.1.2] blocked using zen.spamhaus.org",
             "blocked_by_list", "Postfix's own DNSBL reject text (Spamhaus ZEN)")
    f.source("127.0.1.3", "550 5.7.606 Access denied, banned sending IP [127.0.1.3]. To request removal from "
             "this list please visit https://sender.office.com/", "reputation_block",
             "Outlook.com banned sending IP")
    f.source("127.0.1.4", "421 4.7.28 Gmail has detected an unusual rate of unsolicited email originating "
             "from your IP address.", "rate_limit",
             "Gmail rate limit, a multi-line reply (the footer adds two lines); Postfix hangs up after a 421")
    f.footers.append((r"Gmail has detected an unusual rate", "To protect our users from spam, email sent from "
                      r"your IP address has been temporarily rate limited.\nFor more information, go to "
                      "https://support.google.com/mail/?p=UnsolicitedRateLimitError"))
    f.source("127.0.1.5", "450 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/lab.test.html",
             "greylist", "postgrey's greylisting reply")
    f.source("127.0.1.6", "554 RTR:BB Connections not accepted from this IP; see "
             "https://postmaster.aol.com/error-codes", "reputation_block",
             "legacy AOL RTR: reply without an enhanced code (Postfix adds 5.7.1)")
    f.source(NOT_LOCAL, None, "error", "not an address of this host: every domain gives error at connect")
    return f


# ---------------------------------------------------------------------------
# Writing


def toml_str(s):
    return json.dumps(s)


def unbound_conf(f, listen, directory):
    out = [
        "# Written by tests/lab/mxdata.py: unbound for the MX probe lab, loopback only.",
        "# Everything is local-data under local-zone \".\" static: no name is ever",
        "# looked up elsewhere. The forward-zone is never used; it names where resolv.conf",
        "# points in the lab namespace (127.0.0.1:53), where a sentinel logs any query.",
    ] + unbound_server(listen, directory) + [
        '  local-zone: "." static',
    ]
    for domain, mx in f.mx.items():
        for pref, host in mx:
            out.append(f"  local-data: '{domain}. 300 IN MX {pref} {host}.'")
    for host, addr_ in f.hosts.items():
        out.append(f"  local-data: '{host}. 300 IN A {addr_}'")
    out += [
        "remote-control:",
        "  control-enable: no",
        "forward-zone:",
        '  name: "."',
        "  forward-addr: 127.0.0.1@53",
    ]
    return "\n".join(out) + "\n"


def postfix_domains(f):
    """Receiver domains with an MX host served by Postfix: RCPT TO them is relayed."""
    return [d for d, mx in f.mx.items() if any(f.services.get(f.hosts[h]) == "postfix" for _, h in mx)]


def main_cf(f, directory, maillog):
    d = str(directory)
    listen = [a for a, s in f.services.items() if s == "postfix"]
    return "\n".join([
        "# Written by tests/lab/mxdata.py: a Postfix instance for the MX probe lab. It runs",
        "# from this directory (master -c), keeps everything under the lab directory and",
        "# never looks anything up: no DNS, no reverse lookup of clients, no /etc/aliases.",
        "compatibility_level = 3.6",
        f"queue_directory = {d}/spool",
        f"data_directory = {d}/data",
        "mail_owner = postfix",
        "setgid_group = postdrop",
        f"maillog_file = {maillog}",
        f"maillog_file_prefixes = {os.path.dirname(maillog)}",
        "myhostname = mx.lab.test",
        "mydomain = lab.test",
        "myorigin = lab.test",
        "mydestination =",
        "local_recipient_maps =",
        "alias_maps =",
        "alias_database =",
        "biff = no",
        "mynetworks = 127.0.0.1/32",
        "inet_protocols = ipv4",
        "inet_interfaces = " + ", ".join(listen),
        "smtpd_banner = $myhostname ESMTP repwatch lab",
        "smtpd_peername_lookup = no",
        "smtpd_delay_reject = yes",
        "relay_domains = " + " ".join(postfix_domains(f)),
        "relay_recipient_maps =",
        "smtpd_client_restrictions = check_client_access cidr:$config_directory/client_access.cidr",
        "smtpd_relay_restrictions = reject_unauth_destination",
        "smtpd_recipient_restrictions = permit",
        "smtpd_reject_footer_maps = regexp:$config_directory/reject_footer.regexp",
        "smtpd_tls_security_level = may",
        f"smtpd_tls_cert_file = $config_directory/tls/{CERT_NAME}.crt",
        f"smtpd_tls_key_file = $config_directory/tls/{CERT_NAME}.key",
        "smtpd_tls_loglevel = 1",
        "smtpd_tls_session_cache_database =",
    ]) + "\n"


MASTER_CF = """\
# Written by tests/lab/mxdata.py. Only what smtpd needs: no chroot, no queue manager,
# no delivery agents; nothing can leave the lab.
# service    type       private unpriv chroot wakeup maxproc command
smtp         inet       n       -      n      -      -       smtpd
cleanup      unix       n       -      n      -      0       cleanup
rewrite      unix       -       -      n      -      -       trivial-rewrite
tlsmgr       unix       -       -      n      1000?  1       tlsmgr
anvil        unix       -       -      n      -      1       anvil
postlog      unix-dgram n       -      n      -      1       postlogd
"""


def write_cidr(f):
    out = ["# Written by tests/lab/mxdata.py: what Postfix answers each sending address",
           "# (check_client_access; rejects are delayed to RCPT TO by smtpd_delay_reject)."]
    for ip, access, _cls, note in f.sources:
        if access is not None:
            out.append(f"# {note}")
            out.append(f"{ip}/32\t{access}")
    return "\n".join(out) + "\n"


def write_footers(f):
    out = ["# Written by tests/lab/mxdata.py: reject footers (\\n = another reply line)."]
    out += [f"/{rx}/\t{footer}" for rx, footer in f.footers]
    return "\n".join(out) + "\n"


def make_postfix(f, out, maillog):
    """The Postfix config directory `out/postfix` and its queue and data directories."""
    conf = out / "postfix"
    tls = conf / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    (conf / "main.cf").write_text(main_cf(f, out / "postfix-run", maillog))
    (conf / "master.cf").write_text(MASTER_CF)
    (conf / "client_access.cidr").write_text(write_cidr(f))
    (conf / "reject_footer.regexp").write_text(write_footers(f))
    crt, key = tls / f"{CERT_NAME}.crt", tls / f"{CERT_NAME}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
                    "-subj", f"/CN={CERT_NAME}", "-addext", f"subjectAltName=DNS:{CERT_NAME}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    key.chmod(0o600)
    for p in [conf, tls, *conf.glob("*"), crt]:
        if p != key:
            p.chmod(0o755 if p.is_dir() else 0o644)
    # The queue: master runs as root and its children as postfix, which must reach
    # the sockets in private/ and public/ and write incoming/ (cleanup, after RCPT).
    run = out / "postfix-run"
    uid, gid = pwd.getpwnam("postfix").pw_uid, grp.getgrnam("postfix").gr_gid
    postdrop = grp.getgrnam("postdrop").gr_gid
    dirs = {"spool": (0, 0, 0o755), "spool/pid": (0, 0, 0o755), "spool/public": (uid, postdrop, 0o710),
            "spool/maildrop": (uid, postdrop, 0o730), "data": (uid, 0, 0o700)}
    for q in ("private", "incoming", "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
              "saved", "trace"):
        dirs[f"spool/{q}"] = (uid, gid, 0o700)
    run.mkdir(exist_ok=True)
    run.chmod(0o755)
    for rel, (u, g, mode) in dirs.items():
        p = run / rel
        p.mkdir(exist_ok=True)
        os.chown(p, u, g)
        p.chmod(mode)


def repwatch_toml(f, dns, state_dir, exact_ranges=False):
    """exact_ranges: the lab-out range lists each local source as a /32 instead of
    SOURCE_CIDR, so that `repwatch run` (which checks every address of its ranges)
    probes the fixture's sources only."""
    local = [ip for ip, *_ in f.sources if ip != NOT_LOCAL]
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(SOURCE_CIDR) for ip in local)
    cidrs = [f"{ip}/32" for ip in local] if exact_ranges else [SOURCE_CIDR]
    out = [
        "# Written by tests/lab/mxdata.py: the MX probe against the lab's receivers.",
        "[agent]",
        f"state_dir = {toml_str(state_dir)}",
        "",
        "[dns]",
        f"servers = [{toml_str(dns)}]",
        'timeout = "500ms"',
        "attempts = 2",
        "",
        "[fcrdns]",
        "enabled = false",
        "",
        "[[ranges]]",
        'name = "lab-out"',
        "cidrs = [" + ", ".join(toml_str(c) for c in cidrs) + "]",
        f"helo = {toml_str(HELO)}",
        "",
        "[[ranges]]",
        'name = "not-here"',
        f"cidrs = [{toml_str(NOT_LOCAL + '/32')}]",
        f"helo = {toml_str(HELO)}",
        "",
        "[mx_probe]",
        "domains = [" + ", ".join(toml_str(d) for d in f.mx) + "]",
        f"mail_from = {toml_str(MAIL_FROM)}",
        f"rcpt_to = {toml_str(RCPT_TO)}",
        "max_rate = 50",
        "max_parallel = 4",
        'connect_timeout = "2s"',
        'banner_timeout = "1500ms"',
        'command_timeout = "3s"',
    ]
    return "\n".join(out) + "\n"


def cmd_fixture(args):
    f = build_fixture()
    out = Path(args.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    maillog = str(Path(args.maillog).resolve()) if args.maillog else str(out / "maillog")
    (out / "unbound.conf").write_text(unbound_conf(f, args.dns, str(out)))
    make_postfix(f, out, maillog)
    (out / "repwatch.toml").write_text(repwatch_toml(f, args.dns, args.state_dir, args.exact_ranges))
    lab = {"dns": args.dns, "port": SMTP_PORT, "postfix_config": str(out / "postfix"), "maillog": maillog,
           "services": {a: s for a, s in f.services.items() if s != "postfix"},
           "targets": [ip for ip, *_ in f.sources], "classes": {ip: c for ip, _, c, _ in f.sources},
           "notes": f.notes}
    (out / "lab.json").write_text(json.dumps(lab, indent=1) + "\n")
    problems = Lab(out).self_check()
    if problems:
        sys.exit("lab data is inconsistent:\n" + "\n".join("  " + p for p in problems))
    return 0


# ---------------------------------------------------------------------------
# Reading the Postfix config back: a model of what Postfix answers


def read_main_cf(path):
    """main.cf as {name: value}: continuation lines joined, comments dropped."""
    params, cur = {}, None
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and cur:
            params[cur] += " " + line.strip()
            continue
        name, _, value = line.partition("=")
        cur = name.strip()
        params[cur] = value.strip()
    return params


def expand(params, value, depth=0):
    """$name and ${name} from main.cf (config_directory is the file's directory)."""
    if depth > 10:
        return value
    return re.sub(r"\$\{?(\w+)\}?", lambda m: expand(params, params.get(m.group(1), ""), depth + 1), value)


def read_table(path, regexp=False):
    """A cidr or regexp table: [(pattern, result)] in file order."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if regexp:
            m = re.match(r"/(.*)/(\w*)\s+(.*)$", line)
            # Postfix matches case-insensitively unless the "i" flag toggles it off.
            rows.append((re.compile(m.group(1), 0 if "i" in m.group(2) else re.I), m.group(3).strip()))
        else:
            pattern, result = line.split(None, 1)
            rows.append((ipaddress.ip_network(pattern, strict=False), result.strip()))
    return rows


DSN_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})$")


class Postfix:
    """What the lab's Postfix answers, from its config files."""

    def __init__(self, conf_dir):
        self.dir = Path(conf_dir)
        p = read_main_cf(self.dir / "main.cf")
        p["config_directory"] = str(self.dir)
        self.params = p
        self.listen = [a.strip() for a in re.split(r"[\s,]+", p["inet_interfaces"]) if a.strip()]
        self.hostname = p["myhostname"]
        self.banner = expand(p, p["smtpd_banner"])
        self.relay_domains = set(p.get("relay_domains", "").split())
        self.delay_reject = p.get("smtpd_delay_reject", "yes") == "yes"
        m = re.search(r"check_client_access\s+cidr:(\S+)", p.get("smtpd_client_restrictions", ""))
        self.access = read_table(expand(p, m.group(1))) if m else []
        m = re.fullmatch(r"regexp:(\S+)", expand(p, p.get("smtpd_reject_footer_maps", "")).strip())
        self.footers = read_table(m.group(1), regexp=True) if m else []
        crt = expand(p, p["smtpd_tls_cert_file"])
        self.cert_der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"],
                                       capture_output=True, check=True).stdout
        text = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-subject", "-ext", "subjectAltName"],
                              capture_output=True, text=True, check=True).stdout
        self.cert_names = [n.lower() for n in re.findall(r"DNS:([^,\s]+)", text)]
        if not self.cert_names:
            self.cert_names = [m.group(1).lower() for m in re.finditer(r"CN\s*=\s*([^,\s/]+)", text)]
        self.tls = p.get("smtpd_tls_security_level") in ("may", "encrypt")

    def rcpt_reply(self, ip):
        """(code, [line text as sent after "NNN-" / "NNN "]) Postfix gives RCPT TO from `ip`.

        A client access reject is "<unknown[IP]>: Client host rejected: TEXT" (no
        reverse lookup: the name is "unknown"), with the table's enhanced code or
        X.7.1, and a footer (smtpd_reject_footer_maps) as further lines, each with
        the same enhanced code."""
        ip = ipaddress.ip_address(ip)
        result = next((r for net, r in self.access if ip in net), None)
        if result is None or result.upper() in ("OK", "PERMIT") or result.split()[0].upper() == "OK":
            return 250, ["2.1.5 Ok"]
        m = re.match(r"([45]\d\d)\s+(.*)$", result)
        assert m, f"unmodelled access result {result!r}"
        code, text = int(m.group(1)), m.group(2)
        dsn = f"{code // 100}.7.1"
        first, _, rest = text.partition(" ")
        if DSN_RE.match(first) and first[0] == str(code // 100):
            dsn, text = first, rest
        reply = f"<unknown[{ip}]>: Client host rejected: {text}"
        lines = [reply]
        full = f"{code} {dsn} {reply}"
        for rx, footer in self.footers:
            if rx.search(full):
                if footer.startswith("\\c"):
                    lines[-1] += footer[2:].split("\\n")[0]
                    lines += footer[2:].split("\\n")[1:]
                else:
                    lines += footer.split("\\n")
                break
        return code, [f"{dsn} {line}" for line in lines]

    def hangs_up(self, ip):
        """Postfix closes the connection after a 421."""
        return self.rcpt_reply(ip)[0] == 421


# ---------------------------------------------------------------------------
# Reply classification: a small independent copy of domain-facts §4.3


LIST_RE = re.compile(r"blocked using \S+|listed (at|on|in|by) \S+\.(org|net|com|io)|in a black ?list at|"
                     r"black ?listed (at|by)|spamhaus|spamcop|barracuda(central)?|sorbs|uceprotect|psbl|"
                     r"surriel|mailspike|senderscore|cloudmark|abuseat|\bcbl\b|\bdnsbls?\b|\brbls?\b|"
                     r"\[BL2\d\]|BL000(?!000)[01]{3}", re.I)
RECEIVER_DNSBL_RE = re.compile(r"open resolver|returnc/|127\.255\.255\.|excessive number of queries|"
                               r"query (was )?(blocked|refused)|RPBL_BLOCKED", re.I)
POLICY_RE = re.compile(r"\bSPF\b|DKIM|DMARC|PTR|reverse (DNS|hostname)|cannot find your (reverse )?hostname|"
                       r"unauthenticated|not authenticated|authentication|whitelist|allowlist|"
                       r"not authorized to send|policy reasons|has a policy", re.I)
POLICY_DSN_RE = re.compile(r"\d\.7\.(2[0-7]|29|30|32|40|515)$")
RATE_RE = re.compile(r"rate.?limit|throttl|too many (connections|messages|recipients|sessions)|"
                     r"unexpected volume|temporarily deferred|server busy|try again later|unusual rate|"
                     r"4\.7\.28|4\.7\.65[01]|4\.7\.500|RP-00[1-3]|\bTSS?0\d\b|DYN:T1|CON:B1|RLY:B\d", re.I)
RATE_LAST_RE = re.compile(r"reputation|unsolicited|complaints", re.I)
REPUTATION_RE = re.compile(r"reputation|unsolicited|banned sending IP|5\.7\.6[0-4]\d|\bA?S31[45]0\b|SC-00[1-4]|"
                           r"OU-00[12]|DY-00[12]|RTR:|RLY:B\d|BL000000|5\.7\.28|our block ?list|"
                           r"spam(my)? (patterns|characteristics)|characteristic of spam|poor reputation", re.I)


def normalise(lines):
    """(enhanced code, text): each line's enhanced code dropped, lines joined with
    single spaces, whitespace collapsed."""
    enhanced, out = "", []
    for line in lines:
        first, _, rest = line.partition(" ")
        if DSN_RE.match(first):
            enhanced = enhanced or first
            line = rest
        out.append(line)
    return enhanced, " ".join(" ".join(out).split())


def classify(code, enhanced, text):
    """(class, zone, reason) by the §4.3 rules, in order."""
    # The rules also see the enhanced code (some tokens are codes, e.g. 5.7.606).
    t = f"{enhanced} {text}" if enhanced else text
    if 200 <= code < 400:
        return "ok", "", ""
    if RECEIVER_DNSBL_RE.search(t):
        return "other", "", "receiver_dnsbl_error"
    if LIST_RE.search(t):
        m = re.search(r"blocked using (\S+)|black list at (\S+)", t, re.I)
        return "blocked_by_list", (m.group(1) or m.group(2)).rstrip(".;,") if m else "", ""
    if 400 <= code < 500 and re.search(r"gr[ae]y-?list", t, re.I):
        return "greylist", "", ""
    if POLICY_DSN_RE.match(enhanced) or POLICY_RE.search(t):
        reason = "rdns" if re.search(r"PTR|reverse|hostname|\.7\.25$", t + " " + enhanced, re.I) else (
            "auth" if re.search(r"SPF|DKIM|DMARC|authenticat|\.7\.2[0-46-7]$", t + " " + enhanced, re.I)
            else "recipient_policy")
        return "policy_failure", "", reason
    if 400 <= code < 500 and (RATE_RE.search(t) or RATE_LAST_RE.search(t)):
        return "rate_limit", "", ""
    if 500 <= code < 600 and REPUTATION_RE.search(t):
        return "reputation_block", "", ""
    return "other", "", ""


# ---------------------------------------------------------------------------
# The lab as the verifiers see it


def seconds(duration):
    """A config duration ("1500ms", "2s", "1m") in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def smtp_lines(raw):
    """["250-a", "250 b"] -> (250, ["a", "b"])."""
    return int(raw[-1][:3]), [line[4:] for line in raw]


class Lab:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.spec = json.loads((self.dir / "lab.json").read_text())
        self.model = Model((self.dir / "unbound.conf").read_text())
        self.postfix = Postfix(self.spec["postfix_config"])
        self.config = tomllib.loads((self.dir / "repwatch.toml").read_text())
        probe = self.config["mx_probe"]
        self.domains = probe["domains"]
        self.mail_from, self.rcpt_to = probe.get("mail_from"), probe.get("rcpt_to")
        self.port = probe.get("port", 25)
        self.targets = [ipaddress.ip_address(t) for t in self.spec["targets"]]
        self.range_of = {}
        for t in self.targets:
            for r in self.config["ranges"]:
                if any(t in ipaddress.ip_network(c, strict=False) for c in r["cidrs"]):
                    self.range_of[t] = r
                    break

    def note(self, key):
        return self.spec["notes"].get(str(key), "")

    def service(self, addr):
        """What listens on addr:port: "postfix", "silent", "tarpit" or None."""
        if str(addr) in self.postfix.listen:
            return "postfix"
        return self.spec["services"].get(str(addr))

    def mx_hosts(self, domain):
        """[(host, [addresses])] in preference order, as unbound serves them."""
        st, mx = self.model.follow(domain, "MX")
        assert st == "ok", f"{domain} MX: {st}"
        out = []
        for _pref, host in sorted(mx, key=lambda x: x[0]):
            st, addrs = self.model.follow(host, "A")
            out.append((host, addrs if st == "ok" else []))
        return out

    @staticmethod
    def is_local(ip):
        """Addresses of the lab namespace: lo holds 127.0.0.0/8 (and ::1)."""
        return ip in ipaddress.ip_network("127.0.0.0/8") or ip == ipaddress.ip_address("::1")

    def expect(self, ip, domain):
        """The probe's result for (source, receiver domain): the fields of one "mx" entry.
        "error" is a substring the error must contain ("" = must be empty).

        Hosts are tried in preference order; the next one only when no connection
        can be made. When none can, or the source is not local (no host can help
        then, and no destination was reached), the result names the first MX host;
        its address is the first one tried, or "" for a source that is not local."""
        hosts = self.mx_hosts(domain)
        e = {"domain": domain, "code": 0, "enhanced": "", "class": "error", "zone": "", "reason": "",
             "text": "", "error": "", "tls": None}
        if not self.is_local(ip):
            return {**e, "host": hosts[0][0], "address": "", "stage": "connect", "error": "not a local address"}
        last = None
        for host, addrs in hosts:
            for addr in addrs:
                svc = self.service(addr)
                if svc is None:
                    last = last or {**e, "host": host, "address": str(addr), "stage": "connect",
                                    "error": "connection refused"}
                    continue
                e.update(host=host, address=str(addr))
                if svc == "silent":
                    return {**e, "stage": "banner", "error": "timeout"}
                if svc == "tarpit":
                    code, lines = smtp_lines(TARPIT_REPLIES["RCPT"])
                    tls = None
                else:
                    pf = self.postfix
                    code, lines = pf.rcpt_reply(ip)
                    tls = {"ok": True, "protocol": "TLSv1.3", "name_match": host in pf.cert_names,
                           "peer_name": pf.cert_names[0], "error": ""} if pf.tls else None
                enhanced, text = normalise(lines)
                cls, zone, reason = classify(code, enhanced, text)
                return {**e, "stage": "rcpt", "code": code, "enhanced": enhanced, "class": cls, "zone": zone,
                        "reason": reason, "text": text, "tls": tls}
        return last

    def self_check(self):
        """The cases the brief asks for must come out as described."""
        problems = []
        pf = self.postfix
        if not pf.delay_reject:
            problems.append("smtpd_delay_reject must be yes: every reject is then a RCPT TO reply")
        for t in self.targets:
            if t not in self.range_of:
                problems.append(f"{t}: in no range of repwatch.toml")
            want = self.spec["classes"][str(t)]
            for d in self.domains:
                e = self.expect(t, d)
                if d.split(".")[0] in ("normal", "mismatch", "fallback") and e["class"] != want:
                    problems.append(f"{t} {d}: the model gives {e['class']} ({e['text']!r}), the case is {want}")
            if str(t) == "127.0.1.2" and self.expect(t, self.domains[0])["zone"] != "zen.spamhaus.org":
                problems.append(f"{t}: the model names no zen.spamhaus.org")
        for d in self.domains:
            if any(self.service(a) == "postfix" for _, addrs in self.mx_hosts(d) for a in addrs) \
                    and d not in pf.relay_domains:
                problems.append(f"{d}: routed to Postfix but not in relay_domains (RCPT TO would be refused)")
        want = {"closed.lab.test": ("error", "connect"), "silent.lab.test": ("error", "banner"),
                "tarpit.lab.test": ("ok", "rcpt")}
        for d, (cls, stage) in want.items():
            e = self.expect(ipaddress.ip_address("127.0.1.1"), d)
            if (e["class"], e["stage"]) != (cls, stage):
                problems.append(f"{d}: the model gives {e['class']}/{e['stage']}, the case is {cls}/{stage}")
        e = self.expect(ipaddress.ip_address("127.0.1.1"), "mismatch.lab.test")
        if not e["tls"] or e["tls"]["name_match"]:
            problems.append(f"mismatch.lab.test: the model gives tls {e['tls']}")
        return problems


# ---------------------------------------------------------------------------
# The servers that are not Postfix


def listen_socket(listen):
    addr, port = listen.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    return s


class SessionLog:
    def __init__(self, path):
        self.path, self.lock = path, threading.Lock()

    def write(self, obj):
        if not self.path:
            return
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(obj) + "\n")


def serve(args, handler):
    srv = listen_socket(args.listen)
    log = SessionLog(args.log)
    if args.ready_file:
        Path(args.ready_file).write_text(args.listen + "\n")
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=handler, args=(conn, peer, log), daemon=True).start()


def silent_session(conn, peer, log):
    """Reads whatever comes and never writes; ends when the client closes (or after 60 s)."""
    t0, got = time.monotonic(), b""
    conn.settimeout(60)
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            got += data
    except OSError:
        pass
    finally:
        conn.close()
    log.write({"peer": peer[0], "seconds": round(time.monotonic() - t0, 3),
               "received": got.decode("latin-1")})


def tarpit_session(conn, peer, log):
    """A multi-line banner a few bytes at a time, then 250s for everything (no STARTTLS)."""
    t0 = time.monotonic()
    commands, quit_, closed_by = [], False, "client"
    conn.settimeout(30)
    try:
        banner = "".join(line + "\r\n" for line in TARPIT_BANNER).encode()
        chunks = [banner[i:i + TARPIT_CHUNK] for i in range(0, len(banner), TARPIT_CHUNK)]
        for chunk in chunks:
            conn.sendall(chunk)
            time.sleep(TARPIT_SECONDS / len(chunks))
        buf = b""
        while True:
            while b"\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    raise EOFError
                buf += data
            line, buf = buf.split(b"\n", 1)
            cmd = line.rstrip(b"\r").decode("latin-1")
            commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            reply = TARPIT_EHLO if verb == "EHLO" else TARPIT_REPLIES.get(verb, TARPIT_UNKNOWN)
            conn.sendall("".join(r + "\r\n" for r in reply).encode())
            if verb == "QUIT":
                quit_, closed_by = True, "server"
                break
    except (EOFError, OSError):
        pass
    finally:
        conn.close()
    log.write({"peer": peer[0], "seconds": round(time.monotonic() - t0, 3), "commands": commands,
               "quit": quit_, "closed_by": closed_by})


def qname(msg):
    """The question name of a DNS message (best effort)."""
    labels, i = [], 12
    while i < len(msg) and msg[i] and len(labels) < 64:
        labels.append(msg[i + 1:i + 1 + msg[i]].decode("latin-1"))
        i += 1 + msg[i]
    return ".".join(labels)


def cmd_serve_sentinel(args):
    """Stands where /etc/resolv.conf points inside the namespace (127.0.0.1:53): logs
    every query as a JSON line and answers REFUSED (UDP) or closes (TCP) at once.
    Nothing in the lab may ask the system resolver, so the log must stay empty."""
    addr, port = args.listen.rsplit(":", 1)
    log = SessionLog(args.log)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, int(port)))
    tcp = listen_socket(args.listen)

    def tcp_loop():
        while True:
            conn, peer = tcp.accept()
            conn.settimeout(2)
            try:
                msg = conn.recv(65535)[2:]
            except OSError:
                msg = b""
            conn.close()
            log.write({"proto": "tcp", "peer": peer[0], "name": qname(msg)})

    threading.Thread(target=tcp_loop, daemon=True).start()
    if args.ready_file:
        Path(args.ready_file).write_text(args.listen + "\n")
    while True:
        msg, peer = udp.recvfrom(65535)
        log.write({"proto": "udp", "peer": peer[0], "name": qname(msg)})
        if len(msg) >= 12:   # same id and question, QR set, RCODE 5 (REFUSED)
            udp.sendto(msg[:2] + bytes([msg[2] | 0x80, (msg[3] & 0xF0) | 5]) + msg[4:], peer)


# ---------------------------------------------------------------------------
# verify-lab: SMTP from every source address to every receiver


def bound_socket(source, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((str(source), 0))
    return s


def smtp_client(src):
    # local_hostname: smtplib would otherwise ask the resolver for our FQDN.
    return smtplib.SMTP(local_hostname=HELO, timeout=5, source_address=(str(src), 0))


def session_postfix(lab, src, addr, host, domain):
    """One full session like the probe's; returns a list of problems."""
    pf, where = lab.postfix, f"{src} -> {addr} (Postfix as {host}, RCPT TO for {domain})"
    problems = []
    s = smtp_client(src)
    code, msg = s.connect(str(addr), lab.port)
    s._host = host      # the SNI name starttls() sends, as the probe does
    if (code, msg.decode()) != (220, pf.banner):
        problems.append(f"{where}: banner {code} {msg!r}, want 220 {pf.banner!r}")
    s.ehlo(HELO)
    if not s.has_extn("starttls"):
        return problems + [f"{where}: no STARTTLS in {s.esmtp_features}"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    s.starttls(context=ctx)
    if s.sock.version() != "TLSv1.3":
        problems.append(f"{where}: TLS {s.sock.version()}, want TLSv1.3")
    if s.sock.getpeercert(binary_form=True) != pf.cert_der:
        problems.append(f"{where}: the certificate is not {pf.cert_names}'s")
    s.ehlo(HELO)
    code, msg = s.mail(lab.mail_from)
    if code != 250:
        problems.append(f"{where}: MAIL FROM {code} {msg!r}")
    code, msg = s.rcpt(lab.rcpt_to.replace("{domain}", domain))
    want_code, want_lines = pf.rcpt_reply(src)
    got_lines = msg.decode().split("\n")
    if (code, got_lines) != (want_code, want_lines):
        problems.append(f"{where}: RCPT TO {code} {got_lines}, want {want_code} {want_lines}")
    try:
        code, msg = s.docmd("QUIT")
        if pf.hangs_up(src):
            problems.append(f"{where}: QUIT answered {code} after a 421 (Postfix should have hung up)")
    except smtplib.SMTPServerDisconnected:
        if not pf.hangs_up(src):
            problems.append(f"{where}: Postfix hung up before QUIT")
    s.close()
    return problems


def session_tarpit(lab, src, addr, host, domain):
    where = f"{src} -> {addr} (tarpit)"
    problems = []
    t0 = time.monotonic()
    s = smtp_client(src)
    code, msg = s.connect(str(addr), lab.port)
    took = time.monotonic() - t0
    want_code, want_lines = smtp_lines(TARPIT_BANNER)
    if (code, msg.decode().split("\n")) != (want_code, want_lines):
        problems.append(f"{where}: banner {code} {msg!r}")
    limit = seconds(lab.config["mx_probe"]["banner_timeout"])
    if not 0.7 * TARPIT_SECONDS <= took < limit:
        problems.append(f"{where}: the banner took {took:.2f}s, want ~{TARPIT_SECONDS}s and less than the "
                        f"probe's banner_timeout of {limit}s")
    s.ehlo(HELO)
    if s.has_extn("starttls"):
        problems.append(f"{where}: offers STARTTLS")
    code, _ = s.mail(lab.mail_from)
    rcode, rmsg = s.rcpt(lab.rcpt_to.replace("{domain}", domain))
    if (code, rcode, rmsg.decode().split("\n")) != (250, *smtp_lines(TARPIT_REPLIES["RCPT"])):
        problems.append(f"{where}: MAIL {code}, RCPT {rcode} {rmsg!r}")
    s.quit()
    return problems


def session_silent(lab, src, addr):
    where = f"{src} -> {addr} (silent)"
    s = bound_socket(src, 5)
    s.connect((str(addr), lab.port))
    s.settimeout(1.0)
    try:
        data = s.recv(100)
        return [f"{where}: sent {data!r}" if data else f"{where}: closed the connection"]
    except socket.timeout:
        return []
    finally:
        s.close()


def session_closed(lab, src, addr):
    s = bound_socket(src, 5)
    try:
        s.connect((str(addr), lab.port))
        return [f"{src} -> {addr}: connected, want connection refused"]
    except ConnectionRefusedError:
        return []
    finally:
        s.close()


def cmd_verify_lab(args):
    lab = Lab(args.dir)
    problems = Problems()
    # unbound serves the model (dig every MX and A name).
    for d in lab.domains:
        status, answers, _ = dig(lab.spec["dns"], d, "MX")
        got = sorted(parse_rdata("MX", r) for _, t, r in answers if t == "MX")
        want = sorted(lab.model.lookup(d, "MX")[1])
        if status != "NOERROR" or got != want:
            problems.add(f"{d} MX: {status} {got}, want {want}")
        for host, addrs in lab.mx_hosts(d):
            status, answers, _ = dig(lab.spec["dns"], host, "A")
            got = [parse_rdata("A", r) for _, t, r in answers if t == "A"]
            if status != "NOERROR" or got != addrs:
                problems.add(f"{host} A: {status} {got}, want {addrs}")
    # Every (source, receiver address) pair, as the probe will meet it.
    jobs = []
    receivers = {}      # address -> (its MX host name, a domain routed to it)
    for d in lab.domains:
        for host, addrs in lab.mx_hosts(d):
            for a in addrs:
                receivers.setdefault(a, (host, d))
    offsets = log_offsets(lab)
    want = {k: {} for k in KINDS}
    for src in lab.targets:
        if not lab.is_local(src):
            try:
                bound_socket(src, 1).close()
                problems.add(f"{src}: bind succeeded, but the case is a source that is not local")
            except OSError as e:
                if e.errno != errno.EADDRNOTAVAIL:
                    problems.add(f"{src}: bind: {e}, want EADDRNOTAVAIL")
            continue
        for addr, (host, domain) in receivers.items():
            svc = lab.service(addr)
            if svc:
                want[svc][str(src)] = want[svc].get(str(src), 0) + 1
            if svc == "postfix":
                jobs.append((session_postfix, (lab, src, addr, host, domain)))
            elif svc == "tarpit":
                jobs.append((session_tarpit, (lab, src, addr, host, domain)))
            elif svc == "silent":
                jobs.append((session_silent, (lab, src, addr)))
            else:
                jobs.append((session_closed, (lab, src, addr)))

    def run(job):
        fn, a = job
        try:
            return fn(*a)
        except Exception as e:  # noqa: BLE001 - any failure is a finding
            return [f"{a[1]} -> {a[2]}: {type(e).__name__}: {e}"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for res in pool.map(run, jobs):
            for p in res:
                problems.add(p)
    # The servers' logs of these sessions, read as verify-sessions reads the probe's:
    # this proves the log reading (and leaves the logs complete before the probe runs).
    for p in session_problems(lab, wait_sessions(lab, offsets, want, 5), want, "verify-lab"):
        problems.add(p)
    rc = problems.finish("the lab's receivers")
    if rc == 0:
        print(f"  {len(jobs)} sessions from {sum(1 for t in lab.targets if lab.is_local(t))} sources to "
              f"{len(receivers)} receiver addresses answered as the model says, and were logged so")
    return rc


# ---------------------------------------------------------------------------
# verify-check: `repwatch check --json` output

FIELDS = ("domain", "host", "address", "stage", "code", "enhanced", "class", "zone", "reason", "text", "error")
TLS_FIELDS = ("ok", "protocol", "name_match", "peer_name", "error")


def check_mx_entry(got, want, where, problems):
    if not isinstance(got, dict):
        problems.add(f"{where}: not an object: {got!r:.200}")
        return
    for k in FIELDS:
        if k not in got:
            problems.add(f"{where}: no {k!r} (want {want[k]!r})")
        elif k == "error":
            g = got[k]
            if not isinstance(g, str) or (want[k] == "" and g != "") or want[k].lower() not in g.lower():
                problems.add(f"{where}: error {g!r}, want " + (repr(want[k]) if not want[k]
                                                               else f"one containing {want[k]!r}"))
        elif got[k] != want[k] or type(got[k]) is not type(want[k]):
            problems.add(f"{where}: {k} {got[k]!r}, want {want[k]!r}")
    if want["tls"] is None:
        if "tls" in got:
            problems.add(f"{where}: tls {got['tls']!r}, want no \"tls\" (no STARTTLS offered)")
        return
    tls = got.get("tls")
    if not isinstance(tls, dict):
        problems.add(f"{where}: tls {tls!r}, want {want['tls']}")
        return
    for k in TLS_FIELDS:
        if tls.get(k, "<absent>") != want["tls"][k]:
            problems.add(f"{where}: tls.{k} {tls.get(k, '<absent>')!r}, want {want['tls'][k]!r}")


def cmd_verify_check(args):
    lab = Lab(args.dir)
    problems = Problems()
    seen = {}
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(f"line {n}: not JSON ({e}): {line[:200]}")
            continue
        if not isinstance(obj, dict) or obj.get("kind") != "ip":
            continue
        try:
            ip = ipaddress.ip_address(obj.get("ip"))
        except (TypeError, ValueError):
            problems.add(f"line {n}: bad ip {obj.get('ip')!r}")
            continue
        if ip not in lab.range_of:
            problems.add(f"line {n}: {ip} is not a target")
            continue
        if ip in seen:
            problems.add(f"line {n}: second line for {ip} (first on line {seen[ip]})")
        seen[ip] = n
        if obj.get("range") != lab.range_of[ip]["name"]:
            problems.add(f"{ip}: range {obj.get('range')!r}, want {lab.range_of[ip]['name']!r}")
        mx = obj.get("mx")
        if not isinstance(mx, list):
            problems.add(f"{ip}: \"mx\" is {mx!r:.100}, want a list ({lab.note(ip)})")
            continue
        got_domains = [e.get("domain") if isinstance(e, dict) else None for e in mx]
        if got_domains != lab.domains:
            problems.add(f"{ip}: domains {got_domains}, want {lab.domains} (one entry each, in config order)")
        by_domain = {e.get("domain"): e for e in mx if isinstance(e, dict)}
        for d in lab.domains:
            if d in by_domain:
                check_mx_entry(by_domain[d], lab.expect(ip, d), f"{ip} {d}", problems)
    missing = [str(t) for t in lab.targets if t not in seen]
    if missing:
        problems.add(f"no line for {len(missing)} target(s): {missing}")
    rc = problems.finish("check --json output")
    if rc == 0:
        print(f"  {len(seen)} address lines x {len(lab.domains)} domains: every field as expected")
    return rc


def cmd_expected(args):
    lab = Lab(args.dir)
    if args.json:
        for t in lab.targets:
            for d in lab.domains:
                print(json.dumps({"ip": str(t), "range": lab.range_of[t]["name"], **lab.expect(t, d)}))
        return 0
    for t in lab.targets:
        print(f"{t} ({lab.range_of[t]['name']}): {lab.note(t)}")
        for d in lab.domains:
            print("    " + json.dumps(lab.expect(t, d)))
    return 0


# ---------------------------------------------------------------------------
# Session logs: what the servers saw


def read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []


DISCONNECT_RE = re.compile(r"postfix/smtpd\[\d+\]: disconnect from unknown\[([\d.]+)\] (.*)$")
LOST_RE = re.compile(r"postfix/smtpd\[\d+\]: (lost connection|timeout) after (\S+) from unknown\[([\d.]+)\]")
KINDS = ("postfix", "tarpit", "silent")
# Commands a probe session may give Postfix (its disconnect line counts each one).
PROBE_COMMANDS = {"ehlo", "helo", "starttls", "mail", "rcpt", "rset", "noop", "quit", "commands"}


def log_offsets(lab):
    """Where each server's log ends now: {kind: byte offset}."""
    paths = {"postfix": lab.spec["maillog"], "tarpit": lab.dir / "tarpit.jsonl", "silent": lab.dir / "silent.jsonl"}
    return {k: (os.path.getsize(p) if os.path.exists(p) else 0) for k, p in paths.items()}


def read_sessions(lab, offsets):
    """{kind: {source: [session]}} after the offsets. A Postfix session is the
    counters of its disconnect line ({"ehlo": "2", "rcpt": "0/1", "quit": "1", ...}),
    a tarpit or silent session the server's JSON line."""
    out = {k: {} for k in KINDS}
    lines = read_from(lab.spec["maillog"], offsets["postfix"])
    for line in lines:
        m = DISCONNECT_RE.search(line)
        if m:
            counters = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
            out["postfix"].setdefault(m.group(1), []).append(counters)
        m = LOST_RE.search(line)
        if m and m.group(2) in ("DATA", "BDAT", "END-OF-MESSAGE"):
            out["postfix"].setdefault(m.group(3), []).append({"lost_after": m.group(2)})
    for kind in ("tarpit", "silent"):
        for x in read_from(lab.dir / f"{kind}.jsonl", offsets[kind]):
            e = json.loads(x)
            out[kind].setdefault(e["peer"], []).append(e)
    return out


def counts(sessions):
    return {k: {src: sum(1 for c in v if "lost_after" not in c) for src, v in by_src.items()}
            for k, by_src in sessions.items()}


def wait_sessions(lab, offsets, want, timeout, settle=0.0):
    """The servers log a session after it ends (postlogd asynchronously): wait
    until the counts match `want` ({kind: {source: n}}) or `timeout` seconds pass.
    With `settle`, counts that match are read again that many seconds later (a
    session that must not exist may still be on its way to the log)."""
    deadline = time.monotonic() + timeout
    while True:
        got = read_sessions(lab, offsets)
        if counts(got) == want or time.monotonic() > deadline:
            if settle > 0:
                time.sleep(settle)
                got = read_sessions(lab, offsets)
            return got
        time.sleep(0.1)


def session_problems(lab, sessions, want, who):
    """One session per (source, domain) as `want` says; no DATA; each ends with QUIT
    (but Postfix hangs up itself after a 421)."""
    problems = []
    got = counts(sessions)
    for kind in KINDS:
        if got[kind] != want[kind]:
            problems.append(f"{kind}: {who} sessions per source {got[kind]}, want {want[kind]}")
    for src, sessions_ in sorted(sessions["postfix"].items()):
        for c in sessions_:
            if "lost_after" in c:
                problems.append(f"Postfix: {who} lost the connection from {src} after {c['lost_after']}")
                continue
            if "data" in c or "bdat" in c:
                problems.append(f"Postfix: {who} sent DATA/BDAT from {src}: {c}")
            if lab.postfix.hangs_up(src):
                if "quit" in c:
                    problems.append(f"Postfix: {who} got an answer to QUIT from {src} after a 421: {c}")
            elif c.get("quit") != "1":
                problems.append(f"Postfix: {who}'s session from {src} did not end with QUIT: {c}")
            if c.get("starttls") != "1":
                problems.append(f"Postfix: {who}'s session from {src} used no STARTTLS: {c}")
            extra = set(c) - PROBE_COMMANDS - {"data", "bdat"}
            if extra:
                problems.append(f"Postfix: {who} sent {sorted(extra)} from {src}: {c}")
    for src, entries in sorted(sessions["tarpit"].items()):
        for e in entries:
            verbs = [c.split(" ", 1)[0].upper() for c in e["commands"]]
            if any(v in ("DATA", "BDAT") for v in verbs):
                problems.append(f"tarpit: {who} sent DATA from {src}: {e['commands']}")
            if not e["quit"] or verbs[-1:] != ["QUIT"]:
                problems.append(f"tarpit: {who}'s session from {src} did not end with QUIT: {e['commands']}")
    for src, entries in sorted(sessions["silent"].items()):
        for e in entries:
            if re.match(r"(MAIL|RCPT|DATA|BDAT)\b", e["received"], re.I):
                problems.append(f"silent: {who} sent commands from {src} before any greeting: {e['received']!r}")
    return problems


def probe_sessions(lab, retried_only=False):
    """{kind: {source: n}}: the sessions the probe opens, one per domain that does
    not end at connect, on the server that answers there. `retried_only`: only
    those whose result is of class error: a daemon within [mx_probe] min_interval
    reuses every result that got a reply and retries the others."""
    want = {k: {} for k in KINDS}
    for t in lab.targets:
        for d in lab.domains:
            e = lab.expect(t, d)
            if retried_only and e["class"] != "error":
                continue
            if e["stage"] != "connect":
                kind = lab.service(e["address"])
                want[kind][str(t)] = want[kind].get(str(t), 0) + 1
    return want


def cmd_verify_sessions(args):
    lab = Lab(args.dir)
    offsets = {"postfix": args.postfix_from, "tarpit": args.tarpit_from, "silent": args.silent_from}
    want = probe_sessions(lab, args.retried)
    sessions = wait_sessions(lab, offsets, want, args.wait, args.settle)
    problems = Problems()
    for p in session_problems(lab, sessions, want, "the probe"):
        problems.add(p)
    # The probe gives up on a host that never greets after banner_timeout, not
    # at once and not much later.
    limit = seconds(lab.config["mx_probe"]["banner_timeout"])
    for src, entries in sorted(sessions["silent"].items()):
        for e in entries:
            if not 0.9 * limit <= e["seconds"] <= limit + 3:
                problems.add(f"silent: the session from {src} lasted {e['seconds']}s, want about the "
                             f"banner_timeout of {limit}s")
    rc = problems.finish("the servers' session logs")
    if rc == 0:
        n = {k: sum(v.values()) for k, v in want.items()}
        print(f"  {n['postfix']} Postfix, {n['tarpit']} tarpit, {n['silent']} silent sessions"
              + (" (only the results in error were retried)" if args.retried else "")
              + ": no DATA, each ended with QUIT (or Postfix hung up after its 421)")
    return rc


# ---------------------------------------------------------------------------
# The daemon: stored results, webhook items, metrics

PROBLEM_CLASSES = ("blocked_by_list", "reputation_block", "rate_limit", "policy_failure")
OK_CLASSES = ("ok", "greylist")
ALL_CLASSES = ("ok", "blocked_by_list", "reputation_block", "rate_limit", "greylist", "policy_failure", "other",
               "error")
TLS_OUTCOMES = ("ok", "name_mismatch", "failed", "not_offered")


def verdict(cls):
    """What an alert stream makes of a class: problem classes raise mx.rejected, ok
    and greylist clear it, other and error (no verdict on the address) do neither."""
    return "problem" if cls in PROBLEM_CLASSES else "ok" if cls in OK_CLASSES else "error"


def unix_time(text):
    """RFC 3339 UTC "2026-11-22T10:00:00Z" -> unix seconds; None for anything else."""
    try:
        t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp())


def iso(unix):
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_set_access(args):
    """Rewrites IP's line of the client access table main.cf names (comments and
    other lines kept); the caller reloads Postfix. verify-lab proves the result."""
    lab = Lab(args.dir)
    m = re.search(r"check_client_access\s+cidr:(\S+)", lab.postfix.params.get("smtpd_client_restrictions", ""))
    if not m:
        sys.exit("main.cf has no check_client_access cidr: table")
    path = Path(expand(lab.postfix.params, m.group(1)))
    ip = ipaddress.ip_address(args.ip)
    net = ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")
    lines, found = [], 0
    for line in path.read_text().splitlines():
        fields = line.split(None, 1)
        if fields and not line.lstrip().startswith("#") and ipaddress.ip_network(fields[0], strict=False) == net:
            line = f"{fields[0]}\t{args.result}"
            found += 1
        lines.append(line)
    if found != 1:
        sys.exit(f"{path}: {found} lines for {net}, want exactly 1")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    code, reply = Postfix(lab.spec["postfix_config"]).rcpt_reply(ip)
    print(f"  {path.name}: {ip} -> {args.result!r}; the model now gives RCPT TO {code} {reply}")
    return 0


def stored_results(lab, args, problems):
    """{target: its "mx" list}, from the agent's database (opened read-only: the
    store is never touched) or from GET /api/v1/ips/IP."""
    out = {}
    if args.db:
        con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        try:
            rows = dict(con.execute("SELECT ip, mx FROM ips").fetchall())
        finally:
            con.close()
        for t in lab.targets:
            text = rows.get(str(t))
            if str(t) not in rows:
                problems.add(f"{t}: no row in table ips")
            elif text is None:
                problems.add(f"{t}: ips.mx is NULL")
            else:
                try:
                    out[t] = json.loads(text)
                except ValueError as e:
                    problems.add(f"{t}: ips.mx is not JSON ({e}): {text[:200]}")
        return out
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the environment
    for t in lab.targets:
        url = f"{args.api.rstrip('/')}/api/v1/ips/{t}"
        try:
            with opener.open(url, timeout=10) as r:
                body = json.loads(r.read())
        except (OSError, ValueError) as e:
            problems.add(f"GET {url}: {e}")
            continue
        if not isinstance(body, dict) or body.get("ip") != str(t) or body.get("range") != lab.range_of[t]["name"]:
            problems.add(f"GET {url}: ip/range {body.get('ip')!r}/{body.get('range')!r}, want "
                         f"{str(t)!r}/{lab.range_of[t]['name']!r}")
        out[t] = body.get("mx") if isinstance(body, dict) else None
    return out


def cmd_verify_stored(args):
    """Each target's stored "mx" list: one entry per domain, in config order, each
    field as the servers answer (verify-check's comparison), probed during this run
    (--probed-from .. --probed-to). With --reused-from (a --save file of an earlier
    run): a result that got a reply is that run's, unchanged (min_interval has not
    passed: no new session); a result of class error was probed again this run."""
    lab = Lab(args.dir)
    problems = Problems()
    results = stored_results(lab, args, problems)
    before = json.loads(Path(args.reused_from).read_text()) if args.reused_from else None
    window = f"{iso(args.probed_from)} .. {iso(args.probed_to)}"
    saved, reused, probed, marked = {}, 0, 0, 0
    for t, mx in results.items():
        if not isinstance(mx, list):
            problems.add(f"{t}: \"mx\" is {mx!r:.100}, want a list ({lab.note(t)})")
            continue
        got_domains = [e.get("domain") if isinstance(e, dict) else None for e in mx]
        if got_domains != lab.domains:
            problems.add(f"{t}: domains {got_domains}, want {lab.domains} (one entry each, in config order)")
        by_domain = {e.get("domain"): e for e in mx if isinstance(e, dict)}
        for d in lab.domains:
            e = by_domain.get(d)
            if e is None:
                continue
            want, where = lab.expect(t, d), f"{t} {d}"
            check_mx_entry(e, want, where, problems)
            saved.setdefault(str(t), {})[d] = e.get("probed_at")
            marked += e.get("reused") is True
            at = unix_time(e.get("probed_at"))
            if at is None:
                problems.add(f"{where}: probed_at {e.get('probed_at')!r} is not RFC 3339 UTC")
                continue
            old = (before or {}).get(str(t), {}).get(d)
            if before is not None and want["class"] != "error":
                if e["probed_at"] != old:
                    problems.add(f"{where}: probed_at {e['probed_at']}, want {old}: a {want['class']} result is "
                                 f"reused within min_interval, not probed again")
                else:
                    reused += 1
                continue
            if not args.probed_from <= at <= args.probed_to:
                problems.add(f"{where}: probed_at {e['probed_at']} is outside this run ({window})"
                             + ("; a result of class error is retried every cycle" if before is not None else ""))
            elif before is not None and old is not None and at <= (unix_time(old) or 0):
                problems.add(f"{where}: probed_at {e['probed_at']} is not after the earlier {old}")
            else:
                probed += 1
            if e.get("reused") is True:
                problems.add(f"{where}: marked reused, but it was probed during this run")
    if args.save:
        Path(args.save).write_text(json.dumps(saved, indent=1) + "\n")
    rc = problems.finish("the stored results")
    if rc == 0:
        print(f"  {len(results)} addresses x {len(lab.domains)} domains as the servers answer: {probed} probed "
              f"during this run ({window}), {reused} reused unchanged; {marked} marked \"reused\"")
    return rc


def item_reply(e):
    """The evidence's "reply": code, enhanced code and text, as the agent joins them."""
    reply = str(e["code"]) if e["code"] else ""
    for part in (e["enhanced"], e["text"]):
        if part:
            reply += " " + part
    return reply


def cmd_verify_webhooks(args):
    """The mx.* items a standard-format sink received (after --from-line lines of
    the receiver's log): exactly one mx.rejected per (source, domain) whose class
    is a problem now and was not before (--before: `expected --json` output from
    before a change; none: nothing had been raised), exactly one mx.resolved per
    pair that was a problem and is ok (or greylist) now, nothing else; each item's
    fields as the servers answer. Signatures: webhook_check.py signatures."""
    import webhook_check  # the webhook lab's reader of the receiver's log  # noqa: PLC0415
    lab = Lab(args.dir)
    problems = Problems()
    before = {}
    if args.before:
        for line in Path(args.before).read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                before[(e["ip"], e["domain"])] = e
    now = {(str(t), d): (t, lab.expect(t, d)) for t in lab.targets for d in lab.domains}
    want = {}
    for key, (t, e) in now.items():
        was = verdict(before[key]["class"]) if key in before else "ok"
        if verdict(e["class"]) == "problem" and was != "problem":
            want[("mx.rejected", *key)] = (t, e)
        elif verdict(e["class"]) == "ok" and was == "problem":
            want[("mx.resolved", *key)] = (t, e)
    if args.expect_some and not want:
        problems.add("the fixture expects no item here: nothing would be proven")
    try:
        lines = Path(args.log).read_text().splitlines()[args.from_line:]
    except FileNotFoundError:
        lines = []
    bodies, got = {}, Counter()
    n_requests = 0
    for n, line in enumerate(lines, args.from_line + 1):
        if not line.strip():
            continue
        try:
            r = webhook_check.Request(json.loads(line))
        except ValueError:
            problems.add(f"{args.log}:{n}: not JSON")
            continue
        n_requests += 1
        if not r.ok:
            problems.add(f"{r.where()}: the receiver answers 200; this request was not answered 2xx")
            continue
        if r.id in bodies:  # a retry: the same bytes, counted once
            if bodies[r.id] != r.body:
                problems.add(f"{r.where()}: a retry of {r.id} with other bytes")
            continue
        bodies[r.id] = r.body
        try:
            body = json.loads(r.body)
            t, data = body["type"], body["data"]
            items, instance = data["items"], data["instance"]
        except (ValueError, KeyError, TypeError) as e:
            problems.add(f"{r.where()}: not a standard webhook body ({type(e).__name__}: {e}): {r.body[:200]!r}")
            continue
        for it in items:
            if not isinstance(it, dict):
                problems.add(f"{r.where()}: item {it!r:.100} is not an object")
                continue
            key = (t, it.get("ip"), it.get("domain"))
            got[key] += 1
            if key not in want or got[key] > 1:
                continue
            ip, e = want[key]
            where = f"{t} {key[1]} {key[2]} ({r.id})"
            for field, value in (("type", t), ("range", lab.range_of[ip]["name"]), ("instance", instance)):
                if it.get(field) != value:
                    problems.add(f"{where}: {field} {it.get(field)!r}, want {value!r}")
            if not instance:
                problems.add(f"{where}: data.instance is empty")
            check_mx_entry(it, e, where, problems)
            evidence = {"session": f"from {ip} to {e['host']}[{e['address']}]", "reply": item_reply(e)}
            if it.get("evidence") != evidence:
                problems.add(f"{where}: evidence {it.get('evidence')!r}, want {evidence!r}")
            for field in ("first_seen", "at", "probed_at"):
                if unix_time(it.get(field)) is None:
                    problems.add(f"{where}: {field} {it.get(field)!r} is not RFC 3339 UTC")
            if "reused" in it:
                problems.add(f"{where}: carries \"reused\"")
    for key in sorted(want):
        if got[key] != 1:
            ip, e = want[key]
            problems.add(f"{' '.join(key)}: delivered {got[key]} time(s), want once (class {e['class']}"
                         + (f", was {before[key[1:]]['class']}" if key[1:] in before else "") + ")")
    for key in sorted(k for k in got if k not in want):
        ip, d = key[1], key[2]
        now_cls = now[(ip, d)][1]["class"] if (ip, d) in now else "?"
        was = before[(ip, d)]["class"] if (ip, d) in before else "no event yet"
        problems.add(f"unexpected {' '.join(map(str, key))} delivered {got[key]} time(s) "
                     f"(class {now_cls}, before: {was})")
    rc = problems.finish(f"{args.log} mx items")
    if rc == 0:
        kinds = Counter(k[0] for k in want)
        print(f"  {n_requests} requests, {len(bodies)} ids: " +
              (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no item") +
              ", each (source, domain) exactly once, every field as the servers answer")
    return rc


def cmd_verify_metrics(args):
    """repwatch_mx_not_ok, repwatch_mx_ips and repwatch_mx_tls_ips exactly: a
    not_ok series per (source, domain) whose class is not ok, with the reply in
    its labels; counts per range, domain and class (and STARTTLS outcome, for
    results that are not errors), zeros included. An empty label is no label."""
    import webhook_check  # its exposition parser  # noqa: PLC0415
    lab = Lab(args.dir)
    text = sys.stdin.read()
    problems = Problems()

    def key(labels):
        return tuple(sorted((k, v) for k, v in labels.items() if v != ""))

    names = ("repwatch_mx_not_ok", "repwatch_mx_ips", "repwatch_mx_tls_ips")
    want = {n: {} for n in names}
    for r in lab.config["ranges"]:
        if r.get("mx_probe", True):
            for d in lab.domains:
                for c in ALL_CLASSES:
                    want["repwatch_mx_ips"][key({"range": r["name"], "domain": d, "class": c})] = 0
                for o in TLS_OUTCOMES:
                    want["repwatch_mx_tls_ips"][key({"range": r["name"], "domain": d, "tls": o})] = 0
    for t in lab.targets:
        rng = lab.range_of[t]["name"]
        for d in lab.domains:
            e = lab.expect(t, d)
            want["repwatch_mx_ips"][key({"range": rng, "domain": d, "class": e["class"]})] += 1
            if e["class"] != "error":  # a session that failed says nothing about TLS
                tls = e["tls"]
                o = "not_offered" if tls is None else "failed" if not tls["ok"] else \
                    "ok" if tls["name_match"] else "name_mismatch"
                want["repwatch_mx_tls_ips"][key({"range": rng, "domain": d, "tls": o})] += 1
            if e["class"] != "ok":
                want["repwatch_mx_not_ok"][key({
                    "ip": str(t), "range": rng, "domain": d, "class": e["class"], "stage": e["stage"],
                    "code": str(e["code"]) if e["code"] else "", "enhanced": e["enhanced"], "zone": e["zone"]})] = 1
    got = {n: {} for n in names}
    for name, labels, value in webhook_check.parse_exposition(text):
        if name in got:
            k = key(labels)
            if k in got[name]:
                problems.add(f"{name}{{{k}}}: exported twice")
            got[name][k] = value
    for name in names:
        if not re.search(rf"^# TYPE {name} gauge$", text, re.M):
            problems.add(f"{name}: no '# TYPE {name} gauge' line")
        show = lambda k: name + "{" + ",".join(f'{a}="{b}"' for a, b in k) + "}"  # noqa: E731
        for k, v in sorted(want[name].items()):
            if k not in got[name]:
                problems.add(f"missing {show(k)} (want {v:g})")
            elif got[name][k] != v:
                problems.add(f"{show(k)} is {got[name][k]:g}, want {v:g}")
        for k, v in sorted(got[name].items()):
            if k not in want[name]:
                problems.add(f"unexpected {show(k)} {v:g}")
    rc = problems.finish("the repwatch_mx_* metrics")
    if rc == 0:
        print(f"  {len(want['repwatch_mx_not_ok'])} repwatch_mx_not_ok series (none for ok results), "
              f"{len(want['repwatch_mx_ips'])} repwatch_mx_ips and {len(want['repwatch_mx_tls_ips'])} "
              "repwatch_mx_tls_ips counts, each as the servers answer")
    return rc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("fixture")
    s.add_argument("dir")
    s.add_argument("--dns", required=True, help="ADDR:PORT unbound listens on")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--maillog", help="Postfix's maillog_file (default DIR/maillog)")
    s.add_argument("--exact-ranges", action="store_true",
                   help="ranges of the sources' own /32s (for `repwatch run`), not the whole /24")
    for name in ("targets", "verify-lab", "verify-check", "verify-metrics"):
        sub.add_parser(name).add_argument("dir")
    s = sub.add_parser("expected")
    s.add_argument("dir")
    s.add_argument("--json", action="store_true", help="one JSON line per (source, domain)")
    s = sub.add_parser("set-access")
    s.add_argument("dir")
    s.add_argument("ip")
    s.add_argument("result", help='a check_client_access result: "OK", "550 5.7.1 text", ...')
    s = sub.add_parser("verify-stored")
    s.add_argument("dir")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", help="the agent's repwatch.db (opened read-only)")
    src.add_argument("--api", help="the agent's base URL: GET /api/v1/ips/IP")
    s.add_argument("--probed-from", type=int, required=True, help="unix s: probed no earlier")
    s.add_argument("--probed-to", type=int, required=True, help="unix s: probed no later")
    s.add_argument("--reused-from", help="a --save file: results that got a reply must be these, unchanged")
    s.add_argument("--save", help="write {ip: {domain: probed_at}} here")
    s = sub.add_parser("verify-webhooks")
    s.add_argument("dir")
    s.add_argument("log", help="tests/lab/webhook_receiver.py's log")
    s.add_argument("--from-line", type=int, default=0, help="only requests logged after this many lines")
    s.add_argument("--before", help="`expected --json` output from before the change (default: no event yet)")
    s.add_argument("--expect-some", action="store_true", help="fail if the fixture expects no item at all")
    v = sub.add_parser("verify-sessions")
    v.add_argument("dir")
    v.add_argument("--postfix-from", type=int, default=0, help="byte offset in the maillog")
    v.add_argument("--tarpit-from", type=int, default=0, help="byte offset in DIR/tarpit.jsonl")
    v.add_argument("--silent-from", type=int, default=0, help="byte offset in DIR/silent.jsonl")
    v.add_argument("--wait", type=float, default=5, help="seconds to wait for Postfix's last log lines")
    v.add_argument("--retried", action="store_true",
                   help="only results of class error were probed again (a daemon within min_interval)")
    v.add_argument("--settle", type=float, default=0,
                   help="once the counts match, read the logs again after this many seconds")
    for name in ("serve-silent", "serve-tarpit", "serve-sentinel"):
        s = sub.add_parser(name)
        s.add_argument("listen")
        s.add_argument("--log", help="one JSON line per session")
        s.add_argument("--ready-file")
    args = p.parse_args()
    if args.cmd == "fixture":
        return cmd_fixture(args)
    if args.cmd == "serve-silent":
        return serve(args, silent_session)
    if args.cmd == "serve-tarpit":
        return serve(args, tarpit_session)
    if args.cmd == "serve-sentinel":
        return cmd_serve_sentinel(args)
    if args.cmd == "targets":
        print("\n".join(str(t) for t in Lab(args.dir).targets))
        return 0
    return {"verify-lab": cmd_verify_lab, "expected": cmd_expected, "verify-check": cmd_verify_check,
            "verify-sessions": cmd_verify_sessions, "set-access": cmd_set_access, "verify-stored": cmd_verify_stored,
            "verify-webhooks": cmd_verify_webhooks, "verify-metrics": cmd_verify_metrics}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
