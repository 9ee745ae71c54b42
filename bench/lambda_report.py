#!/usr/bin/env python3
"""Binary sizes and cold starts of the five pipeline Lambdas (driven by bench/lambda-report.sh).

Cold start = time from spawning the release binary to its first
`GET /2018-06-01/runtime/invocation/next` on a local stand-in for the Lambda Runtime API
(this process, 127.0.0.1, random port). The stand-in then hands the function one event (`{}`,
which every step rejects as `Input.Invalid` without touching the network), waits for the
`/response` or `/error` post and the next poll, and the process is killed. Spawn time and
request time are both taken with this process's monotonic clock.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FUNCTIONS = [
    "copy-to-quarantine",
    "scan-gate",
    "promote-and-annotate",
    "sign",
    "retag-for-environment",
    "github-webhook",
    "sync-plan",
]
# Functions that call KMS while starting (KMS_KEY_ID) and the calls they make there.
KMS_AT_START = {
    "sign": "DescribeKey + GetPublicKey (2 round trips)",
    "retag-for-environment": "GetPublicKey (1 round trip)",
}
SIZE_LIMIT_MB = 15.0
COLD_LIMIT_MS = 50.0
API = "/2018-06-01/runtime"
RUN_TIMEOUT_S = 30.0


class Run:
    """What the stand-in saw during one process's life."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.first_next: float | None = None
        self.polls = 0
        self.outcome: str | None = None  # "response" or "error <errorType>" or "init-error ..."
        self.finished = threading.Event()  # outcome posted and the next poll arrived (or init error)
        self.release = threading.Event()  # lets a held second poll return when the run ends


class RuntimeApi:
    """Just enough of the Lambda Runtime API (2018-06-01) for lambda_runtime 1.5."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.run: Run | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                now = time.perf_counter()
                if self.path != f"{API}/invocation/next":
                    self._reply(404, b'{"errorMessage":"unknown path"}')
                    return
                with api.lock:
                    run = api.run
                    if run is None:
                        polls = -1
                    else:
                        run.polls += 1
                        polls = run.polls
                        if polls == 1:
                            run.first_next = now
                if run is None:
                    self._reply(500, b'{"errorMessage":"no run in progress"}')
                    return
                if polls == 1:
                    deadline = int(time.time() * 1000) + 30_000
                    self._reply(
                        200,
                        b"{}",
                        {
                            "Lambda-Runtime-Aws-Request-Id": run.request_id,
                            "Lambda-Runtime-Deadline-Ms": str(deadline),
                            "Lambda-Runtime-Invoked-Function-Arn": (
                                "arn:aws:lambda:us-east-1:123456789012:function:bench"
                            ),
                            "Lambda-Runtime-Trace-Id": (
                                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"
                            ),
                        },
                    )
                    return
                # The next poll after the one event: the handshake is complete. Hold it (as
                # Lambda does between invocations) until the process is stopped.
                run.finished.set()
                run.release.wait(RUN_TIMEOUT_S)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with api.lock:
                    run = api.run
                prefix = f"{API}/invocation/"
                if run is not None and self.path == f"{prefix}{run.request_id}/response":
                    run.outcome = "response"
                elif run is not None and self.path == f"{prefix}{run.request_id}/error":
                    try:
                        kind = json.loads(body).get("errorType", "?")
                    except ValueError:
                        kind = "?"
                    run.outcome = f"error {kind}"
                elif run is not None and self.path == f"{API}/init/error":
                    run.outcome = f"init-error {body[:200].decode(errors='replace')}"
                    run.finished.set()
                else:
                    self._reply(404, b'{"errorMessage":"unknown path"}')
                    return
                self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def init_ms_of(log: str) -> int | None:
    """The `init_ms` of the function's own `"message":"ready"` JSON log line."""
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        fields = rec.get("fields") if isinstance(rec.get("fields"), dict) else rec
        if fields.get("message") == "ready" and "init_ms" in fields:
            return int(fields["init_ms"])
    return None


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(api: RuntimeApi, binary: Path, env: dict[str, str], logdir: Path, tag: str) -> dict:
    """Spawns the binary once; returns cold start (ms), init_ms and what the stand-in saw."""
    run = Run(f"bench-{tag}")
    with api.lock:
        api.run = run
    log_path = logdir / f"{tag}.log"
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = t0 + RUN_TIMEOUT_S
            while not run.finished.wait(0.01):
                if proc.poll() is not None or time.perf_counter() > deadline:
                    break
        finally:
            stop(proc)
            run.release.set()
            with api.lock:
                api.run = None
    text = log_path.read_text(errors="replace")
    problem = None
    if run.first_next is None:
        problem = f"never polled /invocation/next (exit {proc.returncode})"
    elif not run.finished.is_set() or run.outcome is None:
        problem = f"no complete invocation (outcome {run.outcome}, polls {run.polls})"
    elif run.outcome.startswith("init-error"):
        problem = run.outcome
    return {
        "cold_ms": None if run.first_next is None else (run.first_next - t0) * 1000.0,
        "init_ms": init_ms_of(text),
        "outcome": run.outcome,
        "problem": problem,
        "log": str(log_path),
        "log_tail": "\n".join(text.splitlines()[-5:]),
    }


