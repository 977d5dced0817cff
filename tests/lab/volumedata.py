#!/usr/bin/env python3
"""The volume lab: MTA log files in the four formats repwatch reads, written a
few records at a time, with what each record must add to the counts kept in a
ledger (DIR/ledger.json); and verifiers that compare the agent's volume.db,
/metrics and `check --json` with that ledger exactly.

  volumedata.py config DIR --state-dir S --dns ADDR:PORT --token-env VAR
  volumedata.py append DIR FORMAT N [--garbage] [--long] [--ignored K] [--partial]
  volumedata.py finish-partial DIR FORMAT      # writes the rest of the partial last line
  volumedata.py rotate DIR FORMAT rename|copytruncate
  volumedata.py big DIR FORMAT N                # N records at once (restart mid-file)
  volumedata.py push DIR URL TOKEN             # the push API, good and bad requests
  volumedata.py kill-mid-file DB SOURCE FROM TO LOG CMD...  # starts CMD, SIGKILLs it mid-file
  volumedata.py reset-stats DIR                # the agent restarted: its counters start at 0
  volumedata.py verify-db DIR VOLUME_DB
  volumedata.py verify-metrics DIR REPWATCH < metrics.txt   [--cycle]
  volumedata.py verify-check DIR REPWATCH < check.jsonl

Every record goes to one of two sending addresses of its format (IPv4 and IPv6),
to one of four receivers (gmail, microsoft, yahoo, other), and is delivered,
deferred (Gmail's 421 4.7.28 rate limit or a plain 451) or bounced. The reply
class of each distinct reply is asked of the agent itself (`repwatch classify`),
so the ledger never re-implements the catalogue.
"""
import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

FORMATS = ["postfix", "exim", "kumomta", "powermta"]
FILES = {"postfix": "mail.log", "exim": "mainlog", "kumomta": "kumo.jsonl", "powermta": "acct.csv"}
ADDRS = {
    "postfix": ("192.0.2.1", "2001:db8::1"),
    "exim": ("192.0.2.2", "2001:db8::2"),
    "kumomta": ("192.0.2.3", "2001:db8::3"),
    "powermta": ("192.0.2.4", "2001:db8::4"),
    "api": ("192.0.2.5", "2001:db8::5"),
}
POSTFIX_TAGS = {"postfix-ip1": "192.0.2.1", "postfix-v6": "2001:db8::1"}
RECEIVERS = [("gmail.com", "gmail"), ("outlook.com", "microsoft"), ("yahoo.com", "yahoo"), ("example.org", "other")]
GMAIL_421 = ("421 4.7.28 [192.0.2.1 15] Our system has detected an unusual rate of unsolicited mail originating "
             "from your IP address. To protect our users from spam, mail sent from your IP address has been "
             "temporarily rate limited. - gsmtp")
PLAIN_451 = "451 4.3.0 Mail server temporarily rejected message"
BOUNCE_550 = "550 5.1.1 The email account that you tried to reach does not exist"
PMTA_HEADER = ["type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction", "dsnStatus", "dsnDiag",
               "dsnMta", "bounceCat", "srcType", "srcMta", "dlvType", "dlvSourceIp", "dlvDestinationIp",
               "dlvEsmtpAvailable", "dlvSize", "vmta", "jobId", "envId", "queue", "vmtaPool"]
LONG_LINE = 1 << 20  # the tailer's max_line: anything longer is skipped whole
THROTTLING = {"rate_limit", "reputation_block", "blocked_by_list"}


def ledger_path(d):
    return os.path.join(d, "ledger.json")


def load(d):
    with open(ledger_path(d)) as f:
        return json.load(f)


def save(d, ledger):
    tmp = ledger_path(d) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ledger, f, indent=1, sort_keys=True)
    os.replace(tmp, ledger_path(d))


def new_stats():
    return {"counted": 0, "ignored": 0, "malformed": 0, "too_long": 0, "rename": 0, "truncate": 0}


# ---- records -----------------------------------------------------------------

