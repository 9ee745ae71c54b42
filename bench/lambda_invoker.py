#!/usr/bin/env python3
"""A local STAND-IN for AWS Lambda, used by bench/cost-bench.sh only: it is not Lambda.

It reproduces, for the five pipeline functions, what the Lambda Runtime API (2018-06-01) does
for a custom runtime (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html):
- each function is one long-lived process started once ("Init phase"), with
  AWS_LAMBDA_RUNTIME_API pointing at ITS OWN Runtime API (one port per function) and the
  AWS_LAMBDA_FUNCTION_* variables lambda_runtime reads;
- `GET /2018-06-01/runtime/invocation/next` blocks until there is an event, then returns it with
  the Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn and -Trace-Id headers;
  the function answers `POST .../invocation/{id}/response` or `.../{id}/error`, or
  `POST /runtime/init/error` when it cannot start;
- one invocation at a time per process; the caller gets the response as soon as it is posted;
- "The Invoke phase ends after the runtime ... signal[s] that [it is] done by sending a Next API
  request": the billed duration here is from handing the event out on /next to the function's
  next /next, rounded up to 1 ms, as Lambda bills it; the Init phase (spawn -> first /next) is
  recorded apart;
- memory and CPU like a function of M MB: the process runs in its own cgroup with an M MiB memory
  limit (no swap) and a CFS quota of M/1,769 of one CPU (Lambda: 1,769 MB = one vCPU), as
  bench/lambda-bench.sh confines `promote copy` (bench/cgroup-exec.sh moves the process there);
- a process that exits or overruns its timeout fails the invocation and is started again for the
  next one (a new sandbox).

What it does not reproduce: the Invoke API's own answer to a failed invocation (Lambda: HTTP 200
with X-Amz-Function-Error; here HTTP 500 {"errorType","errorMessage"}, as `cargo lambda watch`
answers and tests/sfn/run.mjs expects), extensions, the Telemetry/Logs APIs, SnapStart,
freezing the process between invocations, arm64, and any network latency to AWS.

Besides the Runtime APIs it serves:
- the invoke endpoint tests/sfn/run.mjs POSTs to:
  `POST /2015-03-31/functions/<name>/invocations` (the body is the event);
- `POST /_bench/label` (body: a label given to the invocations that follow) and
  `GET /_bench/stats` (everything recorded so far, as JSON);
- per function, a counting HTTP proxy in front of the AWS endpoint (moto_server): the function's
  AWS_ENDPOINT_URL points there, and every AWS call is recorded (operation from X-Amz-Target, or
  the REST path for Inspector2) against the function and the invocation in flight. Inspector2's
  `ListCoverage`, which moto_server does not have, is answered by the proxy itself: every image
  asked for (`filterCriteria.resourceId`) is reported scanned (`ACTIVE`/`SUCCESSFUL`,
  `lastScannedAt` now), as Inspector reports an image once its first scan is done, so the
  scan-gate makes the calls it makes on AWS. Asked by repository only (a registry that is not an
  ECR host has no account for a resource id), it reports every manifest docker-registry holds in
  that repository (`registry_root`: its filesystem storage, where each pushed manifest has a
  revision link). Pending and unsupported images are the end-to-end
  tests' business (tests/it/support/inspector.rs, the same record shape), not this benchmark's.

Per invocation it records the billed duration, the cgroup's CPU-seconds and throttling during it,
the AWS calls, and the byte offsets of the registry's access log at its start and end (for
counting registry requests per step); per function, the init duration and the cgroup's
CPU-seconds and peak memory. On SIGTERM it stops every process it started, reads the cgroups one
last time, removes them and writes everything to --out.

    lambda_invoker.py --config CONFIG.json --out STATS.json --ready READY.json

CONFIG: {"functions": [{"name", "binary", "memory_mb", "timeout_s"}], "env": {...},
         "aws_endpoint": "http://127.0.0.1:PORT", "registry_access_log": PATH,
         "registry_root": DIR (docker-registry's filesystem storage; for ListCoverage), "log_dir": DIR,
         "cgroup": "auto|v1|v2", "cgroup_exec": "bench/cgroup-exec.sh",
         "cgroup_list": PATH (the cgroups created, one per line, for the caller's clean-up)}

Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API = "/2018-06-01/runtime"
CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769
INIT_TIMEOUT_S = 60.0
ACCOUNT = "123456789012"
REGION = "us-east-1"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length"}


def now() -> float:
    return time.monotonic()


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a peer goes away (a function
    process stopped or killed in the middle of a request)."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


# --- cgroups (v1 or v2), as bench/lambda-bench.sh makes them ----------------------------------

def _v1_dir(controller: str) -> str | None:
    """This process's cgroup directory in the v1 hierarchy that carries CONTROLLER."""
    mount = None
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4 and parts[2] == "cgroup" and controller in parts[3].split(","):
                mount = parts[1]
                break
    if mount is None:
        return None
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return mount + path.rstrip("/")
    return None


