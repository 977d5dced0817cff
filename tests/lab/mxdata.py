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

  mxdata.py fixture DIR --dns ADDR:PORT --state-dir D [--maillog FILE]
  mxdata.py targets DIR                          # `repwatch check` targets, one per line
  mxdata.py serve-silent ADDR:PORT [--log F] [--ready-file F]   # accepts, never greets
  mxdata.py serve-tarpit ADDR:PORT [--log F] [--ready-file F]   # slow multi-line banner, then 250s
  mxdata.py serve-sentinel 127.0.0.1:53 [--log F] [--ready-file F]  # logs any use of resolv.conf
  mxdata.py verify-lab DIR                       # SMTP from every source to every receiver
  mxdata.py expected DIR                         # the expectations, readable
  mxdata.py verify-check DIR < check.jsonl       # `repwatch check --json` output
  mxdata.py verify-sessions DIR [--postfix-from N] [--tarpit-from N] [--silent-from N]
                                                 # the servers' logs of the probe's sessions

Every server listens on port 25 of its own 127.0.0.x address (the probe's default
port); the lab namespace is ours, so Postfix's addresses are added to lo
(lab_postfix). Verifiers print one line per problem and exit 1 if there is any.
"""

import argparse
import concurrent.futures
import errno
import grp
import ipaddress
import json
import os
import pwd
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

# The DNS lab's model of what unbound answers, and the DNSBL lab's bookkeeping.
from dnsdata import Model, dig, parse_rdata
from labzones import Problems

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
    addr, port = listen.rsplit(":", 1)
    out = [
        "# Written by tests/lab/mxdata.py: unbound for the MX probe lab, loopback only.",
        "# Everything is local-data under local-zone \".\" static: no name is ever",
        "# looked up elsewhere. The forward-zone is never used; it names where resolv.conf",
        "# points in the lab namespace (127.0.0.1:53), where a sentinel logs any query.",
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


def repwatch_toml(f, dns, state_dir):
    local = [ip for ip, *_ in f.sources if ip != NOT_LOCAL]
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(SOURCE_CIDR) for ip in local)
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
        f"cidrs = [{toml_str(SOURCE_CIDR)}]",
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
    (out / "repwatch.toml").write_text(repwatch_toml(f, args.dns, args.state_dir))
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


def wait_sessions(lab, offsets, want, timeout):
    """The servers log a session after it ends (postlogd asynchronously): wait
    until the counts match `want` ({kind: {source: n}}) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        got = read_sessions(lab, offsets)
        if counts(got) == want or time.monotonic() > deadline:
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


def probe_sessions(lab):
    """{kind: {source: n}}: the sessions the probe opens, one per domain that does
    not end at connect, on the server that answers there."""
    want = {k: {} for k in KINDS}
    for t in lab.targets:
        for d in lab.domains:
            e = lab.expect(t, d)
            if e["stage"] != "connect":
                kind = lab.service(e["address"])
                want[kind][str(t)] = want[kind].get(str(t), 0) + 1
    return want


def cmd_verify_sessions(args):
    lab = Lab(args.dir)
    offsets = {"postfix": args.postfix_from, "tarpit": args.tarpit_from, "silent": args.silent_from}
    want = probe_sessions(lab)
    sessions = wait_sessions(lab, offsets, want, args.wait)
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
        print(f"  {n['postfix']} Postfix, {n['tarpit']} tarpit, {n['silent']} silent sessions: no DATA, "
              "each ended with QUIT (or Postfix hung up after its 421)")
    return rc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("fixture")
    s.add_argument("dir")
    s.add_argument("--dns", required=True, help="ADDR:PORT unbound listens on")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--maillog", help="Postfix's maillog_file (default DIR/maillog)")
    for name in ("targets", "verify-lab", "expected", "verify-check"):
        sub.add_parser(name).add_argument("dir")
    v = sub.add_parser("verify-sessions")
    v.add_argument("dir")
    v.add_argument("--postfix-from", type=int, default=0, help="byte offset in the maillog")
    v.add_argument("--tarpit-from", type=int, default=0, help="byte offset in DIR/tarpit.jsonl")
    v.add_argument("--silent-from", type=int, default=0, help="byte offset in DIR/silent.jsonl")
    v.add_argument("--wait", type=float, default=5, help="seconds to wait for Postfix's last log lines")
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
            "verify-sessions": cmd_verify_sessions}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
