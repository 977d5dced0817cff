#!/usr/bin/env python3
"""Checks the deployment files against each other, the agent and its binary.

    check_deploy.py REPO_ROOT REPWATCH_BINARY

Kubernetes (deploy/kubernetes): the StatefulSet passes --shard.count equal to its
replicas and --shard.index from the pod ordinal; its selector, the headless
Service's and the PodMonitor's select the pod template's labels; the container
port is the config's listen port and is the port name the Service and PodMonitor
use; the PodMonitor's job is the one the alert rules name; the probes use routes the HTTP server has; the state volume is mounted at
state_dir; every secret file the config names is in the mounted Secret; the
ConfigMap's config passes `repwatch validate`.
systemd (deploy/systemd/repwatch.service): the hardening directives, ExecReload,
LoadCredential paths that the config comment uses, `systemd-analyze verify` clean
and `systemd-analyze security` exposure at most 2.0 (when systemd-analyze exists).
Docker (deploy/docker/Dockerfile, .dockerignore): Debian 12 bases, the build
packages cover scripts/setup.sh's, the runtime packages own every library the
binary links (objdump + dpkg), a numeric non-root user equal to the pods'
runAsUser, the listen port exposed, the state volume, ENTRYPOINT repwatch run.

Prints one line per check and "N passed, N failed"; exits 1 on any failure.
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

PASSED, FAILED = [], []


def check(name, ok, detail=""):
    (PASSED if ok else FAILED).append(name)
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok or not detail else f": {detail}"))
    return ok


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def load_kubernetes(root):
    kdir = os.path.join(root, "deploy/kubernetes")
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    docs = []
    for res in kust["resources"]:
        with open(os.path.join(kdir, res)) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return kust, by_kind


def http_routes(root):
    with open(os.path.join(root, "exporters/http_server.cc")) as f:
        return set(re.findall(r'AddRoute\("GET",\s*"([^"]+)"', f.read()))


def validate_config(binary, toml_text, secret_dir):
    """repwatch validate on the ConfigMap's config, its secret files replaced by
    made-up ones of the right shape in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = {
            "api.token": "t" * 32,
            "oncall.secret": "whsec_" + base64.b64encode(b"k" * 32).decode(),
            "dqs.key": "a" * 26,
        }
        for name, value in fake.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(value + "\n")
        path = os.path.join(tmp, "repwatch.toml")
        with open(path, "w") as f:
            f.write(toml_text.replace(secret_dir.rstrip("/") + "/", tmp + "/"))
        r = subprocess.run([binary, "validate", "--config.file=" + path], capture_output=True, text=True)
        return r.returncode, (r.stdout + r.stderr).strip()


def secret_files(config):
    """Every *_file key of the config (DQS keys, webhook secrets, the API token)."""
    out = []
    for z in config.get("dnsbl", []):
        if "key_file" in z:
            out.append(z["key_file"])
    for w in config.get("webhooks", []):
        if "secret_file" in w:
            out.append(w["secret_file"])
    if "token_file" in config.get("api", {}):
        out.append(config["api"]["token_file"])
    return out


