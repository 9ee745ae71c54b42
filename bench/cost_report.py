#!/usr/bin/env python3
"""Summarises bench/cost-bench.sh: per step and memory size, what a promotion costs.

Input: the run directory of cost-bench.sh, one `m<MB>/r<RUN>/` per memory size and run holding
- stats.json: bench/lambda_invoker.py's measurements (invocations labelled `promotion` and
  `repeat`, each with its billed duration, cgroup CPU-seconds, AWS calls and the registry access
  log's byte offsets at its start and end; per function the Init phase and the cgroup's peak);
- promotion.json, repeat.json, upstream.json: what tests/sfn/run.mjs printed for each execution
  (states entered, retries, every state's output): the ECR push, the same push again, and a
  manual request from the upstream registry (where copy-to-quarantine streams every blob);
- registry/access.log: docker-registry's access log (one line per request);
- seed.json: scripts/seed_image.py's summary of the image.

Prints the tables (medians over the runs) and the recommendation; --json writes the figures.
Exit 0 when every execution of every run succeeded and was measured; 2 otherwise.

Prices are list prices (us-east-1, as we know them) passed in as constants below: ASSUMPTIONS the
reader must check against the AWS pricing pages. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

GIB = 2**30
MIB = 2**20
# ---- list prices: assumptions, check them ----
LAMBDA_ARM_GBS = 0.0000133334  # USD per GB-second, arm64, first pricing tier
LAMBDA_REQUEST = 0.20 / 1_000_000  # USD per request
SFN_TRANSITION = 0.025 / 1_000  # USD per state transition, Standard workflows
KMS_ASYMMETRIC = 0.15 / 10_000  # USD per asymmetric request (Sign, GetPublicKey; DescribeKey counted the same: an upper bound)
PUTIMAGE_TPS = 10  # ECR PutImage requests per second per Region (default quota: check yours)
MB_PER_VCPU = 1769
# lambda-bench.sh's copy figure at 128 MB over TLS (4 x 128 MiB), final for the copy path as
# issue 16 left it: 1.62-1.79 CPU-s/GiB across runs (README, "In a 128 MB Lambda").
LAMBDA_BENCH_CPU_S_PER_GIB = (1.62, 1.79)

LABELS = ("promotion", "repeat", "upstream")
TITLES = {
    "promotion": "ECR push promoted (first execution; blobs mounted within the registry)",
    "repeat": "the same push again (idempotent repeat, warm)",
    "upstream": "manual request from the upstream registry (copy streams every blob over TLS)",
}
STEPS = [  # (state name, function)
    ("Copy", "copy-to-quarantine"),
    ("Gate", "scan-gate"),
    ("PromoteAndAnnotate", "promote-and-annotate"),
    ("Sign", "sign"),
    ("Retag", "retag-for-environment"),
]
FUNCTION_OF = dict(STEPS)
KMS_OPS = ("Sign", "GetPublicKey", "DescribeKey", "Verify")
INSPECTOR_OPS = ("ListFindings", "ListCoverage")

ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')


def registry_kind(method: str, path: str) -> str:
    """The ECR API a Docker Registry HTTP API request stands for (ECR bills none of them; they
    count against ECR's per-API rate quotas)."""
    path = path.split("?", 1)[0] if method != "POST" else path
    if path in ("/v2/", "/v2"):
        return "ping (GET /v2/)"
    if "/manifests/" in path:
        return {"PUT": "PutImage", "GET": "BatchGetImage", "HEAD": "BatchGetImage (HEAD)",
                "DELETE": "BatchDeleteImage"}.get(method, f"{method} manifest")
    if "/blobs/uploads" in path:
        if method == "POST":
            return "blob mount" if "mount=" in path else "InitiateLayerUpload"
        return {"PATCH": "UploadLayerPart", "PUT": "CompleteLayerUpload"}.get(method, f"{method} upload")
    if "/blobs/" in path:
        return {"HEAD": "BatchCheckLayerAvailability", "GET": "GetDownloadUrlForLayer"}.get(
            method, f"{method} blob")
    if path.endswith("/tags/list"):
        return "ListImages (tags)"
    if "/referrers/" in path:
        return "referrers API"
    return f"{method} other"


def registry_calls(log: bytes, start: int, end: int) -> Counter:
    c: Counter = Counter()
    for line in log[start:end].decode(errors="replace").splitlines():
        m = ACCESS.search(line)
        if m:
            kind = registry_kind(m["method"], m["path"])
            c[kind] += 1
            if not m["status"].startswith("2") and m["status"] != "401":
                c[f"  ({kind}: HTTP {m['status']})"] += 1
            if m["status"] == "401":
                c["  (401 challenges)"] += 1
    return c


def gbs(mb: int, ms: float) -> float:
    return mb / 1024 * ms / 1000


def fmt_usd(x: float) -> str:
    if x < 0.00001:
        return f"${x:.8f}"
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


class Run:
    """One stack at one memory size: its executions and what the invoker measured."""

    def __init__(self, mb: int, d: Path) -> None:
        self.mb = mb
        self.dir = d
        self.stats = json.loads((d / "stats.json").read_text())
        self.execs = {}
        for label in LABELS:
            p = d / f"{label}.json"
            if p.is_file():
                self.execs[label] = json.loads(p.read_text())
        self.seed = json.loads((d / "seed.json").read_text())
        log_path = d / "registry" / "access.log"
        self.log = log_path.read_bytes() if log_path.is_file() else b""
        self.invocations = self.stats["invocations"]

    def of(self, label: str, function: str) -> list[dict]:
        return [i for i in self.invocations if i["label"] == label and i["function"] == function]

    def ok(self, label: str) -> bool:
        run = self.execs.get(label)
        return bool(run) and run.get("status") == "SUCCEEDED" and all(
            i["outcome"] == "ok" for i in self.invocations if i["label"] == label)

    def transitions(self, label: str) -> int:
        run = self.execs[label]
        return len(run["states"]) + len(run.get("retries", []))

    def step_output(self, label: str, state: str) -> dict:
        for s in reversed(self.execs.get(label, {}).get("states", [])):
            if s["name"] == state:
                return s.get("output") or {}
        return {}

    def calls(self, label: str) -> tuple[Counter, Counter, dict]:
        """(AWS calls, registry calls, per function (AWS, registry)) of one execution."""
        aws: Counter = Counter()
        reg: Counter = Counter()
        per: dict = {}
        for i in self.invocations:
            if i["label"] != label:
                continue
            a = Counter(i["aws_calls"])
            r = registry_calls(self.log, *i["registry_log"])
            aws.update(a)
            reg.update(r)
            pa, pr = per.setdefault(i["function"], (Counter(), Counter()))
            pa.update(a)
            pr.update(r)
        return aws, reg, per

    def unattributed_registry(self) -> int:
        """The functions' registry requests outside every invocation's window (should be none;
        the script's own check afterwards is another user agent)."""
        def ours(chunk: bytes) -> int:
            return sum(1 for line in chunk.decode(errors="replace").splitlines()
                       if ACCESS.search(line) and '"ecr-promotion/' in line)
        lines = 0
        pos = 0
        for s, e in sorted(tuple(i["registry_log"]) for i in self.invocations):
            if s > pos:
                lines += ours(self.log[pos:s])
            pos = max(pos, e)
        return lines + ours(self.log[pos:])


class Size:
    """Every run at one memory size; figures are medians over the runs."""

    def __init__(self, mb: int, runs: list[Run]) -> None:
        self.mb = mb
        self.runs = runs

    def step(self, label: str, fn: str) -> dict | None:
        """Medians over the runs of one function's invocations in one execution (summed when it
        ran more than once, e.g. gate polls)."""
        per = []
        for r in self.runs:
            invs = r.of(label, fn)
            if not invs:
                continue
            per.append({
                "n": len(invs),
                "ok": all(i["outcome"] == "ok" for i in invs),
                "billed_ms": sum(i["billed_ms"] or 0 for i in invs),
                "cpu_s": sum(i["cpu_s"] or 0 for i in invs),
                "nr_throttled": sum(i["nr_throttled"] or 0 for i in invs),
            })
        if not per:
            return None
        return {
            "runs": len(per),
            "n": max(p["n"] for p in per),
            "ok": all(p["ok"] for p in per),
            "billed_ms": statistics.median(p["billed_ms"] for p in per),
            "billed_ms_range": [min(p["billed_ms"] for p in per), max(p["billed_ms"] for p in per)],
            "cpu_s": statistics.median(p["cpu_s"] for p in per),
            "nr_throttled": statistics.median(p["nr_throttled"] for p in per),
            "peak_bytes": self.peak(fn),
        }

    def peak(self, fn: str) -> int:
        return max((r.stats["functions"][fn]["cgroup"].get("peak_bytes") or 0) for r in self.runs)

    def init_ms(self, fn: str) -> float:
        vals = [r.stats["functions"][fn]["inits"][0]["init_ms"] or 0 for r in self.runs
                if r.stats["functions"][fn]["inits"]]
        return statistics.median(vals) if vals else 0.0

    def gb_s(self, label: str, fn: str) -> float:
        st = self.step(label, fn)
        return gbs(self.mb, st["billed_ms"]) if st else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--sizes", required=True, help="the memory sizes measured, e.g. '128 256'")
    ap.add_argument("--runs", type=int, default=1, help="runs per size (directories m<MB>/r<N>)")
    ap.add_argument("--gate-polls", type=int, default=5)
    ap.add_argument("--step-bound-ms", type=float, default=3000)
    ap.add_argument("--copy-bound-s", type=float, default=600)
    ap.add_argument("--copy-bound-gib", type=float, default=3)
    ap.add_argument("--image", default="")
    ap.add_argument("--transport", default="")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    sizes: dict[int, Size] = {}
    problems = []
    for m in (int(x) for x in args.sizes.split()):
        runs = []
        for r in range(1, args.runs + 1):
            d = args.dir / f"m{m}" / f"r{r}"
            try:
                run = Run(m, d)
            except (OSError, ValueError, KeyError) as e:
                problems.append(f"{m} MB, run {r}: no measurements ({e})")
                continue
            if not run.ok("promotion"):
                problems.append(f"{m} MB, run {r}: the promotion did not succeed")
            runs.append(run)
        if runs:
            sizes[m] = Size(m, runs)
    if not sizes:
        print("error: nothing measured", file=sys.stderr)
        return 2
    mbs = sorted(sizes)
    all_runs = [r for m in mbs for r in sizes[m].runs]
    labels = [lb for lb in LABELS if all(lb in r.execs for r in all_runs)]
    for r in all_runs:
        for lb in labels[1:]:
            if not r.ok(lb):
                problems.append(f"{r.mb} MB ({r.dir.name}): the {lb} execution did not succeed")
    first = all_runs[0]
    copy_label = "upstream" if "upstream" in labels else "promotion"
    streamed = first.step_output(copy_label, "Copy").get("copy", {}).get("bytesStreamed") or 0
    nruns = min(len(sizes[m].runs) for m in mbs)
    out: dict = {"image": args.image, "transport": args.transport,
                 "blob_bytes": first.seed.get("blob_bytes"), "runs_per_size": nruns,
                 "cgroup": first.stats.get("cgroup_version"), "sizes": {}, "prices": {
                     "lambda_arm64_gb_s": LAMBDA_ARM_GBS, "lambda_request": LAMBDA_REQUEST,
                     "sfn_standard_transition": SFN_TRANSITION, "kms_asymmetric_request": KMS_ASYMMETRIC,
                     "ecr_putimage_tps": PUTIMAGE_TPS}}

    print(f"Image: {args.image} ({first.seed.get('blob_bytes', 0) / MIB:.1f} MiB of blobs, "
          f"{len(first.seed.get('platforms', []))} platforms), registry over {args.transport}; "
          f"cgroup {first.stats.get('cgroup_version')}; {nruns} run(s) per size, medians")
    print("Billed = from the event handed out on /next to the function's next /next, rounded up to "
          "1 ms;\nGB-s = MB/1024 x billed s; CPU-s = the cgroup's CPU time during the invocation; "
          "peak = the\ncgroup's peak memory over the process's life (init and every execution), max over runs.")

    # ---- per step tables ----
    for label in labels:
        print(f"\n== Per step, {label}: {TITLES[label]}")
        print(f"   {'step':<20}{'MB':>6}{'billed ms':>11}{'(min-max)':>13}{'GB-s':>9}{'CPU-s':>8}"
              f"{'CPU %':>7}{'throttled':>10}{'peak MiB':>10}")
        for state, fn in STEPS:
            for m in mbs:
                st = sizes[m].step(label, fn)
                if st is None:
                    print(f"   {state:<20}{m:>6}{'-':>11}")
                    continue
                ms = st["billed_ms"]
                share = st["cpu_s"] / (ms / 1000) * 100 if ms else 0
                n = f" x{st['n']}" if st["n"] > 1 else ""
                lo, hi = st["billed_ms_range"]
                print(f"   {state + n:<20}{m:>6}{ms:>11.0f}{f'({lo}-{hi})':>13}{gbs(m, ms):>9.4f}"
                      f"{st['cpu_s']:>8.3f}{share:>6.1f}%{st['nr_throttled']:>10.0f}"
                      f"{st['peak_bytes'] / MIB:>10.1f}")
                rec = out["sizes"].setdefault(str(m), {}).setdefault(label, {})
                rec[fn] = dict(st, gb_s=gbs(m, ms))
        totals = []
        for m in mbs:
            steps = [sizes[m].step(label, fn) for _, fn in STEPS]
            ms = sum(st["billed_ms"] for st in steps if st)
            totals.append(f"{m} MB: {ms:.0f} ms, {gbs(m, ms):.4f} GB-s")
        print(f"   {'total':<20}" + "   ".join(totals))

    # ---- init ----
    print("\n== Init phase (cold start: spawn -> first /next, median), once per execution environment")
    print(f"   {'function':<24}" + "".join(f"{str(m) + ' MB':>12}" for m in mbs))
    for _, fn in STEPS:
        print(f"   {fn:<24}" + "".join(f"{sizes[m].init_ms(fn):>9.1f} ms" for m in mbs))
        for m in mbs:
            out["sizes"].setdefault(str(m), {}).setdefault("init_ms", {})[fn] = sizes[m].init_ms(fn)
    init_calls = Counter()
    for _, fn in STEPS:
        for i in first.stats["functions"][fn]["inits"][:1]:
            init_calls.update({f"{fn}: {k}": v for k, v in i["aws_calls"].items()})
    print("   AWS calls while starting: " + (", ".join(f"{k} x{v}" for k, v in sorted(init_calls.items())) or "none"))
    out["init_aws_calls"] = dict(init_calls)

    # ---- calls per promotion ----
    counts = {}
    for label in labels:
        aws, reg, per = first.calls(label)
        counts[label] = {"aws": aws, "registry": reg, "per": per,
                         "transitions": first.transitions(label),
                         "lambda_requests": sum(1 for i in first.invocations if i["label"] == label)}
    differs = []
    for r in all_runs[1:]:
        for label in labels:
            aws, reg, _ = r.calls(label)
            if (aws != counts[label]["aws"] or reg["PutImage"] != counts[label]["registry"]["PutImage"]
                    or r.transitions(label) != counts[label]["transitions"]):
                differs.append(f"{r.mb} MB {r.dir.name} ({label})")
    print("\n== Calls per promotion (the same in every run" + ("" if not differs else
          f"; DIFFERENT in {', '.join(differs)}") + ")")
    for label in labels:
        c = counts[label]
        run = first.execs[label]
        print(f"   -- {label}:" + (" (the pipeline registry only: the reads from upstream are not "
                                  "counted)" if label == "upstream" else ""))
        print(f"   Step Functions state transitions (Standard bills each state entered): "
              f"{c['transitions']} ({', '.join(s['name'] for s in run['states'])}"
              + (f"; {len(run.get('retries', []))} retries" if run.get("retries") else "") + ")")
        print(f"   Lambda requests: {c['lambda_requests']}")
        kms = {k: c["aws"].get(k, 0) for k in KMS_OPS if c["aws"].get(k)}
        by_step = "; ".join(f"{fn} " + ", ".join(f"{k} {v}" for k, v in a.items() if k in KMS_OPS)
                            for fn, (a, _) in c["per"].items() if any(k in KMS_OPS for k in a))
        print(f"   KMS: {sum(kms.values())} ({', '.join(f'{k} {v}' for k, v in kms.items()) or 'none'})"
              + (f" — by step: {by_step}" if by_step else ""))
        ins = {k: c["aws"].get(k, 0) for k in INSPECTOR_OPS}
        print(f"   Inspector2: ListFindings {ins['ListFindings']} (ACTIVE and SUPPRESSED per platform), "
              f"ListCoverage {ins['ListCoverage']} (answered by bench/lambda_invoker.py: moto has none)")
        other = {k: v for k, v in c["aws"].items() if k not in KMS_OPS and k not in INSPECTOR_OPS}
        print(f"   other AWS calls: {', '.join(f'{k} {v}' for k, v in sorted(other.items())) or 'none'}")
        reg = c["registry"]
        print(f"   ECR PutImage (manifest PUTs): {reg.get('PutImage', 0)} — by step: " + "; ".join(
            f"{fn} {r.get('PutImage', 0)}" for fn, (_, r) in c["per"].items()))
        if reg.get("PutImage"):
            print(f"     at {PUTIMAGE_TPS} PutImage/s per Region: at most "
                  f"{PUTIMAGE_TPS / reg['PutImage']:.2f} promotions/s "
                  f"({PUTIMAGE_TPS / reg['PutImage'] * 3600:.0f}/hour) for bulk sync")
        print("   registry requests: " + ", ".join(
            f"{k} {v}" for k, v in sorted(reg.items()) if not k.startswith("  ")))
        notes = [f"{k.strip()} {v}" for k, v in sorted(reg.items()) if k.startswith("  ")]
        if notes:
            print("     of which " + ", ".join(notes))
        out.setdefault("calls", {})[label] = {
            "transitions": c["transitions"], "lambda_requests": c["lambda_requests"],
            "aws": dict(c["aws"]), "registry": dict(reg),
            "by_function": {fn: {"aws": dict(a), "registry": dict(r)} for fn, (a, r) in c["per"].items()}}
    un = sum(r.unattributed_registry() for r in all_runs)
    if un:
        print(f"   ({un} registry requests of the functions fell outside every invocation's window)")

    # ---- copy per GiB ----
    print(f"\n== Copy per GiB (copy-to-quarantine, {copy_label})")
    per_gib = {}
    if streamed:
        for m in mbs:
            st = sizes[m].step(copy_label, "copy-to-quarantine")
            gib = streamed / GIB
            per_gib[m] = {"cpu_s_per_gib": st["cpu_s"] / gib, "s_per_gib": st["billed_ms"] / 1000 / gib,
                          "gb_s_per_gib": gbs(m, st["billed_ms"]) / gib}
            print(f"   {m:>5} MB: {per_gib[m]['cpu_s_per_gib']:.2f} CPU-s/GiB, {per_gib[m]['s_per_gib']:.1f} s/GiB, "
                  f"{per_gib[m]['gb_s_per_gib']:.2f} GB-s/GiB ({streamed / MIB:.1f} MiB streamed, "
                  f"fixed costs included)")
    else:
        print("   nothing streamed: the copy mounted every blob (run with COST_UPSTREAM=1)")
    lo, hi = LAMBDA_BENCH_CPU_S_PER_GIB
    f = MB_PER_VCPU / 1024
    print(f"   bench/lambda-bench.sh (4 x 128 MiB over TLS at 128 MB): {lo}-{hi} CPU-s/GiB; CPU-bound, so "
          f"GB-s/GiB = {f:.3f} x CPU-s/GiB\n   = {f * lo:.2f}-{f * hi:.2f} GB-s/GiB at any size below 1,769 MB, "
          f"i.e. {fmt_usd(f * lo * LAMBDA_ARM_GBS)}-{fmt_usd(f * hi * LAMBDA_ARM_GBS)} per GiB")
    out["copy_per_gib"] = {str(m): v for m, v in per_gib.items()}
    out["copy_per_gib_lambda_bench"] = {"cpu_s_per_gib": [lo, hi], "gb_s_per_gib": [f * lo, f * hi]}

    # ---- recommendation ----
    print("\n== Recommended memory per function")
    print(f"   Rule: a size qualifies when its invocation met the bound (copy, from upstream: an image of "
          f"{args.copy_bound_gib:g} GiB,\n   scaled linearly from the measured billed time, within "
          f"{args.copy_bound_s:g} s; every other step, first invocation: {args.step_bound_ms:g} ms) and its "
          f"peak\n   memory is at most 75% of the size; of those, the cheapest in GB-s, where anything within "
          f"10% of the\n   cheapest counts as a tie and the smaller size wins (CPU-bound work costs the same "
          f"GB-s at every\n   size below 1,769 MB, because CPU scales with memory; I/O-bound work costs less "
          f"the smaller the size).")
    rec = {}
    for state, fn in STEPS:
        cands = []
        why = []
        label = copy_label if fn == "copy-to-quarantine" else "promotion"
        for m in mbs:
            st = sizes[m].step(label, fn)
            if not st or not st["ok"]:
                why.append(f"{m}: failed")
                continue
            ms = st["billed_ms"]
            if fn == "copy-to-quarantine" and streamed:
                projected = ms / 1000 * (args.copy_bound_gib * GIB) / streamed
                meets = projected <= args.copy_bound_s
                note = f"{m}: {projected:.0f} s"
            else:
                meets = ms <= args.step_bound_ms * st["n"]
                note = f"{m}: {ms:.0f} ms"
            if st["peak_bytes"] > 0.75 * m * MIB:
                meets = False
                note += f", peak {st['peak_bytes'] / MIB:.0f} MiB"
            note += f", {gbs(m, ms):.3f} GB-s"
            why.append(note + ("" if meets else " (over)"))
            if meets:
                cands.append((m, gbs(m, ms)))
        if not cands:
            pick = None
        else:
            cheapest = min(c for _, c in cands)
            pick = min(m for m, c in cands if c <= cheapest * 1.10)
        rec[fn] = pick
        print(f"   {fn:<22}{(str(pick) + ' MB') if pick else 'none qualifies':>9}  ({'; '.join(why)})")
    out["recommended_mb"] = rec
    out["bounds"] = {"step_ms": args.step_bound_ms, "copy_s": args.copy_bound_s, "copy_gib": args.copy_bound_gib}

    # ---- cost per promotion ----
    print("\n== Cost per promotion at list prices (ASSUMPTIONS, check them: arm64 Lambda "
          f"${LAMBDA_ARM_GBS}/GB-s and $0.20 per million\n   requests; Step Functions Standard $0.025 per "
          f"1,000 transitions; KMS asymmetric requests $0.15 per 10,000)")

    def cost(mix: dict[str, int], label: str = "promotion") -> dict:
        g = sum(sizes[mix[fn]].gb_s(label, fn) for _, fn in STEPS)
        cl = counts[label]
        lam = g * LAMBDA_ARM_GBS + cl["lambda_requests"] * LAMBDA_REQUEST
        sfn = cl["transitions"] * SFN_TRANSITION
        kms = sum(cl["aws"].get(k, 0) for k in KMS_OPS) * KMS_ASYMMETRIC
        return {"gb_s": g, "lambda": lam, "sfn": sfn, "kms": kms, "total": lam + sfn + kms}

    def row(name: str, k: dict, extra: str = "") -> None:
        print(f"   {name:<18}{k['gb_s']:>9.4f}{fmt_usd(k['lambda']):>13}{fmt_usd(k['sfn']):>12}"
              f"{fmt_usd(k['kms']):>12}{fmt_usd(k['total']):>12}{extra}")

    print(f"   {'memory':<18}{'GB-s':>9}{'Lambda':>13}{'Step Fn':>12}{'KMS':>12}{'total':>12}")
    out["cost"] = {}
    for m in mbs:
        k = cost({fn: m for _, fn in STEPS})
        out["cost"][f"all at {m} MB"] = k
        row(f"all at {m} MB", k)
    c = counts["promotion"]
    if all(rec.values()):
        k = cost(dict(rec))
        out["cost"]["recommended"] = k
        row("recommended", k)
        if "upstream" in labels:
            k = cost(dict(rec), "upstream")
            out["cost"]["recommended_upstream"] = k
            row("upstream, rec.", k, f"   (manual request; {streamed / MIB:.0f} MiB streamed by copy)")
    print(f"   (push: {c['transitions']} transitions, {c['lambda_requests']} Lambda requests, "
          f"{sum(c['aws'].get(k, 0) for k in KMS_OPS)} KMS requests; the requests are in the Lambda column)")
    if all(rec.values()):
        gm = rec["scan-gate"]
        st = sizes[gm].step("promotion", "scan-gate")
        poll_gbs = gbs(gm, st["billed_ms"]) / st["n"]
        extra = args.gate_polls - 1
        base = cost(dict(rec))["total"]
        aws_total = base + extra * (poll_gbs * LAMBDA_ARM_GBS + LAMBDA_REQUEST + 3 * SFN_TRANSITION)
        print(f"   On AWS with {args.gate_polls} gate polls (Inspector's first scan takes minutes), each extra "
              f"poll adds 3 transitions\n   (GateDecision, GateWait, Gate), 1 request and at most the measured "
              f"gate invocation ({poll_gbs:.4f} GB-s):\n   {fmt_usd(aws_total)} per promotion at the "
              f"recommended sizes, before Init phases and AWS network latency.")
        out["cost"]["recommended_with_gate_polls"] = {"polls": args.gate_polls, "total": aws_total}
        init_g = sum(gbs(rec[fn], sizes[rec[fn]].init_ms(fn)) for _, fn in STEPS)
        print(f"   If all five start cold: + {init_g:.4f} GB-s of Init ({fmt_usd(init_g * LAMBDA_ARM_GBS)}) "
              f"and the KMS calls made while starting, once per new execution environment.")

    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if problems:
        print(file=sys.stderr)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
