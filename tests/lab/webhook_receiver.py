#!/usr/bin/env python3
"""A webhook receiver for the loopback lab: a real HTTP/1.1 server (stdlib
http.server, one thread per connection) that answers each request as a script
or a state file says, and logs every request as one JSON line. It verifies
nothing itself: tests/lab/webhook_check.py reads the log.

  webhook_receiver.py --listen 127.0.0.61:PORT --log F [--script S] [--state F]
                      [--then B] [--ready-file F]

Behaviours (the items of --script, the content of --state, --then):
  200, 204, 500, 503, 410, ... answer with that status
  NNN:retry-after=V         ... and a Retry-After: V header (seconds or HTTP-date)
  stall[:N]                 read the request, then hold it N seconds (default 30;
                            a state-file stall also ends as soon as the file
                            changes) and close the connection without answering
  close                     close the connection without answering at once
  ok = 200, fail = 500, 429 = 429:retry-after=1, gone = 410
--script "500,500,429:retry-after=2,stall:3" answers the first four requests
so, then --then (default 200) forever. If --state names a file that exists and
is not empty, its behaviour wins over the script and --then (the script does
not advance meanwhile); a test switches modes at run time by rewriting it.

Log lines: {"seq", "t" (arrival, unix s), "t_done", "client", "method", "path",
"version", "headers" [[name, value], ...] in arrival order, "body_b64",
"body_len", "body_error" (when the body could not be read in full),
"behaviour", "status" (the status answered, null when none was)}. A request is
logged before it is answered, except that a stall is logged as it starts (with
"status": null) so a test can see the arrival at once.
"""

import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 16 * 1024 * 1024
ALIASES = {"ok": "200", "fail": "500", "429": "429:retry-after=1", "gone": "410"}


def parse_behaviour(text):
    """'500' | '429:retry-after=2' | 'stall:20' | 'close' -> dict, or raise ValueError."""
    text = ALIASES.get(text.strip(), text.strip())
    head, _, rest = text.partition(":")
    if head == "stall":
        return {"kind": "stall", "seconds": float(rest) if rest else 30.0, "text": text}
    if head == "close":
        return {"kind": "close", "text": text}
    status = int(head)
    if not 100 <= status <= 999:
        raise ValueError(f"status {status} out of range")
    b = {"kind": "status", "status": status, "text": text}
    if rest:
        key, eq, value = rest.partition("=")
        if key.lower() != "retry-after" or not eq:
            raise ValueError(f"unknown option {rest!r} (only retry-after=V)")
        b["retry_after"] = value
    return b