def record(fmt, seq, now):
    """One delivery attempt of `fmt`: (line, key) with key "ip|outcome|group|reply|utc-date"."""
    v4, v6 = ADDRS[fmt]
    ip = v6 if seq % 3 == 2 else v4
    domain, group = RECEIVERS[seq % 4]
    outcome = ["delivered", "delivered", "delivered", "deferred", "bounced"][seq % 5]
    reply = ""
    if outcome == "deferred":
        reply = GMAIL_421 if group == "gmail" else PLAIN_451
    elif outcome == "bounced":
        reply = BOUNCE_550
    rcpt = f"u{seq}@{domain}"
    mx = f"mx.{domain}"
    t = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    key = "|".join([ip, outcome, group, reply, t.strftime("%Y-%m-%d")])
    if fmt == "postfix":
        tag = "postfix-v6" if ":" in ip else "postfix-ip1"
        status = {"delivered": "sent", "deferred": "deferred", "bounced": "bounced"}[outcome]
        dsn = {"delivered": "2.0.0", "deferred": "4.7.28" if group == "gmail" else "4.3.0", "bounced": "5.1.1"}[outcome]
        text = "250 2.0.0 OK 1763870000 a1si" + str(seq) if outcome == "delivered" else \
            f"host {mx}[198.51.100.25] said: {reply} (in reply to end of DATA command)"
        # RFC 3164 time: the agent reads it in its local zone, which the test sets to UTC.
        line = (f"{t.strftime('%b')} {t.day:2d} {t.strftime('%H:%M:%S')} mx1 {tag}/smtp[{1000 + seq % 30000}]: "
                f"{seq:010X}: to=<{rcpt}>, relay={mx}[198.51.100.25]:25, delay=1.1, delays=0.1/0/0.5/0.5, "
                f"dsn={dsn}, status={status} ({text})")
    elif fmt == "exim":
        stamp = t.strftime("%Y-%m-%d %H:%M:%S")
        host = f"H={mx} [198.51.100.25]:25 I=[{ip}]:{40000 + seq % 20000}"
        msgid = f"1tp{seq % 1000:03d}-{seq % 1000000:06d}-Xy"  # Exim's 6-6-2 id
        if outcome == "delivered":
            line = f'{stamp} {msgid} => {rcpt} R=dnslookup T=remote_smtp {host} C="250 2.0.0 OK id={seq}" QT=2s DT=1s'
        elif outcome == "deferred":
            line = (f"{stamp} {msgid} == {rcpt} R=dnslookup T=remote_smtp defer (-44) {host}: "
                    f"SMTP error from remote mail server after end of data: {reply}")
        else:
            line = (f"{stamp} {msgid} ** {rcpt} R=dnslookup T=remote_smtp {host}: "
                    f"SMTP error from remote mail server after RCPT TO:<{rcpt}>: {reply}")
    elif fmt == "kumomta":
        kind = {"delivered": "Delivery", "deferred": "TransientFailure", "bounced": "Bounce"}[outcome]
        code, text = (250, "OK") if outcome == "delivered" else (int(reply[:3]), reply[4:])
        src = f"[{ip}]:{40000 + seq % 20000}" if ":" in ip else f"{ip}:{40000 + seq % 20000}"
        line = json.dumps({"type": kind, "id": f"id{seq}", "sender": "b@d.example", "recipient": rcpt,
                           "queue": domain, "site": f"{mx}", "size": 2100,
                           "response": {"code": code, "enhanced_code": None, "content": text, "command": None},
                           "peer_address": {"name": mx, "addr": "198.51.100.25"}, "timestamp": int(now),
                           "source_address": {"address": src, "server_name": "mta1"}},
                          separators=(",", ":"))
    elif fmt == "powermta":
        kind = {"delivered": "d", "deferred": "t", "bounced": "b"}[outcome]
        diag = "smtp;250 2.0.0 OK" if outcome == "delivered" else "smtp;" + reply
        row = {"type": kind, "timeLogged": t.strftime("%Y-%m-%d %H:%M:%S+0000"),
               "timeQueued": t.strftime("%Y-%m-%d %H:%M:%S+0000"), "orig": "b@d.example", "rcpt": rcpt,
               "dsnAction": {"d": "relayed", "t": "delayed", "b": "failed"}[kind],
               "dsnStatus": "2.0.0 (success)" if kind == "d" else reply[4:9] + " (status)", "dsnDiag": diag,
               "dsnMta": f"{mx} (198.51.100.25)", "srcType": "smtp", "srcMta": "mta1.d.example (192.0.2.100)",
               "dlvType": "smtp", "dlvSourceIp": ip, "dlvDestinationIp": "198.51.100.25",
               "dlvEsmtpAvailable": "PIPELINING,8BITMIME,SIZE,STARTTLS", "dlvSize": "2100", "vmta": "vmta-a",
               "jobId": str(seq), "queue": f"{domain}/vmta-a", "vmtaPool": "pool-a"}
        return row, key
    else:
        raise SystemExit(f"unknown format {fmt}")
    return line, key