def check_kubernetes(root, binary):
    kust, k = load_kubernetes(root)
    for kind in ("StatefulSet", "Service", "ConfigMap", "PodMonitor"):
        check(f"k8s: one {kind}", len(k.get(kind, [])) == 1, f"found {len(k.get(kind, []))}")
    sts, svc, cm, pm = k["StatefulSet"][0], k["Service"][0], k["ConfigMap"][0], k["PodMonitor"][0]
    check("k8s: PodMonitor is monitoring.coreos.com/v1", pm["apiVersion"] == "monitoring.coreos.com/v1")
    spec, pod = sts["spec"], sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (c,) = [c for c in pod["spec"]["containers"] if c["name"] == "repwatch"]
    args = c.get("args", [])
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)

    # Shards: count = replicas, index = ordinal.
    check("k8s: --shard.count equals replicas", flags.get("shard.count") == str(spec["replicas"]),
          f"--shard.count={flags.get('shard.count')} replicas={spec['replicas']}")
    env = {e["name"]: e for e in c.get("env", [])}
    m = re.fullmatch(r"\$\((\w+)\)", flags.get("shard.index", ""))
    src = env.get(m.group(1), {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") if m else None
    check("k8s: --shard.index is the pod ordinal (downward API pod-index label)",
          src == "metadata.labels['apps.kubernetes.io/pod-index']", f"--shard.index={flags.get('shard.index')} from {src}")
    check("k8s: shards start in parallel", spec.get("podManagementPolicy") == "Parallel")
    check("k8s: serviceName is the headless Service",
          spec["serviceName"] == svc["metadata"]["name"] and svc["spec"].get("clusterIP") == "None")

    # Selectors.
    check("k8s: StatefulSet selector matches the pod labels", subset(spec["selector"]["matchLabels"], labels))
    check("k8s: Service selector matches the pod labels", subset(svc["spec"]["selector"], labels))
    check("k8s: PodMonitor selector matches the pod labels", subset(pm["spec"]["selector"]["matchLabels"], labels))

    # Config: mounted where --config.file points, listen port = container port.
    cfg_path = flags.get("config.file", "")
    mounts = {vm["name"]: vm for vm in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    cfg_vol = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == cfg_name(cm)]
    check("k8s: the ConfigMap is mounted where --config.file points",
          len(cfg_vol) == 1 and mounts.get(cfg_vol[0], {}).get("mountPath") == os.path.dirname(cfg_path)
          and os.path.basename(cfg_path) in cm["data"], cfg_path)
    toml_text = cm["data"].get(os.path.basename(cfg_path), "")
    config = tomllib.loads(toml_text)
    host, _, port = config["agent"]["listen_address"].rpartition(":")
    check("k8s: the agent listens on all pod addresses", host == "0.0.0.0", config["agent"]["listen_address"])
    ports = {p["name"]: p for p in c.get("ports", [])}
    named = [n for n, p in ports.items() if str(p["containerPort"]) == port]
    check("k8s: a named container port is the config's listen port", len(named) == 1, f"port {port}, ports {ports}")
    name = named[0] if named else None
    endpoints = pm["spec"]["podMetricsEndpoints"]
    check("k8s: the PodMonitor scrapes that port by name, at /metrics",
          [e.get("port") for e in endpoints] == [name] and all(e.get("path", "/metrics") == "/metrics" for e in endpoints))
    with open(os.path.join(root, "configs/prometheus/repwatch-rules.yml")) as f:
        jobs = set(re.findall(r'job="([^"]+)"', f.read()))
    job = labels.get(pm["spec"].get("jobLabel", ""))
    check("k8s: the PodMonitor's job label is the job the alert rules name", bool(jobs) and jobs == {job},
          f"job {job!r}, rules {sorted(jobs)}")
    check("k8s: the Service's port targets it",
          [p.get("targetPort") for p in svc["spec"]["ports"]] in ([name], [int(port)]))
    routes = http_routes(root)
    for probe, path in (("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy")):
        g = c.get(probe, {}).get("httpGet", {})
        check(f"k8s: {probe} GETs {path} on that port, a route the agent serves",
              g.get("path") == path and g.get("port") in (name, int(port)) and path in routes,
              f"{g}, routes {sorted(routes)}")

    # State: one claim per pod, mounted at state_dir.
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
    state_dir = config["agent"].get("state_dir", "/var/lib/repwatch")
    check("k8s: a volumeClaimTemplate is mounted at state_dir",
          any(mounts.get(n, {}).get("mountPath") == state_dir for n in claims), f"{claims} vs {state_dir}")

    # Secrets: every *_file of the config lies in the mounted Secret.
    sec_vol = [n for n, v in volumes.items() if "secret" in v]
    sec_dir = mounts.get(sec_vol[0], {}).get("mountPath", "") if len(sec_vol) == 1 else ""
    files = secret_files(config)
    check("k8s: one Secret is mounted and every secret file of the config is in it",
          bool(sec_dir) and bool(files) and all(os.path.dirname(f) == sec_dir for f in files), f"{sec_dir}: {files}")
    rc, out = validate_config(binary, toml_text, sec_dir)
    check("k8s: the ConfigMap's config passes repwatch validate", rc == 0, out)

    # Hardening.
    psc, csc = pod["spec"].get("securityContext", {}), c.get("securityContext", {})
    check("k8s: pod runs as non-root", psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0)
    check("k8s: read-only root, no privilege escalation, all capabilities dropped",
          csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
          and csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc.get("capabilities", {}).get("add"))
    check("k8s: the kustomization rewrites the container's image",
          [i["name"] for i in kust.get("images", [])] == [c["image"]])
    return psc.get("runAsUser"), port


def cfg_name(cm):
    return cm["metadata"]["name"]


def parse_unit(path):
    """Section -> list of (key, value), keeping repeated keys."""
    unit, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                unit.setdefault(section, [])
            else:
                key, _, value = line.partition("=")
                unit[section].append((key.strip(), value.strip()))
    return unit


def systemd_analyze(root, unit_path, binary):
    """`systemd-analyze verify` and `security --offline` inside a throwaway root
    that has the unit, the binary where ExecStart expects it and the host's units."""
    with tempfile.TemporaryDirectory() as tmp:
        for d in ("usr/local/bin", "bin", "etc/systemd/system", "usr/lib/systemd"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        shutil.copy(binary, os.path.join(tmp, "usr/local/bin/repwatch"))
        shutil.copy(shutil.which("kill") or "/bin/kill", os.path.join(tmp, "bin/kill"))
        shutil.copy(unit_path, os.path.join(tmp, "etc/systemd/system/repwatch.service"))
        shutil.copytree("/usr/lib/systemd/system", os.path.join(tmp, "usr/lib/systemd/system"), symlinks=True)
        v = subprocess.run(["systemd-analyze", "verify", "--root=" + tmp, "--man=no", "repwatch.service"],
                           capture_output=True, text=True)
        check("systemd: systemd-analyze verify is clean", v.returncode == 0 and not (v.stdout + v.stderr).strip(),
              (v.stdout + v.stderr).strip())
        s = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--root=" + tmp, "--no-pager",
                            "repwatch.service"], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for repwatch.service: ([0-9.]+)", s.stdout + s.stderr)
        score = float(m.group(1)) if m else None
        print(f"      systemd-analyze security: exposure {score}")
        check("systemd: systemd-analyze security exposure at most 2.0", score is not None and score <= 2.0,
              (s.stdout + s.stderr)[-400:])


def check_systemd(root, binary):
    path = os.path.join(root, "deploy/systemd/repwatch.service")
    unit = parse_unit(path)
    svc = unit.get("Service", [])
    values = {}
    for k, v in svc:
        values.setdefault(k, []).append(v)
    one = {k: v[-1] for k, v in values.items()}
    want = {
        "DynamicUser": "yes", "StateDirectory": "repwatch", "ConfigurationDirectory": "repwatch",
        "CapabilityBoundingSet": "", "AmbientCapabilities": "", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes", "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
        "SystemCallArchitectures": "native", "Restart": "on-failure",
    }
    for k, v in want.items():
        check(f"systemd: {k}={v}", one.get(k) == v, f"got {one.get(k)!r}")
    check("systemd: SystemCallFilter=@system-service", "@system-service" in values.get("SystemCallFilter", []))
    check("systemd: TimeoutStopSec set", bool(one.get("TimeoutStopSec")))
    check("systemd: ExecStart is repwatch run with a config file",
          re.fullmatch(r"\S*/repwatch run --config\.file=\S+", one.get("ExecStart", "")) is not None, one.get("ExecStart"))
    check("systemd: ExecReload sends SIGHUP to the main process",
          "/bin/kill -HUP $MAINPID" in values.get("ExecReload", []), values.get("ExecReload"))
    creds = [v.split(":", 1)[0] for v in values.get("LoadCredential", [])]
    with open(path) as f:
        text = f.read()
    used = re.findall(r"/run/credentials/repwatch\.service/([\w.-]+)", text)
    check("systemd: every credential path the unit documents is loaded",
          bool(used) and sorted(set(used)) == sorted(creds), f"documented {used}, loaded {creds}")
    if shutil.which("systemd-analyze"):
        systemd_analyze(root, path, binary)
    else:
        print("skip  systemd-analyze is not installed: verify/security not run")


def dockerfile_stages(path):
    stages = []
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append({"FROM": rest.split()[0], "lines": []})
        stages[-1]["lines"].append((instr, rest.strip()))
    return stages


def apt_packages(stage):
    pkgs = []
    for instr, rest in stage["lines"]:
        if instr == "RUN" and "apt-get install" in rest:
            after = rest.split("apt-get install", 1)[1].split("&&")[0]
            pkgs += [w for w in after.split() if not w.startswith("-")]
    return pkgs


def setup_build_packages(root):
    with open(os.path.join(root, "scripts/setup.sh")) as f:
        m = re.search(r"BUILD_PACKAGES=\((.*?)\)", f.read(), re.S)
    return [w for w in re.sub(r"#.*", "", m.group(1)).split()]


def linked_packages(binary):
    """The Debian package of every NEEDED library of the binary."""
    out = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True).stdout
    # A sanitizer build (CI's ASan+UBSan pass) also links the sanitizer runtimes, which
    # the image's release build never does.
    needed = [so for so in re.findall(r"NEEDED\s+(\S+)", out)
              if not re.match(r"lib(asan|ubsan|tsan|lsan|hwasan)\.so", so)]
    pkgs = {}
    for so in needed:
        r = subprocess.run(["dpkg", "-S", "*/" + so], capture_output=True, text=True)
        owners = {line.split(":")[0] for line in r.stdout.splitlines()
                  if re.search(r"/(usr/)?lib/x86_64-linux-gnu/|/(usr/)?lib/[^/]+-linux-gnu/", line)}
        pkgs[so] = owners
    return pkgs


def check_docker(root, binary, run_as_user, port):
    path = os.path.join(root, "deploy/docker/Dockerfile")
    stages = dockerfile_stages(path)
    check("docker: multi-stage, built on debian:12, run on debian:12-slim",
          len(stages) >= 2 and stages[0]["FROM"] == "debian:12" and stages[-1]["FROM"] == "debian:12-slim",
          [s["FROM"] for s in stages])
    build, run = stages[0], stages[-1]
    have = set(apt_packages(build))
    need = set(setup_build_packages(root)) - {"catch2"}  # tests are not built in the image
    check("docker: the build stage installs scripts/setup.sh's build packages", need <= have, sorted(need - have))
    check("docker: the build configures without tests",
          any(i == "RUN" and "-DBUILD_TESTING=OFF" in r for i, r in build["lines"]))
    runtime = set(apt_packages(run))
    check("docker: no -dev package at run time", not [p for p in runtime if p.endswith("-dev")], sorted(runtime))
    if shutil.which("dpkg") and shutil.which("objdump"):
        linked = linked_packages(binary)
        missing = {so: sorted(o) for so, o in linked.items() if not o & runtime}
        check(f"docker: the runtime packages own all {len(linked)} libraries the binary links", not missing, missing)
    else:
        print("skip  dpkg/objdump not found: runtime libraries not compared with the binary")
    instr = {}
    for i, r in run["lines"]:
        instr.setdefault(i, []).append(r)
    user = (instr.get("USER") or [""])[-1]
    check("docker: runs as the numeric non-root user the pods use",
          re.fullmatch(r"[1-9]\d*(:\d+)?", user) is not None and user.split(":")[0] == str(run_as_user), user)
    check("docker: exposes the listen port", any(p.split("/")[0] == port for e in instr.get("EXPOSE", []) for p in e.split()),
          instr.get("EXPOSE"))
    check("docker: /var/lib/repwatch is a volume", any("/var/lib/repwatch" in v for v in instr.get("VOLUME", [])))
    ep = (instr.get("ENTRYPOINT") or [""])[-1]
    check("docker: ENTRYPOINT is repwatch run",
          re.fullmatch(r'\[\s*"\S*/repwatch"\s*,\s*"run"\s*\]', ep) is not None, ep)
    with open(os.path.join(root, ".dockerignore")) as f:
        ignore = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    check(".dockerignore: build trees excluded", "build*/" in ignore or "build*" in ignore, ignore)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, binary = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    run_as_user, port = check_kubernetes(root, binary)
    check_systemd(root, binary)
    check_docker(root, binary, run_as_user, port)
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