def profile_strips(root: Path) -> tuple[str, bool]:
    """`strip` of [profile.release] (CARGO_PROFILE_RELEASE_STRIP wins) and whether it removes
    the symbol table, i.e. whether running `strip` afterwards would change anything."""
    value = os.environ.get("CARGO_PROFILE_RELEASE_STRIP")
    if value is None:
        with open(root / "Cargo.toml", "rb") as f:
            manifest = tomllib.load(f)
        value = manifest.get("profile", {}).get("release", {}).get("strip", "none")
    text = str(value).lower()
    return text, text in ("true", "symbols")


def sizes(bin_dir: Path, root: Path, tmp: Path) -> tuple[dict, str, bool]:
    strip_setting, already = profile_strips(root)
    out = {}
    strip_tool = shutil.which("strip")
    for name in FUNCTIONS:
        path = bin_dir / name
        size = path.stat().st_size
        stripped = None
        if not already and strip_tool:
            copy = tmp / f"{name}.stripped"
            shutil.copyfile(path, copy)
            subprocess.run([strip_tool, str(copy)], check=True)
            stripped = copy.stat().st_size
            copy.unlink()
        out[name] = {"bytes": size, "stripped_bytes": stripped}
    return out, strip_setting, already


def mb(n: int) -> float:
    return n / 1_000_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True, type=Path, help="target/release")
    ap.add_argument("--root", required=True, type=Path, help="workspace root (Cargo.toml)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per function first")
    ap.add_argument("--aws-endpoint", help="moto URL for the functions that call KMS at start")
    ap.add_argument("--kms-key-id", help="key created in moto")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--keep-logs", type=Path, help="keep the functions' logs in this directory")
    args = ap.parse_args()

    # SIGTERM/SIGHUP (from the wrapper's trap) -> SystemExit, so `finally` stops our children.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    missing = [f for f in FUNCTIONS if not (args.bin_dir / f).is_file()]
    if missing:
        print(f"error: no release binary for {', '.join(missing)} in {args.bin_dir}", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="lambda-report."))
    logdir = args.keep_logs or tmp
    logdir.mkdir(parents=True, exist_ok=True)
    home = tmp / "home"  # an empty HOME: no ~/.aws of the caller's, as on Lambda
    home.mkdir()
    api = RuntimeApi()
    unmeasured: list[str] = []
    try:
        size, strip_setting, already = sizes(args.bin_dir, args.root, tmp)

        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDBENCHDUMMY",
            "AWS_SECRET_ACCESS_KEY": "bench-dummy-secret",
            "PIPELINE_REGISTRY": "127.0.0.1:1",
            "INGRESS_PREFIX": "incoming/",
            "QUARANTINE_PREFIX": "quarantine/",
            "TRUSTED_PREFIX": "trusted/",
            "INGRESS_REGISTRY": "127.0.0.1:1",
            # github-webhook reads its secret at the first delivery, not while starting.
            "WEBHOOK_SECRET_ID": "bench-webhook",
            "EVENT_BUS_NAME": "bench-promotion",
            # Required by every function but sign (no default for the policy; copy reads its limits);
            # the template's default value.
            "GATE_POLICY": '{"block_severities":["CRITICAL","HIGH"],"allow_unscannable":false}',
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[1]bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "RUST_LOG": "info",
        }

        def env_for(name: str) -> dict[str, str] | None:
            env = dict(base_env, AWS_LAMBDA_FUNCTION_NAME=name)
            if name in KMS_AT_START:
                if not (args.aws_endpoint and args.kms_key_id):
                    return None
                env.update(
                    AWS_ENDPOINT_URL=args.aws_endpoint,
                    KMS_KEY_ID=args.kms_key_id,
                )
            return env

        results: dict[str, list[dict]] = {f: [] for f in FUNCTIONS}
        envs = {f: env_for(f) for f in FUNCTIONS}
        for f, e in envs.items():
            if e is None:
                unmeasured.append(f"{f}: no moto endpoint / KMS key")
        active = [f for f in FUNCTIONS if envs[f] is not None]
        print(
            f"Cold start: {args.runs} runs per function (+{args.warmup} untimed warm-up), "
            f"round-robin; Runtime API stand-in on 127.0.0.1:{api.port}",
            file=sys.stderr,
        )
        for i in range(args.warmup):
            for f in active:
                one_run(api, args.bin_dir / f, envs[f], logdir, f"{f}.warmup{i}")
        for i in range(args.runs):
            for f in active:
                results[f].append(one_run(api, args.bin_dir / f, envs[f], logdir, f"{f}.{i}"))
            print(f"  run {i + 1}/{args.runs} done", file=sys.stderr)
    finally:
        api.close()

    # ---- report ----
    summary = {}
    print()
    print(f"== Release binary sizes (target < {SIZE_LIMIT_MB:g} MB; 1 MB = 10^6 bytes)")
    print(f"   [profile.release] strip = {strip_setting!r}: ", end="")
    if already:
        print("symbols already stripped by cargo, no separate `strip` figure")
    else:
        print("symbol table kept, so the size after `strip` is shown too")
    print(f"   {'function':<24}{'bytes':>12}{'MB':>8}{'MiB':>8}{'stripped B':>13}{'MB':>8}  verdict")
    for f in FUNCTIONS:
        s = size[f]
        st = s["stripped_bytes"]
        verdict = "PASS" if mb(s["bytes"]) < SIZE_LIMIT_MB else "MISS"
        extra = ""
        if st is not None:
            extra_verdict = "PASS" if mb(st) < SIZE_LIMIT_MB else "MISS"
            if extra_verdict != verdict:
                extra = f" (stripped: {extra_verdict})"
        print(
            f"   {f:<24}{s['bytes']:>12,}{mb(s['bytes']):>8.2f}{s['bytes'] / 2**20:>8.2f}"
            f"{(f'{st:,}' if st is not None else '-'):>13}"
            f"{(f'{mb(st):.2f}' if st is not None else '-'):>8}  {verdict}{extra}"
        )
        summary[f] = {"bytes": s["bytes"], "stripped_bytes": st, "size_verdict": verdict}

    def stats(f: str) -> dict | None:
        runs = results[f]
        bad = [r for r in runs if r["problem"]]
        if not runs or bad:
            for r in bad[:1]:
                unmeasured.append(f"{f}: {r['problem']} (log {r['log']}):\n{r['log_tail']}")
            return None
        cold = [r["cold_ms"] for r in runs]
        inits = [r["init_ms"] for r in runs if r["init_ms"] is not None]
        return {
            "runs": len(cold),
            "median_ms": statistics.median(cold),
            "max_ms": max(cold),
            "min_ms": min(cold),
            "init_ms_median": statistics.median(inits) if inits else None,
            "init_ms_max": max(inits) if inits else None,
            "outcome": sorted({r["outcome"] for r in runs}),
        }

    cold_stats = {f: stats(f) for f in FUNCTIONS}

    def cold_table(names: list[str]) -> None:
        print(
            f"   {'function':<24}{'median':>8}{'max':>8}{'min':>8}{'init_ms':>9}{'init max':>9}  verdict"
        )
        for f in names:
            s = cold_stats[f]
            if s is None:
                print(f"   {f:<24}{'not measured':>42}  -")
                continue
            verdict = "PASS" if s["median_ms"] < COLD_LIMIT_MS else "MISS"
            if verdict == "PASS" and s["max_ms"] >= COLD_LIMIT_MS:
                verdict += f" (max over {COLD_LIMIT_MS:g})"
            init = "-" if s["init_ms_median"] is None else f"{s['init_ms_median']:g}"
            init_max = "-" if s["init_ms_max"] is None else f"{s['init_ms_max']}"
            print(
                f"   {f:<24}{s['median_ms']:>8.1f}{s['max_ms']:>8.1f}{s['min_ms']:>8.1f}"
                f"{init:>9}{init_max:>9}  {verdict}"
            )
            s["verdict"] = verdict.split()[0]
            summary[f].update(s)

    plain = [f for f in FUNCTIONS if f not in KMS_AT_START]
    kms = [f for f in FUNCTIONS if f in KMS_AT_START]
    print()
    print(
        f"== Cold start: spawn -> first GET {API}/invocation/next, ms over {args.runs} runs "
        f"(target < {COLD_LIMIT_MS:g} ms, verdict on the median)"
    )
    print("   init_ms = what the function logs itself (\"ready\": config + clients, excluding")
    print("   process start, tracing set-up and the runtime's own start).")
    print("   -- no network I/O at start:")
    cold_table(plain)
    print("   -- these call KMS at start; figures include the round trips to a local moto_server:")
    for f in kms:
        print(f"      {f}: {KMS_AT_START[f]}")
    cold_table(kms)
    outcomes = sorted({o for f in FUNCTIONS if cold_stats[f] for o in cold_stats[f]["outcome"]})
    print(f"   Invocation after the poll (event {{}}): {', '.join(outcomes) or '-'} (expected: error Input.Invalid)")

    print()
    print("== Summary")
    print(f"   {'function':<24}{'size MB':>9}{'stripped':>9}{'size':>6}{'cold med':>10}{'cold max':>10}{'init_ms':>9}{'cold':>6}  note")
    for f in FUNCTIONS:
        s = summary[f]
        st = "-" if s["stripped_bytes"] is None else f"{mb(s['stripped_bytes']):.2f}"
        if "median_ms" in s:
            cold = f"{s['median_ms']:>10.1f}{s['max_ms']:>10.1f}"
            init = "-" if s["init_ms_median"] is None else f"{s['init_ms_median']:g}"
            cv = s["verdict"]
        else:
            cold, init, cv = f"{'-':>10}{'-':>10}", "-", "n/a"
        note = "incl. local KMS" if f in KMS_AT_START else ""
        print(f"   {f:<24}{mb(s['bytes']):>9.2f}{st:>9}{s['size_verdict']:>6}{cold}{init:>9}{cv:>6}  {note}")

    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "functions": summary}, indent=2) + "\n")
    if unmeasured:
        print(file=sys.stderr)
        for u in unmeasured:
            print(f"error: not measured: {u}", file=sys.stderr)
        if not args.keep_logs:
            print(f"(logs kept in {tmp})", file=sys.stderr)
            return 2
    if args.keep_logs or not unmeasured:
        shutil.rmtree(tmp, ignore_errors=True)
    return 2 if unmeasured else 0


if __name__ == "__main__":
    sys.exit(main())