class Cgroups:
    """Creates, reads and removes this run's cgroups."""

    def __init__(self, want: str, list_file: Path | None) -> None:
        self.live: list[str] = []
        self.list_file = list_file
        v2 = False
        ctl = Path("/sys/fs/cgroup/cgroup.controllers")
        if ctl.is_file():
            words = ctl.read_text().split()
            v2 = "cpu" in words and "memory" in words
        self.mem_base = _v1_dir("memory")
        self.cpu_base = _v1_dir("cpu")
        self.acct_base = _v1_dir("cpuacct")
        v1 = bool(self.mem_base and self.cpu_base and self.acct_base
                  and os.path.isfile(f"{self.mem_base}/memory.limit_in_bytes")
                  and os.path.isfile(f"{self.cpu_base}/cpu.cfs_quota_us")
                  and os.path.isfile(f"{self.acct_base}/cpuacct.usage"))
        if want == "auto":
            if not (v1 or v2):
                raise SystemExit("lambda_invoker: no usable cgroup (neither cgroup2 with cpu+memory "
                                 "at /sys/fs/cgroup nor v1 cpu, cpuacct and memory hierarchies)")
            self.version = "v2" if v2 else "v1"
        elif want in ("v1", "v2"):
            if not (v1 if want == "v1" else v2):
                raise SystemExit(f"lambda_invoker: cgroup {want} is not usable here")
            self.version = want
        else:
            raise SystemExit("lambda_invoker: cgroup must be auto, v1 or v2")

    def _remember(self, d: str) -> None:
        self.live.append(d)
        if self.list_file:
            with open(self.list_file, "a") as f:
                f.write(d + "\n")

    def create(self, name: str, memory_mb: int, quota_us: int) -> dict:
        """One function's cgroup(s): {procs: [...], mem, cpu, acct}."""
        if self.version == "v2":
            root = "/sys/fs/cgroup"
            sub = Path(root, "cgroup.subtree_control")
            for c in ("cpu", "memory"):
                if c not in sub.read_text().split():
                    sub.write_text(f"+{c}")
            d = f"{root}/{name}"
            os.mkdir(d)
            self._remember(d)
            Path(d, "memory.max").write_text(str(memory_mb * 2**20))
            if os.path.isfile(f"{d}/memory.swap.max"):
                Path(d, "memory.swap.max").write_text("0")
            Path(d, "cpu.max").write_text(f"{quota_us} {CPU_PERIOD_US}")
            return {"procs": [f"{d}/cgroup.procs"], "mem": d, "cpu": d, "acct": d}
        mem, cpu, acct = (f"{b}/{name}" for b in (self.mem_base, self.cpu_base, self.acct_base))
        procs = []
        for d in (mem, cpu, acct):
            if d in self.live:
                continue  # cpu and cpuacct may be one co-mounted hierarchy
            os.mkdir(d)
            self._remember(d)
            procs.append(f"{d}/cgroup.procs")
        Path(mem, "memory.limit_in_bytes").write_text(str(memory_mb * 2**20))
        if os.path.isfile(f"{mem}/memory.memsw.limit_in_bytes"):
            Path(mem, "memory.memsw.limit_in_bytes").write_text(str(memory_mb * 2**20))
        Path(cpu, "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        Path(cpu, "cpu.cfs_quota_us").write_text(str(quota_us))
        return {"procs": procs, "mem": mem, "cpu": cpu, "acct": acct}

    def read(self, cg: dict) -> dict:
        """CPU-seconds, peak memory, throttling and OOM kills so far."""
        def kv(path: str) -> dict:
            out = {}
            try:
                for line in Path(path).read_text().splitlines():
                    k, _, v = line.partition(" ")
                    out[k] = v.strip()
            except OSError:
                pass
            return out

        if self.version == "v2":
            st = kv(f"{cg['cpu']}/cpu.stat")
            peak = None
            if os.path.isfile(f"{cg['mem']}/memory.peak"):
                peak = int(Path(cg["mem"], "memory.peak").read_text())
            return {
                "cpu_s": int(st.get("usage_usec", 0)) / 1e6,
                "nr_throttled": int(st.get("nr_throttled", 0)),
                "throttled_s": int(st.get("throttled_usec", 0)) / 1e6,
                "peak_bytes": peak,
                "oom_kills": int(kv(f"{cg['mem']}/memory.events").get("oom_kill", 0)),
            }
        st = kv(f"{cg['cpu']}/cpu.stat")
        return {
            "cpu_s": int(Path(cg["acct"], "cpuacct.usage").read_text()) / 1e9,
            "nr_throttled": int(st.get("nr_throttled", 0)),
            "throttled_s": int(st.get("throttled_time", 0)) / 1e9,
            "peak_bytes": int(Path(cg["mem"], "memory.max_usage_in_bytes").read_text()),
            "oom_kills": int(kv(f"{cg['mem']}/memory.oom_control").get("oom_kill", 0)),
        }

    def remove_all(self) -> list[str]:
        """Removes every cgroup created here; returns those that could not be removed."""
        left = []
        for d in self.live:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            if os.path.isdir(d):
                left.append(d)
        self.live = []
        return left


# --- one function: process, Runtime API, AWS proxy --------------------------------------------

class Invocation:
    def __init__(self, fn: "Function", event: bytes, label: str) -> None:
        self.fn = fn
        self.request_id = str(uuid.uuid4())
        self.event = event
        self.label = label
        self.queued = now()
        self.handed_out: float | None = None
        self.responded: float | None = None
        self.ended: float | None = None  # the next /next (or the failure)
        self.status = 200
        self.body = b""
        self.error_type: str | None = None
        self.cg_start: dict | None = None
        self.cg_end: dict | None = None
        self.reg_start = 0
        self.reg_end = 0
        self.aws_calls: dict[str, int] = {}
        self.answered = threading.Event()  # the caller may be answered
        self.finished = threading.Event()  # the invoke phase is over (next poll or failure)

    def record(self) -> dict:
        billed = None
        if self.handed_out is not None and self.ended is not None:
            billed = max(1, math.ceil((self.ended - self.handed_out) * 1000 - 1e-9))
        cpu = throttled = nr = None
        if self.cg_start and self.cg_end:
            cpu = self.cg_end["cpu_s"] - self.cg_start["cpu_s"]
            throttled = self.cg_end["throttled_s"] - self.cg_start["throttled_s"]
            nr = self.cg_end["nr_throttled"] - self.cg_start["nr_throttled"]
        return {
            "function": self.fn.name,
            "memory_mb": self.fn.memory_mb,
            "label": self.label,
            "request_id": self.request_id,
            "outcome": "ok" if self.status == 200 else f"error {self.error_type}",
            "queued_ms": None if self.handed_out is None else (self.handed_out - self.queued) * 1000,
            "response_ms": None if self.responded is None or self.handed_out is None
            else (self.responded - self.handed_out) * 1000,
            "billed_ms": billed,
            "cpu_s": cpu,
            "throttled_s": throttled,
            "nr_throttled": nr,
            "peak_bytes_so_far": (self.cg_end or {}).get("peak_bytes"),
            "registry_log": [self.reg_start, self.reg_end],
            "aws_calls": dict(self.aws_calls),
        }


class Function:
    def __init__(self, spec: dict, inv: "Invoker") -> None:
        self.name = spec["name"]
        self.binary = spec["binary"]
        self.memory_mb = int(spec["memory_mb"])
        self.timeout_s = float(spec.get("timeout_s", 900))
        self.quota_us = max(1000, round(CPU_PERIOD_US * self.memory_mb / MB_PER_VCPU))
        self.inv = inv
        self.lock = threading.Condition()
        self.queue: list[Invocation] = []
        self.current: Invocation | None = None
        self.proc: subprocess.Popen | None = None
        self.generation = 0
        self.spawned: float | None = None
        self.first_next: float | None = None
        self.init_error: str | None = None
        self.inits: list[dict] = []
        self.init_aws_calls: dict[str, int] = {}
        self.cg = inv.cgroups.create(f"cost-bench.{os.getpid()}.{self.name}.{self.memory_mb}",
                                     self.memory_mb, self.quota_us)
        self.cg_final: dict | None = None
        self.runtime = self._serve(self._runtime_handler())
        self.proxy = self._serve(self._proxy_handler())
        self.log_path = Path(inv.log_dir) / f"{self.name}.{self.memory_mb}.log"

    @staticmethod
    def _serve(handler) -> ThreadingHTTPServer:
        server = QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    # -- process --

    def env(self) -> dict[str, str]:
        e = dict(self.inv.env)
        e.update({
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.runtime.server_address[1]}",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.proxy.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]cost-bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        })
        return e

    def start(self) -> None:
        """Starts the process in its cgroup and waits for its first /next (the Init phase)."""
        with self.lock:
            self.generation += 1
            self.first_next = None
            self.init_error = None
            self.init_aws_calls = {}
            cg0 = self.inv.cgroups.read(self.cg)
            log = open(self.log_path, "ab")
            self.spawned = now()
            self.proc = subprocess.Popen(
                ["sh", self.inv.cgroup_exec, *self.cg["procs"], "--", self.binary],
                env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.inv.log_dir,
            )
            log.close()
            proc, gen = self.proc, self.generation
            deadline = now() + INIT_TIMEOUT_S
            while self.first_next is None and self.init_error is None:
                if proc.poll() is not None or now() > deadline:
                    break
                self.lock.wait(0.05)
            cg1 = self.inv.cgroups.read(self.cg)
            ok = self.first_next is not None
            self.inits.append({
                "generation": gen,
                "init_ms": (self.first_next - self.spawned) * 1000 if ok else None,
                "cpu_s": cg1["cpu_s"] - cg0["cpu_s"],
                "aws_calls": dict(self.init_aws_calls),
                "error": None if ok else (
                    self.init_error
                    or (f"exited with status {proc.returncode} before its first /next"
                        if proc.poll() is not None else f"no /next within {INIT_TIMEOUT_S:g} s")),
            })
        threading.Thread(target=self._reap, args=(proc, gen), daemon=True).start()
        if not ok:
            raise RuntimeError(f"{self.name} ({self.memory_mb} MB) did not start: "
                               f"{self.inits[-1]['error']}; log {self.log_path}")

    def _reap(self, proc: subprocess.Popen, gen: int) -> None:
        code = proc.wait()
        with self.lock:
            if gen != self.generation:
                return
            self.proc = None
            cur = self.current
            if cur is not None and not cur.finished.is_set():
                if cur.responded is not None:
                    # It answered, then exited before its next poll: the invocation stands.
                    cur.ended = now()
                    cur.cg_end = self.inv.cgroups.read(self.cg)
                    cur.reg_end = self.inv.registry_offset()
                    self.current = None
                    cur.finished.set()
                else:
                    self._fail(cur, "Runtime.ExitError",
                               f"RequestId: {cur.request_id} Error: Runtime exited with status "
                               f"{code}")
            self.lock.notify_all()

    def stop(self) -> None:
        with self.lock:
            proc = self.proc
            self.generation += 1  # the reaper of this process does nothing any more
            self.proc = None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _fail(self, cur: Invocation, kind: str, message: str) -> None:
        """(lock held) Ends an invocation the function did not end itself."""
        cur.status = 500
        cur.error_type = kind
        cur.body = json.dumps({"errorType": kind, "errorMessage": message}).encode()
        t = now()
        cur.responded = cur.responded or t
        cur.ended = t
        cur.cg_end = self.inv.cgroups.read(self.cg)
        cur.reg_end = self.inv.registry_offset()
        self.current = None
        cur.answered.set()
        cur.finished.set()

    # -- invoke (called from the invoke endpoint's thread) --

    def invoke(self, event: bytes) -> Invocation:
        cur = Invocation(self, event, self.inv.label)
        with self.lock:
            dead = self.proc is None or self.proc.poll() is not None
        if dead:
            self.stop()
            try:
                self.start()
            except RuntimeError as e:
                with self.lock:
                    self.current = cur
                    self._fail(cur, "Runtime.InitError", str(e))
                self.inv.add(cur)
                return cur
        with self.lock:
            self.queue.append(cur)
            self.lock.notify_all()
        if not cur.answered.wait(self.timeout_s):
            # Lambda stops a function at its timeout; the next invocation gets a new sandbox.
            with self.lock:
                if not cur.answered.is_set():
                    if self.current is cur:
                        self._fail(cur, "Sandbox.Timedout",
                                   f"Task timed out after {self.timeout_s:.2f} seconds")
                    else:
                        self.queue.remove(cur)
                        self._fail(cur, "Sandbox.Timedout", "never handed out")
            self.stop()
        cur.finished.wait(5)
        self.inv.add(cur)
        return cur

    # -- Runtime API --

    def _runtime_handler(self):
        fn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self._reply(404, b'{"errorMessage":"unknown path"}')
                    return
                t = now()
                with fn.lock:
                    # The process this poll belongs to: a poll left over from a process that has
                    # since died must not take the next event.
                    gen = fn.generation
                    if fn.first_next is None:
                        fn.first_next = t
                        fn.lock.notify_all()
                    prev = fn.current
                    if prev is not None and prev.responded is not None:
                        # The runtime signals the end of the invoke phase with its next /next.
                        prev.ended = t
                        prev.cg_end = fn.inv.cgroups.read(fn.cg)
                        prev.reg_end = fn.inv.registry_offset()
                        fn.current = None
                        prev.finished.set()
                    while True:
                        if fn.inv.stopping or gen != fn.generation:
                            self.close_connection = True
                            return
                        if fn.queue:
                            break
                        fn.lock.wait(1.0)
                    cur = fn.queue.pop(0)
                    fn.current = cur
                    cur.cg_start = fn.inv.cgroups.read(fn.cg)
                    cur.reg_start = fn.inv.registry_offset()
                    cur.handed_out = now()
                    deadline = int(time.time() * 1000 + fn.timeout_s * 1000)
                self._reply(200, cur.event, {
                    "Lambda-Runtime-Aws-Request-Id": cur.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn.name}",
                    "Lambda-Runtime-Trace-Id":
                        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                })

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                t = now()
                prefix = f"{API}/invocation/"
                with fn.lock:
                    cur = fn.current
                    if self.path == f"{API}/init/error":
                        fn.init_error = body[:500].decode(errors="replace")
                        fn.lock.notify_all()
                    elif cur is not None and self.path in (f"{prefix}{cur.request_id}/response",
                                                           f"{prefix}{cur.request_id}/error"):
                        cur.responded = t
                        cur.body = body
                        if self.path.endswith("/error"):
                            cur.status = 500
                            try:
                                cur.error_type = json.loads(body).get("errorType") or "Lambda.Unknown"
                            except ValueError:
                                cur.error_type = "Lambda.Unknown"
                            if not body:
                                cur.body = json.dumps({"errorType": cur.error_type,
                                                       "errorMessage": ""}).encode()
                        cur.answered.set()
                    else:
                        self._reply(404, b'{"errorMessage":"unknown request id or path"}')
                        return
                self._reply(202, b'{"status":"OK"}')

        return Handler

    # -- the counting AWS proxy --

    def _proxy_handler(self):
        fn = self
        target = urllib.parse.urlsplit(self.inv.aws_endpoint)

        class Proxy(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                op = self.headers.get("X-Amz-Target")
                if op:
                    op = op.split(".")[-1]
                else:
                    # REST protocols (Inspector2): the path names the operation.
                    op = f"{self.command} {urllib.parse.urlsplit(self.path).path}"
                    op = {"POST /findings/list": "ListFindings",
                          "POST /coverage/list": "ListCoverage"}.get(op, op)
                with fn.lock:
                    cur = fn.current
                    book = cur.aws_calls if cur is not None else fn.init_aws_calls
                    book[op] = book.get(op, 0) + 1
                if op == "ListCoverage":
                    self._coverage(body)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in HOP_BY_HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            def _coverage(self, body: bytes | None) -> None:
                """ListCoverage: each requested ECR image as scanned (see the module's doc)."""
                try:
                    req = json.loads(body or b"{}")
                    crit = req.get("filterCriteria") or {}
                    ids = [f["value"] for f in crit.get("resourceId") or [] if f.get("value")]
                except (ValueError, TypeError, KeyError, AttributeError):
                    req, ids = None, []
                if req is None:
                    data = json.dumps({"message": "ListCoverage: malformed request"}).encode()
                    self.send_response(400)
                else:
                    if not ids:
                        ids = fn.inv.repository_resource_ids(crit)
                    records = []
                    for rid in ids:
                        # arn:aws:ecr:REGION:ACCOUNT:repository/NAME/sha256:HEX
                        parts = rid.split(":", 5)
                        if len(parts) < 6 or not parts[5].startswith("repository/"):
                            continue
                        repo = parts[5][len("repository/"):].rsplit("/", 1)[0]
                        records.append({
                            "accountId": parts[4], "resourceId": rid,
                            "resourceType": "AWS_ECR_CONTAINER_IMAGE", "scanType": "PACKAGE",
                            "scanStatus": {"statusCode": "ACTIVE", "reason": "SUCCESSFUL"},
                            "lastScannedAt": time.time(),
                            "resourceMetadata": {"ecrRepository": {
                                "name": repo, "scanFrequency": "CONTINUOUS_SCAN"},
                                "ecrImage": {"tags": []}},
                        })
                    data = json.dumps({"coveredResources": records}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        return Proxy

    def close(self) -> None:
        for s in (self.runtime, self.proxy):
            s.shutdown()
            s.server_close()


# --- the invoker -------------------------------------------------------------------------------

class Invoker:
    def __init__(self, cfg: dict) -> None:
        self.env = {k: str(v) for k, v in cfg["env"].items()}
        self.aws_endpoint = cfg["aws_endpoint"]
        self.registry_log = cfg.get("registry_access_log")
        self.registry_root = cfg.get("registry_root")
        self.log_dir = cfg["log_dir"]
        self.cgroup_exec = cfg["cgroup_exec"]
        self.cgroups = Cgroups(cfg.get("cgroup", "auto"),
                               Path(cfg["cgroup_list"]) if cfg.get("cgroup_list") else None)
        self.label = "unlabelled"
        self.stopping = False
        self.lock = threading.Lock()
        self.invocations: list[dict] = []
        self.functions: dict[str, Function] = {}
        for spec in cfg["functions"]:
            self.functions[spec["name"]] = Function(spec, self)
        self.server = QuietServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def repository_resource_ids(self, crit: dict) -> list[str]:
        """Resource ids of every manifest the registry holds in the repositories `crit` names
        (`ecrRepositoryName` EQUALS), from docker-registry's storage: one revision link per
        pushed manifest."""
        if not self.registry_root:
            return []
        region = self.env.get("AWS_REGION", "us-east-1")
        ids = []
        for f in crit.get("ecrRepositoryName") or []:
            name = f.get("value") or ""
            if f.get("comparison", "EQUALS") != "EQUALS" or not name or ".." in name:
                continue
            revs = (Path(self.registry_root) / "docker/registry/v2/repositories" / name
                    / "_manifests/revisions/sha256")
            if revs.is_dir():
                ids += [f"arn:aws:ecr:{region}:000000000000:repository/{name}/sha256:{d.name}"
                        for d in sorted(revs.iterdir())]
        return ids

    def registry_offset(self) -> int:
        try:
            return os.path.getsize(self.registry_log) if self.registry_log else 0
        except OSError:
            return 0

    def add(self, cur: Invocation) -> None:
        with self.lock:
            self.invocations.append(cur.record())

    def stats(self, final: bool = False) -> dict:
        funcs = {}
        for f in self.functions.values():
            cg = f.cg_final if final and f.cg_final else self.cgroups.read(f.cg)
            funcs[f.name] = {
                "binary": f.binary,
                "memory_mb": f.memory_mb,
                "cpu_quota_us": f.quota_us,
                "cpu_period_us": CPU_PERIOD_US,
                "runtime_api": f"127.0.0.1:{f.runtime.server_address[1]}",
                "inits": f.inits,
                "cgroup": cg,
                "log": str(f.log_path),
            }
        with self.lock:
            invs = list(self.invocations)
        return {"cgroup_version": self.cgroups.version, "functions": funcs, "invocations": invs}

    def _handler(self):
        inv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/_bench/stats":
                    self._reply(200, json.dumps(inv.stats()).encode())
                else:
                    self._reply(404, b'{"message":"unknown path"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == "/_bench/label":
                    inv.label = body.decode().strip() or "unlabelled"
                    self._reply(200, b'{}')
                    return
                parts = self.path.split("/")
                # /2015-03-31/functions/<name>/invocations
                if (len(parts) == 5 and parts[1] == "2015-03-31" and parts[2] == "functions"
                        and parts[4] == "invocations" and parts[3] in inv.functions):
                    cur = inv.functions[parts[3]].invoke(body or b"{}")
                    self._reply(cur.status, cur.body or b"null")
                    return
                self._reply(404, json.dumps({"errorType": "ResourceNotFoundException",
                                             "errorMessage": f"no function at {self.path}"}).encode())

        return Handler

    def shutdown(self) -> list[str]:
        self.stopping = True
        for f in self.functions.values():
            f.stop()
        for f in self.functions.values():
            f.cg_final = self.cgroups.read(f.cg)
            with f.lock:
                f.lock.notify_all()
        self.server.shutdown()
        for f in self.functions.values():
            f.close()
        return self.cgroups.remove_all()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="write the measurements here on exit")
    ap.add_argument("--ready", required=True, type=Path,
                    help="written once every function has started: the invoke URLs")
    args = ap.parse_args()
    cfg = json.loads(args.config.read_text())

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    inv = None
    status = 0
    try:
        inv = Invoker(cfg)
        base = f"http://127.0.0.1:{inv.server.server_address[1]}"
        # One at a time, so that the Init phases do not compete for the machine's CPUs.
        for f in inv.functions.values():
            f.start()
            print(f"lambda_invoker: {f.name} at {f.memory_mb} MB started in "
                  f"{f.inits[-1]['init_ms']:.1f} ms (CPU quota {f.quota_us}/{CPU_PERIOD_US} us, "
                  f"Runtime API 127.0.0.1:{f.runtime.server_address[1]})", file=sys.stderr)
        args.ready.write_text(json.dumps({
            "base": base,
            "functions": {n: f"{base}/2015-03-31/functions/{n}/invocations"
                          for n in inv.functions},
        }) + "\n")
        while not stop.wait(0.2):
            pass
    except (RuntimeError, OSError) as e:
        print(f"lambda_invoker: error: {e}", file=sys.stderr)
        status = 2
    finally:
        if inv is not None:
            left = inv.shutdown()
            out = inv.stats(final=True)
            out["cgroups_left"] = left
            args.out.write_text(json.dumps(out, indent=2) + "\n")
            if left:
                print(f"lambda_invoker: could not remove cgroups: {left}", file=sys.stderr)
                status = status or 3
    return status


if __name__ == "__main__":
    sys.exit(main())
