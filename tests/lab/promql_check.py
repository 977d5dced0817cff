#!/usr/bin/env python3
"""Every PromQL expression the project ships, asked of a real Prometheus.

Reads each panel target and each template variable query of the Grafana
dashboards, and each rule of the Prometheus rule files, substitutes Grafana's
template variables, queries Prometheus' HTTP API and checks that

  - every query succeeds and returns at least one series (instant queries for
    instant targets, variables and rules; query_range over the last --window
    seconds for the time-series targets);
  - every metric name an expression mentions is one Prometheus has scraped, so
    a typo cannot hide behind `or vector(0)`;
  - a template variable query returns values; as in Grafana, a variable with
    "All" stands for its allValue, one given with --var must be among the values
    offered, and any other takes the first value offered; later queries of that
    dashboard use them;
  - with --rules-state: every alerting rule evaluates without error and is
    pending or firing (its expression returns data; `for:` decides the rest).

  promql_check.py --prom URL --dashboard F... --rules F... [--var NAME=VALUE...]
                  [--window S] [--rules-state] [--until S] [--table F]

With --until S the checks are repeated (every 2 s) until they all pass or S
seconds have gone by (the agents need a cycle and Prometheus a few scrapes).
Prints one line per expression: status, series count, where it comes from and
the expression; exits 1 if any check fails.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

# Grafana's built-in variables, as a dashboard at a 1 s scrape interval would
# get them; the dashboards' own variables come from --var.
BUILTINS = {
    "__rate_interval": "5s",
    "__interval": "2s",
    "__interval_ms": "2000",
    "__range": "60s",
    "__range_s": "60",
    "__range_ms": "60000",
}

NAME_RE = re.compile(r"\b(repwatch_[a-z0-9_]+|up)\b")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
LABEL_VALUES_RE = re.compile(r"^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", re.S)


def substitute(expr, variables):
    def repl(m):
        name = m.group(1) or m.group(2)
        name = name.split(":")[0]  # ${var:regex} and the like
        if name in variables:
            return variables[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise KeyError(f"unknown template variable ${name} in {expr!r}")

    return re.sub(r"\$\{([^}]+)\}|\$([a-zA-Z_][a-zA-Z0-9_]*)", repl, expr)


def metric_names(expr):
    """Metric names an expression mentions: identifiers outside strings, plus the
    alternatives of a {__name__=~"repwatch_(a|b)"} matcher."""
    names = set()
    for m in re.finditer(r'__name__\s*=~?\s*"repwatch_\(([^)"]*)\)"', expr):
        names.update("repwatch_" + alt for alt in m.group(1).split("|"))
    stripped = STRING_RE.sub('""', expr)
    for m in NAME_RE.finditer(stripped):
        # label names in by (...) / on (...) are not metrics; neither are "up" inside those
        before = stripped[: m.start()]
        if re.search(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*$", before):
            continue
        names.add(m.group(1))
    return names


class Prom:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, params):
        q = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                return None, f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            return None, str(e)
        if body.get("status") != "success":
            return None, f"{body.get('errorType')}: {body.get('error')}"
        return body["data"], None


def collect(args):
    """[(kind, where, expr, mode, info)]: kind panel | variable | rule; mode instant,
    range or label_values; info names the dashboard (and the variable)."""
    items = []
    for path in args.dashboard:
        d = json.load(open(path))
        uid = d.get("uid", path)

        def panels(ps):
            for p in ps:
                yield p
                yield from panels(p.get("panels", []))

        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            items.append(("variable", f"{uid} ${v['name']}", q, "label_values",
                          {"dashboard": uid, "name": v["name"], "all": v.get("allValue", ".*") if v.get("includeAll") else None}))
        for p in panels(d.get("panels", [])):
            for t in p.get("targets", []):
                if "expr" not in t:
                    continue
                mode = "instant" if t.get("instant") or p.get("type") in ("table", "stat") else "range"
                items.append(("panel", f"{uid} #{p.get('id')} {t.get('refId')}", t["expr"], mode, {"dashboard": uid}))
    for path in args.rules:
        for g in yaml.safe_load(open(path)).get("groups", []):
            for r in g.get("rules", []):
                name = r.get("alert") or r.get("record")
                items.append(("rule", f"{g['name']}/{name}", r["expr"], "instant", {}))
    return items


def run_checks(prom, items, variables, args):
    names_data, err = prom.get("/api/v1/label/__name__/values", {})
    known = set(names_data or [])
    now = time.time()
    rows, problems = [], []
    dash_vars = {}  # dashboard uid -> its variables, resolved in order as Grafana does
    for kind, where, raw, mode, info in items:
        scope = dash_vars.setdefault(info["dashboard"], dict(variables)) if "dashboard" in info else variables
        try:
            expr = substitute(raw, scope)
        except KeyError as e:
            problems.append(f"{where}: {e}")
            rows.append(("FAIL", "-", where, raw))
            continue
        missing = sorted(n for n in metric_names(expr) if n not in known)
        if mode == "label_values":
            m = LABEL_VALUES_RE.match(expr)
            if not m:
                problems.append(f"{where}: not label_values(SELECTOR, LABEL): {expr}")
                rows.append(("FAIL", "-", where, expr))
                continue
            data, err = prom.get(f"/api/v1/label/{m.group(2)}/values", {"match[]": m.group(1)})
        elif mode == "range":
            data, err = prom.get("/api/v1/query_range", {"query": expr, "start": f"{now - args.window:.3f}",
                                                         "end": f"{now:.3f}", "step": "1"})
        else:
            data, err = prom.get("/api/v1/query", {"query": expr, "time": f"{now:.3f}"})
        if err:
            count, status = "-", "FAIL"
            problems.append(f"{where}: {err}: {expr}")
        else:
            result = data if mode == "label_values" else data["result"]
            count = len(result)
            status = "ok" if count else "EMPTY"
            if not count:
                problems.append(f"{where}: no data: {expr}")
            if mode == "label_values":
                # "All" stands for its allValue; a value given with --var must be offered;
                # otherwise the first value offered is taken, as Grafana does.
                name, want = info["name"], variables.get(info["name"])
                if info["all"] is not None:
                    scope[name] = info["all"]
                elif want is not None:
                    if want not in result:
                        status = "FAIL"
                        problems.append(f"{where}: {want!r} not among {result}")
                elif result:
                    scope[name] = sorted(result)[0]
                expr = f"{expr}  => {scope.get(name)}"
        if missing:
            status = "FAIL"
            problems.append(f"{where}: metric(s) Prometheus never scraped: {', '.join(missing)}")
        rows.append((status, str(count), where, " ".join(expr.split())))
    if args.rules_state:
        data, err = prom.get("/api/v1/rules", {})
        if err:
            problems.append(f"/api/v1/rules: {err}")
        else:
            seen = 0
            for g in data["groups"]:
                for r in g["rules"]:
                    seen += 1
                    if r.get("health") != "ok":
                        problems.append(f"rule {r['name']}: health {r.get('health')}: {r.get('lastError')}")
                    if r.get("type") == "alerting" and r.get("state") not in ("pending", "firing"):
                        problems.append(f"rule {r['name']}: state {r.get('state')} (its expression has no data)")
            want = sum(1 for item in items if item[0] == "rule")
            if seen != want:
                problems.append(f"Prometheus evaluates {seen} rules, the rule files have {want}")
    return rows, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prom", required=True)
    ap.add_argument("--dashboard", nargs="*", default=[])
    ap.add_argument("--rules", nargs="*", default=[])
    ap.add_argument("--var", action="append", default=[], help="NAME=VALUE for $NAME")
    ap.add_argument("--window", type=float, default=20)
    ap.add_argument("--rules-state", action="store_true")
    ap.add_argument("--until", type=float, default=0)
    ap.add_argument("--table", help="also write the table to this file")
    args = ap.parse_args()
    variables = dict(v.split("=", 1) for v in args.var)
    items = collect(args)
    if not items:
        print("no expressions found")
        return 1
    prom = Prom(args.prom)
    deadline = time.time() + args.until
    started = time.time()
    while True:
        rows, problems = run_checks(prom, items, variables, args)
        if not problems or time.time() >= deadline:
            break
        time.sleep(2)
    width = max(len(r[2]) for r in rows)
    lines = [f"{'status':6} {'series':>6}  {'where':{width}}  expression"]
    lines += [f"{s:6} {c:>6}  {w:{width}}  {e}" for s, c, w, e in rows]
    kinds = {k: sum(1 for i in items if i[0] == k) for k in ("panel", "variable", "rule")}
    lines.append(f"{len(items)} expressions ({kinds['panel']} panel targets, {kinds['variable']} variables, "
                 f"{kinds['rule']} rules), {sum(1 for r in rows if r[0] == 'ok')} with data; "
                 f"checked for {time.time() - started:.0f}s")
    text = "\n".join(lines)
    print(text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text + "\n")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