def csv_field(v):
    v = str(v)
    if any(c in v for c in ',"\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


def pmta_line(row, header):
    return ",".join(csv_field(row.get(col, "")) for col in header)


def render(ledger, fmt, rec):
    return pmta_line(rec, ledger["pmta_header"]) if fmt == "powermta" else rec


def ignored_line(fmt, seq, now):
    t = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    if fmt == "postfix":
        return (f"{t.strftime('%b')} {t.day:2d} {t.strftime('%H:%M:%S')} mx1 postfix/qmgr[99]: {seq:010X}: "
                f"from=<b@d.example>, size=2100, nrcpt=1 (queue active)")
    if fmt == "exim":
        return (f"{t.strftime('%Y-%m-%d %H:%M:%S')} 1tpIGN-{seq % 1000000:06d}-Zz <= b@d.example H=client.d.example "
                f"[203.0.113.5]:51000 I=[192.0.2.100]:25 P=esmtps S=2100 id={seq}@d.example")
    if fmt == "kumomta":
        return json.dumps({"type": "Reception", "id": f"r{seq}", "recipient": "u@example.org", "timestamp": int(now),
                           "source_address": {"address": "127.0.0.1:25"}}, separators=(",", ":"))
    return None  # PowerMTA: see append (a receipt record)


def count(ledger, key, n=1):
    ledger["counts"][key] = ledger["counts"].get(key, 0) + n


def write(path, text):
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)


# ---- commands ----------------------------------------------------------------

def cmd_config(a):
    os.makedirs(a.dir, exist_ok=True)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    ledger = {"counts": {}, "stats": {f: new_stats() for f in FORMATS}, "seq": 0, "partial": {},
              "pmta_header": PMTA_HEADER, "today": today}
    for f in FORMATS:
        open(os.path.join(a.dir, FILES[f]), "w").close()
    with open(os.path.join(a.dir, FILES["powermta"]), "w") as f:
        f.write(",".join(PMTA_HEADER) + "\n")
    ledger["stats"]["powermta"]["ignored"] += 1  # the header line
    save(a.dir, ledger)
    tags = ", ".join(f'"{k}" = "{v}"' for k, v in POSTFIX_TAGS.items())
    sources = "\n".join(
        f'[[volume.sources]]\nkind = "{f}"\nname = "{f}"\npath = "{os.path.join(a.dir, FILES[f])}"\n'
        + (f"tags = {{ {tags} }}\n" if f == "postfix" else "") for f in FORMATS)
    with open(os.path.join(a.dir, "repwatch.toml"), "w") as f:
        f.write(f"""# Written by tests/lab/volumedata.py
[agent]
state_dir = "{a.state_dir}"
interval = "1h"

[dns]
servers = ["{a.dns}"]
timeout = "300ms"

[fcrdns]
enabled = false

[spf]
enabled = false

[[ranges]]
name = "warm"
cidrs = ["192.0.2.0/29", "2001:db8::/125"]
warmup_start = "{today}"
warmup_schedule = "double-30"

[volume]
poll_interval = "100ms"

{sources}
[api]
token_env = "{a.token_env}"

[warmup]
tolerance = 1.2
backoff_share = 0.05
backoff_min_attempts = 50
""")


