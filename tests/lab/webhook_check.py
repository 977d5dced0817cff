#!/usr/bin/env python3
"""Checks what tests/lab/webhook_receiver.py logged against what repwatch had to
send. Verifiers print one line per problem (and a short summary) and exit 1 if
there is any problem.

  webhook_check.py selftest
      the signature verifier against the Standard Webhooks test vector (and
      tampered variants that must fail)
  webhook_check.py zone FILE --cidr C --listed N [--test-point]
      writes an rbldnsd ip4set: the RFC 5782 test point 127.0.0.2 and N
      addresses of C (codes and TXT vary), nothing else
  webhook_check.py expect --zone Z --data FILE... --range R --cidr C --type T [--ip IP...]
      the items repwatch must send for zone Z served from those ip4set files,
      read back with labzones.py's independent reader: JSON Lines on stdout
  webhook_check.py wait LOG --expect F [--format FMT] [--timeout S]
      polls LOG until every expected item was answered 2xx (exit 0) or times out
  webhook_check.py wait-requests LOG --min N [--timeout S]
  webhook_check.py signatures LOG --secret-file F [--tolerance 300]
  webhook_check.py delivery LOG --expect F [--format FMT] [--max-ids N] [--allow-extra]
  webhook_check.py shape LOG --format standard|slack|alertmanager
  webhook_check.py retry-after LOG --status 429 --min S
  webhook_check.py after LOG --status 410 --max N
      at most N requests arrived after the first one answered STATUS
  webhook_check.py count LOG [--2xx] [--status N|none] [--ids]
  webhook_check.py first-delivered LOG
      the first request's webhook-id was answered 2xx at some point
  webhook_check.py metrics FILE 'NAME{k="v",...} OP NUMBER'...
      Prometheus exposition checks; OP is one of == != >= <= > <

An item is identified by (type, ip, subject) where subject is the item's zone,
domain, check/subject: the same listing raised twice would be two items with
one key. Types are compared as alertnames do ("dnsbl.listed" ~
"repwatch_dnsbl_listed") so one expectation serves every format.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import labzones  # noqa: E402  (the lab's independent rbldnsd data reader)

TOLERANCE = 300  # seconds; what the Standard Webhooks reference libraries accept
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CLEARING = {"dnsbl.delisted", "fcrdns.resolved", "spf.resolved", "mx.resolved", "zone.recovered",
            "warmup.completed"}


class Problems:
    def __init__(self, limit=40):
        self.items = []
        self.limit = limit

    def add(self, msg):
        self.items.append(msg)
        if len(self.items) <= self.limit:
            print("  " + msg)

    def finish(self, what, ok_line=None):
        if self.items:
            if len(self.items) > self.limit:
                print(f"  ... and {len(self.items) - self.limit} more")
            print(f"  {what}: {len(self.items)} problem(s)")
            return 1
        if ok_line:
            print("  " + ok_line)
        return 0


# ---------------------------------------------------------------------------
# Standard Webhooks


def whsec_key(secret):
    secret = secret.strip()
    if not secret.startswith("whsec_"):
        raise ValueError("secret does not start with whsec_")
    return base64.b64decode(secret[len("whsec_"):], validate=True)


def sign(key, msg_id, timestamp, body):
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_signature(key, msg_id, timestamp, body, header):
    """True if any v1 signature of the space-separated header matches (constant time)."""
    expected = sign(key, msg_id, timestamp, body).split(",", 1)[1].encode()
    ok = False
    for part in header.split(" "):
        version, sep, sig = part.partition(",")
        if not sep or version != "v1":
            continue
        ok |= hmac.compare_digest(expected, sig.encode())  # no early exit either
    return ok


def cmd_selftest(_args):
    p = Problems()
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    key = whsec_key(secret)
    got = sign(key, msg_id, ts, body)
    if got != want:
        p.add(f"test vector: computed {got}, published {want}")
    cases = [
        ("the published signature", want, body, msg_id, ts, True),
        ("among other signatures", f"v1a,AAAA v1,bogus {want} v2,x", body, msg_id, ts, True),
        ("a tampered body", want, b'{"test": 2432232315}', msg_id, ts, False),
        ("another id", want, body, "msg_p5jXN8AQM9LWM0D4loKWxJeK", ts, False),
        ("another timestamp", want, body, msg_id, ts + 1, False),
        ("the v1a scheme", "v1a," + want[3:], body, msg_id, ts, False),
        ("no scheme", want[3:], body, msg_id, ts, False),
        ("an empty header", "", body, msg_id, ts, False),
    ]
    for what, header, b, i, t, expect in cases:
        if verify_signature(key, i, t, b, header) != expect:
            p.add(f"verifier {'rejects' if expect else 'accepts'} {what}")
    other = whsec_key("whsec_" + base64.b64encode(b"x" * 32).decode())
    if verify_signature(other, msg_id, ts, body, want):
        p.add("verifier accepts the test vector under another key")
    return p.finish("selftest", "verifier matches the Standard Webhooks test vector; tampering is rejected")


# ---------------------------------------------------------------------------
# The receiver's log


class Request:
    def __init__(self, obj):
        self.raw = obj
        self.seq = obj.get("seq")
        self.t = obj.get("t", 0.0)
        self.status = obj.get("status")
        self.method = obj.get("method")
        self.path = obj.get("path")
        self.headers = defaultdict(list)
        for k, v in obj.get("headers", []):
            self.headers[k.lower()].append(v)
        self.body = base64.b64decode(obj.get("body_b64", ""))
        self.body_error = obj.get("body_error")

    def header(self, name):
        values = self.headers.get(name)
        return values[0] if values else None

    @property
    def id(self):
        return self.header("webhook-id")

    @property
    def ok(self):
        return isinstance(self.status, int) and 200 <= self.status < 300

    def where(self):
        return f"request #{self.seq} ({self.id or 'no webhook-id'}, answered {self.status})"


def read_log(path, p=None):
    reqs = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return reqs
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            if p is not None and n < len(text.splitlines()):  # the last line may be half written
                p.add(f"{path}:{n}: not JSON")
            continue
        if "internal_error" in obj or obj.get("malformed"):
            if p is not None:
                p.add(f"{path}:{n}: receiver saw {obj.get('internal_error') or 'a malformed request'}: {line[:200]}")
            continue
        reqs.append(Request(obj))
    return reqs


def norm_type(t):
    t = str(t)
    return (t[len("repwatch_"):] if t.startswith("repwatch_") else t).replace(".", "_")


def item_key(type_, item):
    if not isinstance(item, dict):
        return (norm_type(type_), "?", json.dumps(item))
    subject = ""
    for k in ("zone", "domain", "receiver", "subject", "check"):
        if item.get(k):
            subject = str(item[k])
            break
    return (norm_type(type_), str(item.get("ip", "")), subject)


def show_key(key):
    return f"{key[0]} {key[1] or '-'} {key[2] or '-'}"


def body_items(req, fmt):
    """(type, [(key, item-ish)], count) from a request body, or raise ValueError."""
    body = json.loads(req.body)
    if fmt == "standard":
        t = body["type"]
        return t, [(item_key(t, it), it) for it in body["data"]["items"]], len(body["data"]["items"])
    if fmt == "alertmanager":
        out = []
        for a in body["alerts"]:
            labels = a.get("labels", {})
            out.append((item_key(labels.get("alertname", "?"), labels), labels))
        t = body["alerts"][0]["labels"]["alertname"] if body["alerts"] else "?"
        return t, out, len(out)
    if fmt == "slack":
        m = re.match(r"^repwatch (.*?): (\S+) \u2014 (\d+) items?(: |$)", body["text"])
        if not m:
            raise ValueError(f"slack text not understood: {body['text'][:120]!r}")
        return m.group(2), None, int(m.group(3))
    raise ValueError(f"unknown format {fmt}")


def read_expect(path):
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def delivered(reqs, fmt):
    """{id: first 2xx request} and the items delivered: Counter of keys over distinct ids."""
    ok_ids = {}
    for r in reqs:
        if r.ok and r.id and r.id not in ok_ids:
            ok_ids[r.id] = r
    counts = Counter()
    slack_items = 0
    for i, r in ok_ids.items():
        try:
            _, items, n = body_items(r, fmt)
        except (ValueError, KeyError, TypeError, IndexError):
            continue
        if items is None:
            slack_items += n
        else:
            counts.update(k for k, _ in items)
    return ok_ids, counts, slack_items


def cmd_wait(args):
    expect = Counter(item_key(e["type"], e) for e in read_expect(args.expect))
    total = sum(expect.values())
    deadline = time.time() + args.timeout
    while True:
        reqs = read_log(args.log)
        _, counts, slack_items = delivered(reqs, args.format)
        if args.format == "slack":
            done = slack_items >= total
            have = slack_items
        else:
            done = all(counts[k] >= n for k, n in expect.items())
            have = sum(min(counts[k], n) for k, n in expect.items())
        if done:
            print(f"  {args.log}: all {total} expected items answered 2xx ({len(reqs)} requests)")
            return 0
        if time.time() >= deadline:
            print(f"  {args.log}: after {args.timeout:.0f}s only {have} of {total} expected items were answered"
                  f" 2xx ({len(reqs)} requests; statuses {dict(Counter(r.status for r in reqs))})")
            return 1
        time.sleep(0.25)


def cmd_wait_requests(args):
    deadline = time.time() + args.timeout
    while True:
        reqs = read_log(args.log)
        if len(reqs) >= args.min:
            print(f"  {args.log}: {len(reqs)} request(s) arrived")
            return 0
        if time.time() >= deadline:
            print(f"  {args.log}: {len(reqs)} request(s) after {args.timeout:.0f}s, wanted {args.min}")
            return 1
        time.sleep(0.1)


def cmd_signatures(args):
    p = Problems()
    reqs = read_log(args.log, p)
    key = whsec_key(Path(args.secret_file).read_text())
    for r in reqs:
        ids = r.headers.get("webhook-id", [])
        tss = r.headers.get("webhook-timestamp", [])
        sigs = r.headers.get("webhook-signature", [])
        if len(ids) != 1 or len(tss) != 1 or len(sigs) != 1:
            p.add(f"{r.where()}: webhook-id/-timestamp/-signature headers: {len(ids)}/{len(tss)}/{len(sigs)}, want 1 each")
            continue
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,255}", ids[0]):
            p.add(f"{r.where()}: odd webhook-id {ids[0]!r}")
        if not re.fullmatch(r"\d{1,12}", tss[0]):
            p.add(f"{r.where()}: webhook-timestamp {tss[0]!r} is not integer seconds")
            continue
        if abs(int(tss[0]) - r.t) > args.tolerance:
            p.add(f"{r.where()}: webhook-timestamp {tss[0]} is {int(tss[0]) - r.t:+.0f}s from arrival")
        if r.body_error:
            p.add(f"{r.where()}: body not read in full: {r.body_error}")
        if not verify_signature(key, ids[0], tss[0], r.body, sigs[0]):
            p.add(f"{r.where()}: no v1 signature in {sigs[0]!r} matches the body")
    if not reqs:
        p.add("no requests logged")
    return p.finish(f"{args.log} signatures",
                    f"{len(reqs)} requests, every signature valid, timestamps within {args.tolerance}s")


def cmd_delivery(args):
    p = Problems()
    reqs = read_log(args.log, p)
    expect_list = read_expect(args.expect)
    expect = Counter(item_key(e["type"], e) for e in expect_list)
    by_id = defaultdict(list)
    for r in reqs:
        if not r.id:
            p.add(f"{r.where()}: no webhook-id header")
            continue
        by_id[r.id].append(r)
    # Every retry of an id carries the same bytes.
    for i, rs in by_id.items():
        bodies = {r.body for r in rs}
        if len(bodies) > 1:
            p.add(f"id {i}: {len(rs)} requests with {len(bodies)} different bodies "
                  f"(#{', #'.join(str(r.seq) for r in rs)})")
    ok_ids, counts, slack_items = delivered(reqs, args.format)
    # Items per id, over every request (a batch is fixed when it is formed, so an
    # item must never be carried by two ids, answered or not).
    ids_of = defaultdict(set)
    for i, rs in by_id.items():
        try:
            _, items, _ = body_items(rs[0], args.format)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            p.add(f"id {i}: body not understood ({type(e).__name__}: {e})")
            continue
        for k, _ in items or []:
            ids_of[k].add(i)
    for k, ids in sorted(ids_of.items()):
        if len(ids) > 1:
            states = ", ".join(f"{i} ({'2xx' if i in ok_ids else 'never 2xx'})" for i in sorted(ids))
            p.add(f"item {show_key(k)} carried under {len(ids)} different ids: {states}")
    if args.format == "slack":
        want = sum(expect.values())
        if slack_items != want:
            p.add(f"slack requests answered 2xx announce {slack_items} items, want {want}")
    else:
        for k, n in sorted(expect.items()):
            if counts[k] != n:
                p.add(f"item {show_key(k)} delivered {counts[k]} time(s) across distinct ids, want {n}")
        if not args.allow_extra:
            for k, n in sorted(counts.items()):
                if k not in expect:
                    p.add(f"unexpected item {show_key(k)} delivered {n} time(s)")
        # The content of each delivered item matches the zone data.
        if args.format == "standard":
            want_by_key = {item_key(e["type"], e): e for e in expect_list}
            for i, r in ok_ids.items():
                try:
                    _, items, _ = body_items(r, args.format)
                except (ValueError, KeyError, TypeError, IndexError):
                    continue
                for k, it in items:
                    e = want_by_key.get(k)
                    if not e:
                        continue
                    for field in ("range", "codes", "txt"):
                        if e.get(field) is None:
                            continue
                        got = it.get(field)
                        if field == "codes" and isinstance(got, list):
                            got = sorted(got)
                        if got != e[field]:
                            p.add(f"id {i}: item {show_key(k)}: {field} = {got!r}, want {e[field]!r}")
    n_ok = len(ok_ids)
    if args.max_ids is not None and n_ok > args.max_ids:
        p.add(f"{n_ok} distinct ids answered 2xx, want at most {args.max_ids} (items are not grouped)")
    if args.min_ids is not None and n_ok < args.min_ids:
        p.add(f"{n_ok} distinct ids answered 2xx, want at least {args.min_ids}")
    n_items = slack_items if args.format == "slack" else sum(counts.values())
    return p.finish(f"{args.log} delivery",
                    f"{n_items} items in {n_ok} ids answered 2xx ({len(reqs)} requests): each expected item "
                    f"exactly once, none under two ids, retries byte-identical")


def check_standard(r, body, p):
    where = r.where()
    if not isinstance(body, dict):
        return p.add(f"{where}: body is not a JSON object")
    if set(body) != {"type", "timestamp", "data"}:
        p.add(f"{where}: top-level keys {sorted(body)}, want data, timestamp, type")
    t = body.get("type")
    if not isinstance(t, str) or not re.fullmatch(r"[a-z]+\.[a-z_]+", t):
        p.add(f"{where}: type {t!r}")
        t = str(t)
    if not isinstance(body.get("timestamp"), str) or not RFC3339.match(body["timestamp"]):
        p.add(f"{where}: timestamp {body.get('timestamp')!r} is not RFC 3339 UTC")
    data = body.get("data")
    if not isinstance(data, dict):
        return p.add(f"{where}: data is not an object")
    instance = data.get("instance")
    if not isinstance(instance, str) or not instance:
        p.add(f"{where}: data.instance {instance!r}")
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return p.add(f"{where}: data.items is not a non-empty list")
    for n, it in enumerate(items):
        w = f"{where} item {n}"
        if not isinstance(it, dict):
            p.add(f"{w}: not an object")
            continue
        if it.get("type", t) != t:
            p.add(f"{w}: type {it.get('type')!r} in a {t} request")
        if "instance" in it and it["instance"] != instance:
            p.add(f"{w}: instance {it['instance']!r} != data.instance {instance!r}")
        if not t.startswith("dnsbl."):
            continue
        want = {"ip": str, "range": str, "zone": str, "codes": list, "meanings": list, "txt": str,
                "delist_url": str, "evidence": dict}
        if t not in CLEARING:
            want["first_seen"] = str
        for field, kind in want.items():
            if field not in it:
                p.add(f"{w}: no {field}")
            elif not isinstance(it[field], kind):
                p.add(f"{w}: {field} is {type(it[field]).__name__}, want {kind.__name__}")
        if isinstance(it.get("first_seen"), str) and not RFC3339.match(it["first_seen"]):
            p.add(f"{w}: first_seen {it['first_seen']!r} is not RFC 3339 UTC")
        if isinstance(it.get("codes"), list):
            if t not in CLEARING and not it["codes"]:
                p.add(f"{w}: a {t} item without codes")
            for c in it["codes"]:
                if not isinstance(c, str) or not c.startswith("127."):
                    p.add(f"{w}: code {c!r}")
        if isinstance(it.get("ip"), str) and isinstance(it.get("zone"), str) and isinstance(it.get("evidence"), dict):
            try:
                rev = ipaddress.ip_address(it["ip"]).reverse_pointer.rsplit(".", 2)[0]
                q = f"{rev}.{it['zone']}"
                if it["evidence"].get("query") != q:
                    p.add(f"{w}: evidence.query {it['evidence'].get('query')!r}, want {q!r}")
            except ValueError:
                p.add(f"{w}: ip {it['ip']!r} is not an address")


def check_alertmanager(r, body, p):
    where = r.where()
    if not isinstance(body, dict):
        return p.add(f"{where}: body is not a JSON object")
    want = {"version": str, "groupKey": str, "truncatedAlerts": int, "status": str, "receiver": str,
            "groupLabels": dict, "commonLabels": dict, "commonAnnotations": dict, "externalURL": str,
            "alerts": list}
    for field, kind in want.items():
        if not isinstance(body.get(field), kind):
            p.add(f"{where}: {field} = {body.get(field)!r}, want a {kind.__name__}")
    if body.get("version") != "4":
        p.add(f"{where}: version {body.get('version')!r}, want \"4\"")
    alerts = body.get("alerts") if isinstance(body.get("alerts"), list) else []
    if not alerts:
        p.add(f"{where}: no alerts")
    statuses = set()
    for n, a in enumerate(alerts):
        w = f"{where} alert {n}"
        if not isinstance(a, dict):
            p.add(f"{w}: not an object")
            continue
        st = a.get("status")
        statuses.add(st)
        labels = a.get("labels") if isinstance(a.get("labels"), dict) else {}
        name = str(labels.get("alertname", ""))
        clears = name.replace("repwatch_", "", 1).replace("_", ".", 1) in CLEARING
        if st != ("resolved" if clears else "firing"):
            p.add(f"{w}: status {st!r} for {name}")
        if not name.startswith("repwatch_"):
            p.add(f"{w}: alertname {name!r}")
        if name.startswith("repwatch_dnsbl_"):
            for label in ("ip", "zone", "range"):
                if not labels.get(label):
                    p.add(f"{w}: no {label} label")
        if not all(isinstance(v, str) for v in labels.values()):
            p.add(f"{w}: label values must be strings: {labels}")
        if not isinstance(a.get("annotations"), dict):
            p.add(f"{w}: annotations {a.get('annotations')!r}")
        if not isinstance(a.get("startsAt"), str) or not RFC3339.match(a["startsAt"]):
            p.add(f"{w}: startsAt {a.get('startsAt')!r}")
        if st == "firing" and a.get("endsAt") != "0001-01-01T00:00:00Z":
            p.add(f"{w}: firing with endsAt {a.get('endsAt')!r}, want 0001-01-01T00:00:00Z")
        if st == "resolved" and (not isinstance(a.get("endsAt"), str) or not RFC3339.match(a["endsAt"])):
            p.add(f"{w}: resolved with endsAt {a.get('endsAt')!r}")
        if not isinstance(a.get("generatorURL"), str):
            p.add(f"{w}: generatorURL {a.get('generatorURL')!r}")
        if not isinstance(a.get("fingerprint"), str) or not re.fullmatch(r"[0-9a-f]{16}", a["fingerprint"]):
            p.add(f"{w}: fingerprint {a.get('fingerprint')!r}, want 16 hex characters")
    group = "firing" if "firing" in statuses else "resolved"
    if alerts and body.get("status") != group:
        p.add(f"{where}: group status {body.get('status')!r}, alerts {sorted(map(str, statuses))}")
    fps = [a.get("fingerprint") for a in alerts if isinstance(a, dict)]
    if len(set(fps)) != len(fps):
        p.add(f"{where}: fingerprints repeat within one request")


def check_slack(r, body, p):
    if not isinstance(body, dict) or set(body) != {"text"}:
        return p.add(f"{r.where()}: slack body {str(body)[:120]!r}, want {{\"text\": ...}} only")
    if not isinstance(body["text"], str) or not body["text"].startswith("repwatch "):
        p.add(f"{r.where()}: text {body['text']!r}")


def cmd_shape(args):
    p = Problems()
    reqs = read_log(args.log, p)
    check = {"standard": check_standard, "alertmanager": check_alertmanager, "slack": check_slack}[args.format]
    seen = set()
    for r in reqs:
        if r.method != "POST":
            p.add(f"{r.where()}: method {r.method}")
        ctype = r.header("content-type") or ""
        if not ctype.startswith("application/json"):
            p.add(f"{r.where()}: content-type {ctype!r}")
        if (r.id, r.body) in seen:
            continue  # a retry with the same bytes
        seen.add((r.id, r.body))
        try:
            body = json.loads(r.body)
        except ValueError as e:
            p.add(f"{r.where()}: body is not JSON ({e}): {r.body[:80]!r}")
            continue
        check(r, body, p)
    if not reqs:
        p.add("no requests logged")
    return p.finish(f"{args.log} {args.format} shape", f"{len(seen)} distinct {args.format} bodies well formed")


def cmd_retry_after(args):
    p = Problems()
    reqs = read_log(args.log, p)
    seen = 0
    for n, r in enumerate(reqs):
        if r.status != args.status:
            continue
        seen += 1
        later = [x for x in reqs[n + 1:] if x.id == r.id]
        if not later:
            p.add(f"{r.where()}: never retried")
            continue
        gap = later[0].t - r.t
        if gap < args.min:
            p.add(f"{r.where()}: retried after {gap:.2f}s, want >= {args.min}s (Retry-After)")
        else:
            print(f"  {r.where()}: retried after {gap:.2f}s")
    if not seen:
        p.add(f"no request was answered {args.status}")
    return p.finish(f"{args.log} Retry-After")


def cmd_after(args):
    reqs = read_log(args.log)
    first = next((n for n, r in enumerate(reqs) if r.status == args.status), None)
    if first is None:
        print(f"  no request was answered {args.status} ({len(reqs)} requests)")
        return 1
    n_after = len(reqs) - first - 1
    print(f"  {n_after} request(s) after the first {args.status} (#{reqs[first].seq})")
    return 0 if n_after <= args.max else 1


def cmd_count(args):
    reqs = read_log(args.log)
    if args.ok:
        reqs = [r for r in reqs if r.ok]
    if args.status is not None:
        want = None if args.status == "none" else int(args.status)
        reqs = [r for r in reqs if r.status == want]
    print(len({r.id for r in reqs}) if args.ids else len(reqs))
    return 0


def cmd_first_delivered(args):
    """The id of the first request was answered 2xx later (the same id after a crash)."""
    reqs = read_log(args.log)
    if not reqs:
        print("  no requests logged")
        return 1
    first = reqs[0]
    ok = [r for r in reqs if r.id == first.id and r.ok]
    tries = sum(r.id == first.id for r in reqs)
    print(f"  first request #{first.seq} id {first.id}: {tries} request(s) with that id, "
          f"{'answered 2xx at #' + str(ok[0].seq) if ok else 'never answered 2xx'}")
    return 0 if ok else 1


def cmd_zone(args):
    net = ipaddress.ip_network(args.cidr)
    hosts = list(net)
    if args.listed > len(hosts):
        sys.exit(f"{args.cidr} has only {len(hosts)} addresses")
    # Skip the network address when the range has room; vary code and TXT.
    picks = hosts[1:args.listed + 1] if args.listed < len(hosts) else hosts
    entries = [("127.0.0.2", None)]  # RFC 5782: 127.0.0.2 listed, 127.0.0.1 not
    for n, ip in enumerate(picks):
        if n % 3 == 1:
            entries.append((str(ip), ("127.0.0.3", "Snowshoe $")))
        elif n % 3 == 2:
            entries.append((str(ip), ("127.0.0.4", None)))
        else:
            entries.append((str(ip), None))
    default = ("127.0.0.2", f"Listed in {args.zone_name or 'the lab'}: $")
    labzones.write_file(Path(args.file), labzones.ip4set(default, entries if args.listed else entries[:1]))
    return 0


def cmd_expect(args):
    datasets = [labzones.Dataset(f) for f in args.data]
    if any(d.lookup(ipaddress.ip_address("127.0.0.1")) for d in datasets) or \
            not any(d.lookup(ipaddress.ip_address("127.0.0.2")) for d in datasets):
        sys.exit("zone data breaks RFC 5782: 127.0.0.2 must be listed and 127.0.0.1 not")
    only = {ipaddress.ip_address(i) for i in args.ip} if args.ip else None
    n = 0
    for ip in ipaddress.ip_network(args.cidr):
        if only is not None and ip not in only:
            continue
        codes, txts = [], []
        for d in datasets:
            hit = d.lookup(ip)
            if hit:
                codes.append(hit[0])
                if hit[1] is not None:
                    txts.append(labzones.expand_txt(hit[1], ip))
        if not codes:
            continue
        for t in args.type:
            item = {"type": t, "ip": str(ip), "zone": args.zone, "range": args.range}
            if t not in CLEARING:  # a clearing item carries the (clean) current result
                item["codes"] = sorted(codes)
                item["txt"] = txts[0] if txts else ""
            print(json.dumps(item))
            n += 1
    if n == 0:
        sys.exit("no expected items: the data lists nothing in the range")
    return 0


# ---------------------------------------------------------------------------
# Prometheus exposition

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
COND = re.compile(r'^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s*(==|!=|>=|<=|>|<)\s*(\S+)\s*$')


def parse_exposition(text):
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(3) or "")), float(m.group(4))))
    return out


def cmd_metrics(args):
    p = Problems()
    samples = parse_exposition(Path(args.file).read_text())
    ops = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    for cond in args.cond:
        m = COND.match(cond)
        if not m:
            p.add(f"cannot parse condition {cond!r}")
            continue
        name, want_labels, op, value = m.group(1), dict(LABEL.findall(m.group(3) or "")), m.group(4), float(m.group(5))
        hits = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want_labels.items())]
        if len(hits) != 1:
            p.add(f"{cond}: {len(hits)} matching series, want exactly 1")
        elif not ops[op](hits[0], value):
            p.add(f"{cond}: value is {hits[0]:g}")
        else:
            print(f"  {cond}: {hits[0]:g}")
    return p.finish(f"{args.file} metrics")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest")
    s = sub.add_parser("zone")
    s.add_argument("file")
    s.add_argument("--cidr", required=True)
    s.add_argument("--listed", type=int, required=True)
    s.add_argument("--zone-name")
    s = sub.add_parser("expect")
    s.add_argument("--zone", required=True)
    s.add_argument("--data", action="append", required=True)
    s.add_argument("--range", required=True)
    s.add_argument("--cidr", required=True)
    s.add_argument("--type", action="append", required=True)
    s.add_argument("--ip", action="append")
    fmts = ["standard", "slack", "alertmanager"]
    s = sub.add_parser("wait")
    s.add_argument("log")
    s.add_argument("--expect", required=True)
    s.add_argument("--format", choices=fmts, default="standard")
    s.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("wait-requests")
    s.add_argument("log")
    s.add_argument("--min", type=int, default=1)
    s.add_argument("--timeout", type=float, default=30)
    s = sub.add_parser("signatures")
    s.add_argument("log")
    s.add_argument("--secret-file", required=True)
    s.add_argument("--tolerance", type=float, default=TOLERANCE)
    s = sub.add_parser("delivery")
    s.add_argument("log")
    s.add_argument("--expect", required=True)
    s.add_argument("--format", choices=fmts, default="standard")
    s.add_argument("--max-ids", type=int)
    s.add_argument("--min-ids", type=int)
    s.add_argument("--allow-extra", action="store_true")
    s = sub.add_parser("shape")
    s.add_argument("log")
    s.add_argument("--format", choices=fmts, default="standard")
    s = sub.add_parser("retry-after")
    s.add_argument("log")
    s.add_argument("--status", type=int, default=429)
    s.add_argument("--min", type=float, required=True)
    s = sub.add_parser("after")
    s.add_argument("log")
    s.add_argument("--status", type=int, required=True)
    s.add_argument("--max", type=int, default=0)
    s = sub.add_parser("count")
    s.add_argument("log")
    s.add_argument("--2xx", dest="ok", action="store_true")
    s.add_argument("--ids", action="store_true")
    s.add_argument("--status", help="only requests answered STATUS ('none': not answered)")
    s = sub.add_parser("first-delivered")
    s.add_argument("log")
    s = sub.add_parser("metrics")
    s.add_argument("file")
    s.add_argument("cond", nargs="+")
    a = ap.parse_args()
    return {"selftest": cmd_selftest, "zone": cmd_zone, "expect": cmd_expect, "wait": cmd_wait,
            "wait-requests": cmd_wait_requests, "signatures": cmd_signatures, "delivery": cmd_delivery,
            "shape": cmd_shape, "retry-after": cmd_retry_after, "after": cmd_after, "count": cmd_count,
            "metrics": cmd_metrics, "first-delivered": cmd_first_delivered}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