class Script:
    def __init__(self, script, then, state):
        self.items = [parse_behaviour(s) for s in script.split(",") if s.strip()] if script else []
        self.then = parse_behaviour(then)
        self.state = state
        self.lock = threading.Lock()
        self.seq = 0

    def state_text(self):
        if not self.state:
            return ""
        try:
            with open(self.state) as f:
                return f.read().strip()
        except OSError:
            return ""

    def next(self):
        """(seq, behaviour, from_state)"""
        with self.lock:
            self.seq += 1
            seq = self.seq
            text = self.state_text()
            if text:
                try:
                    return seq, parse_behaviour(text), True
                except ValueError:
                    return seq, {"kind": "status", "status": 500, "text": f"bad state {text!r}"}, True
            if self.items:
                return seq, self.items.pop(0), False
            return seq, self.then, False


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, obj):
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "repwatch-lab-receiver/1"
    timeout = 60  # an idle keep-alive connection is dropped after this

    def log_message(self, fmt, *args):  # the JSON log is the log
        pass

    def _read_body(self):
        """(bytes, error or None). Handles Content-Length and chunked bodies."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            if "chunked" in te:
                out = bytearray()
                while True:
                    line = self.rfile.readline(1024)
                    if not line:
                        return bytes(out), "connection closed inside a chunked body"
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while True:  # trailers up to the empty line
                            t = self.rfile.readline(8192)
                            if t in (b"\r\n", b"\n", b""):
                                break
                        return bytes(out), None
                    if len(out) + size > MAX_BODY:
                        return bytes(out), "body too large"
                    chunk = self.rfile.read(size)
                    out += chunk
                    self.rfile.readline(8)
                    if len(chunk) < size:
                        return bytes(out), "connection closed inside a chunk"
            length = self.headers.get("Content-Length")
            if length is None:
                return b"", None
            n = int(length.strip())
            if n < 0 or n > MAX_BODY:
                self.close_connection = True
                return b"", f"unusable Content-Length {length!r}"
            data = self.rfile.read(n)
            if len(data) < n:
                return data, f"connection closed after {len(data)} of {n} body bytes"
            return data, None
        except (ValueError, OSError) as e:
            self.close_connection = True
            return b"", f"{type(e).__name__}: {e}"

    def _handle(self):
        t = time.time()
        body, body_error = self._read_body()
        seq, b, from_state = self.server.script.next()
        entry = {
            "seq": seq,
            "t": round(t, 6),
            "client": "%s:%s" % self.client_address[:2],
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_b64": base64.b64encode(body).decode(),
            "body_len": len(body),
            "behaviour": b["text"] + (" (state)" if from_state else ""),
            "status": b["status"] if b["kind"] == "status" else None,
        }
        if body_error:
            entry["body_error"] = body_error
        if b["kind"] == "stall":
            entry["t_done"] = None
            self.server.log.write(entry)
            self._stall(b["seconds"], from_state)
            self.close_connection = True
            return
        if b["kind"] == "close":
            entry["t_done"] = round(time.time(), 6)
            self.server.log.write(entry)
            self.close_connection = True
            return
        entry["t_done"] = round(time.time(), 6)
        self.server.log.write(entry)
        payload = json.dumps({"status": b["status"]}).encode() + b"\n"
        self.send_response(b["status"])
        if "retry_after" in b:
            self.send_header("Retry-After", b["retry_after"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection or body_error:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _stall(self, seconds, from_state):
        deadline = time.time() + seconds
        start_state = self.server.script.state_text() if from_state else None
        while time.time() < deadline:
            time.sleep(0.05)
            if from_state and self.server.script.state_text() != start_state:
                break

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        except Exception as e:  # never let odd input kill the server
            self.close_connection = True
            try:
                self.server.log.write({"t": round(time.time(), 6), "internal_error": repr(e)})
            except Exception:
                pass

    def send_error(self, code, message=None, explain=None):
        # Malformed request lines / headers: log them, then answer as http.server does.
        try:
            self.server.log.write({"t": round(time.time(), 6), "client": "%s:%s" % self.client_address[:2],
                                   "malformed": True, "status": code, "reason": message,
                                   "raw": getattr(self, "raw_requestline", b"").decode("latin-1")})
        except Exception:
            pass
        try:
            super().send_error(code, message, explain)
        except Exception:
            self.close_connection = True

    do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        pass  # already logged where it could be; never print tracebacks or stop


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="ADDR:PORT (loopback only)")
    p.add_argument("--log", required=True, help="JSON Lines log, appended to")
    p.add_argument("--script", default="", help="comma-separated behaviours for successive requests")
    p.add_argument("--then", default="200", help="behaviour once the script is used up (default 200)")
    p.add_argument("--state", help="file whose behaviour, when present and not empty, wins")
    p.add_argument("--ready-file", help="written (with the PID) once the socket listens")
    a = p.parse_args()
    addr, _, port = a.listen.rpartition(":")
    if not addr.startswith("127."):
        sys.exit(f"refusing to listen on {addr}: the lab receiver is loopback only (127.0.0.0/8)")
    try:
        script = Script(a.script, a.then, a.state)
    except ValueError as e:
        sys.exit(f"bad behaviour: {e}")
    server = Server((addr, int(port)), Handler)
    server.script = script
    server.log = Log(a.log)
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, a.ready_file)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