def cmd_append(a):
    ledger = load(a.dir)
    fmt = a.format
    path = os.path.join(a.dir, FILES[fmt])
    now = time.time()
    st = ledger["stats"][fmt]
    out = []
    if a.garbage:
        out.append("this is not a log line at all, just garbage \x01\x02")
        st["malformed"] += 1
    if a.long:
        # Over the tailer's limit: skipped whole, and the line after it counts.
        out.append(("garbage-" * (LONG_LINE // 8 + 16))[:LONG_LINE + 100])
        st["too_long"] += 1
    for i in range(a.ignored):
        line = ignored_line(fmt, ledger["seq"] + i, now)
        if line is None:  # a PowerMTA receipt record: type r, no delivery
            line = pmta_line({"type": "r", "timeLogged": "2026-01-01 00:00:00+0000", "orig": "b@d.example",
                              "rcpt": "u@example.org", "srcType": "smtp"}, ledger["pmta_header"])
        out.append(line)
        st["ignored"] += 1
    for _ in range(a.n):
        rec, key = record(fmt, ledger["seq"], now)
        ledger["seq"] += 1
        out.append(render(ledger, fmt, rec))
        count(ledger, key)
        st["counted"] += 1
    text = "".join(line + "\n" for line in out)
    if a.partial:
        if fmt in ledger["partial"]:
            raise SystemExit(f"{fmt} already ends in a partial line")
        rec, key = record(fmt, ledger["seq"], now)
        ledger["seq"] += 1
        line = render(ledger, fmt, rec)
        cut = len(line) // 2
        text += line[:cut]
        ledger["partial"][fmt] = {"rest": line[cut:], "key": key}
    write(path, text)
    save(a.dir, ledger)


def cmd_finish_partial(a):
    ledger = load(a.dir)
    p = ledger["partial"].pop(a.format)
    write(os.path.join(a.dir, FILES[a.format]), p["rest"] + "\n")
    count(ledger, p["key"])
    ledger["stats"][a.format]["counted"] += 1
    save(a.dir, ledger)


def cmd_rotate(a):
    ledger = load(a.dir)
    path = os.path.join(a.dir, FILES[a.format])
    if a.how == "rename":
        os.replace(path, path + ".1")
        open(path, "w").close()
        ledger["stats"][a.format]["rename"] += 1
    else:  # copytruncate, as logrotate does it
        shutil.copyfile(path, path + ".1")
        os.truncate(path, 0)
        ledger["stats"][a.format]["truncate"] += 1
    if a.format == "powermta":
        # A new accounting file starts with its header; this one in another column order
        # (the record type stays first, as PowerMTA writes it).
        header = PMTA_HEADER[:1] + list(reversed(PMTA_HEADER[1:]))
        ledger["pmta_header"] = header
        write(path, ",".join(header) + "\n")
        ledger["stats"]["powermta"]["ignored"] += 1
    save(a.dir, ledger)


def cmd_big(a):
    ledger = load(a.dir)
    now = time.time()
    chunks = []
    for _ in range(a.n):
        rec, key = record(a.format, ledger["seq"], now)
        ledger["seq"] += 1
        chunks.append(render(ledger, a.format, rec) + "\n")
        count(ledger, key)
    ledger["stats"][a.format]["counted"] += a.n
    write(os.path.join(a.dir, FILES[a.format]), "".join(chunks))
    save(a.dir, ledger)
    print(os.path.getsize(os.path.join(a.dir, FILES[a.format])))


def cmd_kill_mid_file(a):
    """Starts the agent (CMD) and kills it (SIGKILL) as soon as SOURCE's stored position
    has moved past FROM but not yet reached TO: it dies in the middle of reading a file.
    Watching from the moment it starts, so a fast catch-up cannot finish unseen."""
    with open(a.log, "w") as log:
        agent = subprocess.Popen(a.command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        db = None
        while time.time() < deadline and agent.poll() is None:
            try:
                db = db or sqlite3.connect(f"file:{a.db}?mode=ro", uri=True, timeout=10)
                row = db.execute("SELECT offset FROM log_positions WHERE source = ?", (a.source,)).fetchone()
            except sqlite3.OperationalError:
                row = None
            if row and a.start < row[0] < a.end:
                agent.kill()
                print(row[0])
                return 0
            if row and row[0] >= a.end:
                print(f"  the agent read all {a.end} bytes before it could be killed", file=sys.stderr)
                return 1
            time.sleep(0.002)
        print(f"  the stored position never moved (agent exit status {agent.poll()})", file=sys.stderr)
        return 1
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait()


def cmd_reset_stats(a):
    ledger = load(a.dir)
    ledger["stats"] = {f: new_stats() for f in FORMATS}
    save(a.dir, ledger)


def post(url, token, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + "/api/v1/volume", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def cmd_push(a):
    """The push API against the running agent: every refusal changes nothing, then
    two accepted requests go into the ledger."""
    ledger = load(a.dir)
    v4, v6 = ADDRS["api"]
    now = int(time.time())
    good = {"ip": v4, "count": 40, "outcome": "delivered", "receiver": "gmail.com"}
    bad = [
        ("no token", None, good, 401, "missing or wrong bearer token"),
        ("wrong token", a.token + "x", good, 401, "missing or wrong bearer token"),
        ("token as a prefix", a.token[:-1], good, 401, "missing or wrong bearer token"),
        ("not JSON", a.token, b'{"ip": "192.0.2.5", "count": 4', 400, "not valid JSON"),
        ("empty batch", a.token, [], 400, "the batch is empty"),
        ("count zero", a.token, dict(good, count=0), 400, "count must be an integer"),
        ("count a string", a.token, dict(good, count="40"), 400, "count must be an integer"),
        ("ip outside the ranges", a.token, dict(good, ip="198.51.100.7"), 400, "in no configured range"),
        ("not an ip", a.token, dict(good, ip="mx1.example"), 400, 'ip "mx1.example" is not an IP address'),
        ("bad outcome", a.token, dict(good, outcome="sent"), 400, "outcome must be"),
        ("unknown field", a.token, dict(good, colour="red"), 400, "colour: unknown field"),
        ("too old", a.token, dict(good, at=now - 200 * 86400), 400, "more than 120 days old"),
        ("bad time", a.token, dict(good, at="yesterday"), 400, "at must be Unix seconds"),
        ("one bad item spoils the batch", a.token,
         [good, dict(good, ip=v6), dict(good, count=-3), good], 400, "[2].count must be an integer"),
        ("a batch item not an object", a.token, [good, 7], 400, "[1] must be an object"),
    ]
    failures = 0
    for what, token, body, want_code, want_text in bad:
        code, text = post(a.url, token, body)
        ok = code == want_code and want_text in text
        print(f"  {'ok' if ok else 'WRONG'}: {what}: {code} {text.strip()}")
        failures += not ok
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    accepted = [
        {"ip": v4, "count": 40, "outcome": "delivered", "receiver": "gmail.com"},
        [{"ip": v6, "count": 25, "outcome": "delivered", "receiver": "mx.outlook.com", "at": now - 60},
         {"ip": v6, "count": 3, "outcome": "deferred", "receiver": "gmail.com", "reply": GMAIL_421},
         {"ip": v4, "count": 2, "outcome": "bounced", "receiver": "example.org",
          "at": dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}],
    ]
    groups = dict(RECEIVERS)
    for body in accepted:
        items = body if isinstance(body, list) else [body]
        code, text = post(a.url, a.token, body)
        ok = code == 200 and json.loads(text or "{}").get("accepted") == len(items)
        print(f"  {'ok' if ok else 'WRONG'}: accepted {len(items)} item(s): {code} {text.strip()}")
        failures += not ok
        if ok:
            for it in items:
                rcv = it["receiver"].removeprefix("mx.")
                key = "|".join([it["ip"], it["outcome"], groups.get(rcv, "other"), it.get("reply", ""), today])
                count(ledger, key, it["count"])
    save(a.dir, ledger)
    return 1 if failures else 0


# ---- verifiers -----------------------------------------------------------------

def classes(ledger, repwatch):
    """The reply class of every distinct reply in the ledger, from `repwatch classify`."""
    out = {"": ""}
    for key in ledger["counts"]:
        reply = key.split("|")[3]
        if reply not in out:
            r = subprocess.run([repwatch, "classify", "--json", reply], capture_output=True, text=True, check=True)
            out[reply] = json.loads(r.stdout)["class"]
    return out


def expected_rows(ledger, repwatch):
    cls = classes(ledger, repwatch)
    rows = {}
    for key, n in ledger["counts"].items():
        ip, outcome, group, reply, _ = key.split("|")
        k = (ip, outcome, group, cls[reply] if outcome != "delivered" else "")
        rows[k] = rows.get(k, 0) + n
    return rows


def diff(what, want, got):
    bad = 0
    for k in sorted(set(want) | set(got), key=str):
        if want.get(k, 0) != got.get(k, 0):
            print(f"  {what} {k}: want {want.get(k, 0)}, got {got.get(k, 0)}")
            bad += 1
    return bad


def cmd_verify_db(a):
    ledger = load(a.dir)
    want = expected_rows(ledger, a.repwatch)
    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True, timeout=10)
    names = ["delivered", "deferred", "bounced"]
    got = {}
    for ip, outcome, grp, cls, n in db.execute(
            "SELECT ip, outcome, grp, cls, SUM(count) FROM volume GROUP BY ip, outcome, grp, cls"):
        got[(ip, names[outcome], grp, cls)] = n
    bad = diff("volume.db", want, got)
    if not bad and not a.quiet:
        print(f"  volume.db: {len(want)} (ip, outcome, group, class) rows, {sum(want.values())} attempts, all exact")
    return 1 if bad else 0


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, labels = name_labels.split("{", 1)
            pairs = []
            for part in labels.rstrip("}").split('",'):
                if not part:
                    continue
                k, v = part.split('="', 1)
                pairs.append((k, v.rstrip('"')))
            out[(name, tuple(sorted(pairs)))] = float(value)
        else:
            out[(name_labels, ())] = float(value)
    return out


def cmd_verify_metrics(a):
    ledger = load(a.dir)
    m = parse_metrics(sys.stdin.read())
    bad = 0
    for fmt in FORMATS:
        st = ledger["stats"][fmt]
        for result in ["counted", "ignored", "malformed", "too_long"]:
            got = m.get(("repwatch_volume_log_lines_total", (("result", result), ("source", fmt))))
            if got != st[result]:
                print(f"  {fmt} lines {result}: want {st[result]}, got {got}")
                bad += 1
        for kind in ["rename", "truncate"]:
            got = m.get(("repwatch_volume_log_rotations_total", (("kind", kind), ("source", fmt))))
            if got != st[kind]:
                print(f"  {fmt} rotations {kind}: want {st[kind]}, got {got}")
                bad += 1
        if m.get(("repwatch_volume_log_up", (("source", fmt),))) != 1:
            print(f"  {fmt}: repwatch_volume_log_up is not 1")
            bad += 1
    if a.cycle:
        bad += verify_warmup_metrics(ledger, m, a.repwatch)
    if not bad:
        print("  /metrics: every log source's line and rotation counts exact" +
              (", warm-up series exact" if a.cycle else ""))
    return 1 if bad else 0


def today_by_ip(ledger, repwatch):
    """Today's attempts and throttled attempts per address, and per outcome in all."""
    cls = classes(ledger, repwatch)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    per_ip, outcomes = {}, {"delivered": 0, "deferred": 0, "bounced": 0}
    for key, n in ledger["counts"].items():
        ip, outcome, _, reply, day = key.split("|")
        if day != today:
            continue
        sent, throttled = per_ip.get(ip, (0, 0))
        per_ip[ip] = (sent + n, throttled + (n if cls[reply] in THROTTLING else 0))
        outcomes[outcome] += n
    return per_ip, outcomes


def expected_signal(sent, throttled):
    # double-30, day 0: allowance 50; [warmup] tolerance 1.2, backoff_share 0.05, backoff_min_attempts 50.
    if sent >= 50 and throttled / sent > 0.05:
        return "backoff"
    if sent > 50 * 1.2:
        return "ahead"
    return "ok"


def verify_warmup_metrics(ledger, m, repwatch):
    per_ip, outcomes = today_by_ip(ledger, repwatch)
    bad = 0
    for outcome, n in outcomes.items():
        got = m.get(("repwatch_volume_today", (("outcome", outcome), ("range", "warm"))))
        if got != n:
            print(f"  repwatch_volume_today {outcome}: want {n}, got {got}")
            bad += 1
    signals = {}
    for ip, (sent, throttled) in sorted(per_ip.items()):
        lab = (("ip", ip), ("range", "warm"))
        want = {"repwatch_warmup_sent": sent, "repwatch_warmup_allowance": 50,
                "repwatch_warmup_ratio": round(sent / 50, 3)}
        for name, value in want.items():
            got = m.get((name, lab))
            if got is None or abs(got - value) > 1e-3:
                print(f"  {name}{{ip={ip}}}: want {value}, got {got}")
                bad += 1
        if m.get(("repwatch_warmup_day", (("ip", ip), ("range", "warm"), ("schedule", "double-30")))) != 0:
            print(f"  repwatch_warmup_day{{ip={ip}}} is not 0")
            bad += 1
        sig = expected_signal(sent, throttled)
        signals[sig] = signals.get(sig, 0) + 1
        if m.get(("repwatch_warmup_signal", lab + (("signal", sig),))) != 1:
            print(f"  repwatch_warmup_signal{{ip={ip}, signal={sig}}} missing (sent {sent}, throttled {throttled})")
            bad += 1
    # Addresses of the range that sent nothing are on the ramp too (day 0, ok).
    for sig in ["ok", "ahead", "backoff", "stalled", "completed"]:
        got = m.get(("repwatch_warmup_ips", (("range", "warm"), ("signal", sig))), 0)
        want = signals.get(sig, 0) + (16 - len(per_ip) if sig == "ok" else 0)
        if got != want:
            print(f"  repwatch_warmup_ips{{signal={sig}}}: want {want}, got {got}")
            bad += 1
    print(f"  warm-up: {len(per_ip)} sending addresses, signals {dict(sorted(signals.items()))}")
    return bad


def cmd_verify_check(a):
    ledger = load(a.dir)
    per_ip, _ = today_by_ip(ledger, a.repwatch)
    # JSON Lines: zone lines first, then one object per address.
    ips = [r for r in (json.loads(line) for line in sys.stdin if line.strip()) if "ip" in r]
    bad = 0
    seen = 0
    for r in ips:
        ip = r["ip"]
        if ip not in per_ip:
            continue
        seen += 1
        sent, throttled = per_ip[ip]
        w, v = r.get("warmup") or {}, r.get("volume") or {}
        got_sent = sum(v.get(k, 0) for k in ("delivered", "deferred", "bounced"))
        want_sig = expected_signal(sent, throttled)
        if got_sent != sent or w.get("sent") != sent or w.get("signal") != want_sig or w.get("allowance") != 50:
            print(f"  check --json {ip}: want sent {sent} signal {want_sig}, got volume {v} warmup {w}")
            bad += 1
    if seen != len(per_ip):
        print(f"  check --json reported {seen} of {len(per_ip)} sending addresses")
        bad += 1
    if not bad:
        print(f"  check --json: volume and warm-up of {seen} addresses exact")
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("dir")
    c.add_argument("--state-dir", required=True)
    c.add_argument("--dns", required=True)
    c.add_argument("--token-env", required=True)
    c = sub.add_parser("append")
    c.add_argument("dir")
    c.add_argument("format", choices=FORMATS)
    c.add_argument("n", type=int)
    c.add_argument("--garbage", action="store_true")
    c.add_argument("--long", action="store_true")
    c.add_argument("--ignored", type=int, default=0)
    c.add_argument("--partial", action="store_true")
    c = sub.add_parser("finish-partial")
    c.add_argument("dir")
    c.add_argument("format", choices=FORMATS)
    c = sub.add_parser("rotate")
    c.add_argument("dir")
    c.add_argument("format", choices=FORMATS)
    c.add_argument("how", choices=["rename", "copytruncate"])
    c = sub.add_parser("big")
    c.add_argument("dir")
    c.add_argument("format", choices=FORMATS)
    c.add_argument("n", type=int)
    c = sub.add_parser("kill-mid-file")
    c.add_argument("db")
    c.add_argument("source")
    c.add_argument("start", type=int)
    c.add_argument("end", type=int)
    c.add_argument("log")
    c.add_argument("command", nargs=argparse.REMAINDER)
    c = sub.add_parser("reset-stats")
    c.add_argument("dir")
    c = sub.add_parser("push")
    c.add_argument("dir")
    c.add_argument("url")
    c.add_argument("token")
    c = sub.add_parser("verify-db")
    c.add_argument("dir")
    c.add_argument("db")
    c.add_argument("repwatch")
    c.add_argument("--quiet", action="store_true")
    c = sub.add_parser("verify-metrics")
    c.add_argument("dir")
    c.add_argument("repwatch")
    c.add_argument("--cycle", action="store_true")
    c = sub.add_parser("verify-check")
    c.add_argument("dir")
    c.add_argument("repwatch")
    a = p.parse_args()
    fn = {"config": cmd_config, "append": cmd_append, "finish-partial": cmd_finish_partial, "rotate": cmd_rotate,
          "big": cmd_big, "kill-mid-file": cmd_kill_mid_file, "reset-stats": cmd_reset_stats, "push": cmd_push, "verify-db": cmd_verify_db,
          "verify-metrics": cmd_verify_metrics, "verify-check": cmd_verify_check}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()
