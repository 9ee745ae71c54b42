#!/usr/bin/env python3
"""Summarises bench/cost-bench.sh: per step and memory size, what a promotion costs.

Input: the run directory of cost-bench.sh, one `m<MB>/` per memory size holding
- stats.json: bench/lambda_invoker.py's measurements (invocations labelled `promotion` and
  `repeat`, each with its billed duration, cgroup CPU-seconds, AWS calls and the registry access
  log's byte offsets at its start and end; per function the Init phase and the cgroup's peak);
- promotion.json, repeat.json, upstream.json: what tests/sfn/run.mjs printed for each execution
  (states entered, retries, every state's output): the ECR push, the same push again, and a
  manual request from the upstream registry (where copy-to-quarantine streams every blob);
- registry/access.log: docker-registry's access log (one line per request);
- seed.json: scripts/seed_image.py's summary of the image.

Prints the tables and the recommendation; --json writes the figures. Exit 0 when every memory
size has a successful promotion measured; 2 otherwise.

Prices are list prices (us-east-1, as we know them) passed in as constants below: ASSUMPTIONS the
reader must check against the AWS pricing pages. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
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
# lambda-bench.sh's copy figure at 128 MB over TLS, to be replaced by the final figure of the
# copy-path work in progress (see the README's cost section).
LAMBDA_BENCH_CPU_S_PER_GIB = (1.6, 1.7)

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
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


class Size:
    """Everything measured at one memory size."""

    def __init__(self, mb: int, d: Path) -> None:
        self.mb = mb
        self.stats = json.loads((d / "stats.json").read_text())
        self.runs = {}
        for label in LABELS:
            p = d / f"{label}.json"
            if p.is_file():
                self.runs[label] = json.loads(p.read_text())
        self.seed = json.loads((d / "seed.json").read_text())
        log_path = d / "registry" / "access.log"
        self.log = log_path.read_bytes() if log_path.is_file() else b""
        self.invocations = self.stats["invocations"]

    def of(self, label: str, function: str) -> list[dict]:
        return [i for i in self.invocations if i["label"] == label and i["function"] == function]

    def ok(self, label: str) -> bool:
        run = self.runs.get(label)
        return bool(run) and run.get("status") == "SUCCEEDED" and all(
            i["outcome"] == "ok" for i in self.invocations if i["label"] == label)

    def transitions(self, label: str) -> int:
        run = self.runs[label]
        return len(run["states"]) + len(run.get("retries", []))

    def step_output(self, label: str, state: str) -> dict:
        for s in reversed(self.runs[label]["states"]):
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--sizes", required=True, help="the memory sizes measured, e.g. '128 256'")
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
        d = args.dir / f"m{m}"
        try:
            sizes[m] = Size(m, d)
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{m} MB: no measurements ({e})")
            continue
        if not sizes[m].ok("promotion"):
            problems.append(f"{m} MB: the promotion did not succeed")
    if not sizes:
        print("error: nothing measured", file=sys.stderr)
        return 2
    mbs = sorted(sizes)
    labels = [lb for lb in LABELS if all(lb in s.runs for s in sizes.values())]
    for m, s in sizes.items():
        for lb in labels[1:]:
            if not s.ok(lb):
                problems.append(f"{m} MB: the {lb} execution did not succeed")
    first = sizes[mbs[0]]
    copy_label = "upstream" if "upstream" in labels else "promotion"
    streamed = first.step_output(copy_label, "Copy").get("copy", {}).get("bytesStreamed") or 0
    out: dict = {"image": args.image, "transport": args.transport, "blob_bytes": first.seed.get("blob_bytes"),
                 "cgroup": first.stats.get("cgroup_version"), "sizes": {}, "prices": {
                     "lambda_arm64_gb_s": LAMBDA_ARM_GBS, "lambda_request": LAMBDA_REQUEST,
                     "sfn_standard_transition": SFN_TRANSITION, "kms_asymmetric_request": KMS_ASYMMETRIC}}

    print(f"Image: {args.image} ({first.seed.get('blob_bytes', 0) / MIB:.1f} MiB of blobs, "
          f"{len(first.seed.get('platforms', []))} platforms), registry over {args.transport}; "
          f"cgroup {first.stats.get('cgroup_version')}")
    print("Billed = from the event handed out on /next to the function's next /next, rounded up to "
          "1 ms;\nGB-s = MB/1024 x billed s; CPU-s = the cgroup's CPU time during the invocation; "
          "peak = the\ncgroup's peak memory over the process's life (init and both executions).")

    # ---- per step tables ----
    for label in labels:
        print(f"\n== Per step, {label}: {TITLES[label]}")
        print(f"   {'step':<20}{'MB':>6}{'billed ms':>11}{'GB-s':>10}{'CPU-s':>8}{'CPU %':>7}"
              f"{'throttled':>10}{'peak MiB':>10}")
        for state, fn in STEPS:
            for m in mbs:
                invs = sizes[m].of(label, fn)
                if not invs:
                    print(f"   {state:<20}{m:>6}{'-':>11}")
                    continue
                ms = sum(i["billed_ms"] or 0 for i in invs)
                cpu = sum(i["cpu_s"] or 0 for i in invs)
                thr = sum(i["nr_throttled"] or 0 for i in invs)
                peak = sizes[m].stats["functions"][fn]["cgroup"].get("peak_bytes")
                share = cpu / (ms / 1000) * 100 if ms else 0
                n = f" x{len(invs)}" if len(invs) > 1 else ""
                print(f"   {state + n:<20}{m:>6}{ms:>11}{gbs(m, ms):>10.4f}{cpu:>8.3f}{share:>6.1f}%"
                      f"{thr:>10}{(peak or 0) / MIB:>10.1f}")
                rec = out["sizes"].setdefault(str(m), {}).setdefault(label, {}).setdefault(fn, {})
                rec.update({"invocations": len(invs), "billed_ms": ms, "gb_s": gbs(m, ms),
                            "cpu_s": cpu, "nr_throttled": thr, "peak_bytes": peak})
        print(f"   {'total':<20}", end="")
        print("   ".join(f"{m} MB: {sum(i['billed_ms'] or 0 for i in sizes[m].invocations if i['label'] == label)} ms, "
                         f"{sum(gbs(m, i['billed_ms'] or 0) for i in sizes[m].invocations if i['label'] == label):.4f} GB-s"
                         for m in mbs))

    # ---- init ----
    print("\n== Init phase (cold start: spawn -> first /next), once per execution environment")
    print(f"   {'function':<24}" + "".join(f"{str(m) + ' MB':>16}" for m in mbs))
    for _, fn in STEPS:
        cells = []
        for m in mbs:
            inits = sizes[m].stats["functions"][fn]["inits"]
            i0 = inits[0] if inits else {}
            cells.append(f"{i0.get('init_ms') or 0:>9.1f} ms" + (f" x{len(inits)}" if len(inits) > 1 else "   "))
            out["sizes"].setdefault(str(m), {}).setdefault("init", {})[fn] = inits
        print(f"   {fn:<24}" + "".join(f"{c:>16}" for c in cells))
    init_calls = Counter()
    for _, fn in STEPS:
        for i in first.stats["functions"][fn]["inits"][:1]:
            init_calls.update({f"{fn}: {k}": v for k, v in i["aws_calls"].items()})
    print("   AWS calls while starting: " + (", ".join(f"{k} x{v}" for k, v in sorted(init_calls.items())) or "none"))

    # ---- calls per promotion ----
    counts = {}
    for label in labels:
        aws, reg, per = first.calls(label)
        counts[label] = {"aws": aws, "registry": reg, "per": per,
                         "transitions": first.transitions(label),
                         "lambda_requests": sum(1 for i in first.invocations if i["label"] == label)}
    differs = []
    for m in mbs[1:]:
        for label in labels:
            aws, reg, _ = sizes[m].calls(label)
            if (aws != counts[label]["aws"] or reg["PutImage"] != counts[label]["registry"]["PutImage"]
                    or sizes[m].transitions(label) != counts[label]["transitions"]):
                differs.append(f"{m} MB ({label})")
    print("\n== Calls per promotion (the same at every size" + ("" if not differs else
          f"; DIFFERENT at {', '.join(differs)}") + ")")
    for label in labels:
        c = counts[label]
        run = first.runs[label]
        print(f"   -- {label}:" + (" (the pipeline registry only: the reads from upstream are not "
                                  "counted)" if label == "upstream" else ""))
        print(f"   Step Functions state transitions (Standard bills each state entered): "
              f"{c['transitions']} ({', '.join(s['name'] for s in run['states'])}"
              + (f"; {len(run.get('retries', []))} retries" if run.get("retries") else "") + ")")
        print(f"   Lambda requests: {c['lambda_requests']}")
        kms = {k: c["aws"].get(k, 0) for k in KMS_OPS if c["aws"].get(k)}
        print(f"   KMS: {sum(kms.values())} ({', '.join(f'{k} {v}' for k, v in kms.items()) or 'none'})"
              f" — by step: " + "; ".join(
                  f"{fn} " + ", ".join(f"{k} {v}" for k, v in a.items() if k in KMS_OPS)
                  for fn, (a, _) in c["per"].items() if any(k in KMS_OPS for k in a)))
        ins = {k: c["aws"].get(k, 0) for k in INSPECTOR_OPS}
        print(f"   Inspector2: ListFindings {ins['ListFindings']}, ListCoverage {ins['ListCoverage']} "
              f"(INSPECTOR_ASSUME_SCANNED skips ListCoverage: on AWS add one per platform per gate "
              f"evaluation, i.e. ~{ins['ListFindings'] // 2} here, as ListFindings is read twice per "
              f"platform: ACTIVE and SUPPRESSED)")
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
    un = sum(s.unattributed_registry() for s in sizes.values())
    if un:
        print(f"   ({un} registry requests fell outside every invocation's window)")

    # ---- copy per GiB ----
    print(f"\n== Copy per GiB (copy-to-quarantine, {copy_label})")
    per_gib = {}
    if streamed:
        for m in mbs:
            invs = sizes[m].of(copy_label, "copy-to-quarantine")
            cpu = sum(i["cpu_s"] or 0 for i in invs)
            ms = sum(i["billed_ms"] or 0 for i in invs)
            per_gib[m] = {"cpu_s_per_gib": cpu / (streamed / GIB), "s_per_gib": ms / 1000 / (streamed / GIB)}
            print(f"   {m:>5} MB: {per_gib[m]['cpu_s_per_gib']:.2f} CPU-s/GiB, {per_gib[m]['s_per_gib']:.1f} s/GiB, "
                  f"{gbs(m, ms) / (streamed / GIB):.2f} GB-s/GiB ({streamed / MIB:.1f} MiB streamed, "
                  f"fixed costs included)")
    else:
        print("   nothing streamed: the copy mounted every blob (run with COST_UPSTREAM=1)")
    lo, hi = LAMBDA_BENCH_CPU_S_PER_GIB
    f = MB_PER_VCPU / 1024
    print(f"   bench/lambda-bench.sh (4 x 128 MiB over TLS at 128 MB): {lo}-{hi} CPU-s/GiB; CPU-bound, so "
          f"GB-s/GiB = {f:.3f} x CPU-s/GiB = {f * lo:.2f}-{f * hi:.2f} GB-s/GiB at any size below 1,769 MB, "
          f"i.e. {fmt_usd(f * lo * LAMBDA_ARM_GBS)}-{fmt_usd(f * hi * LAMBDA_ARM_GBS)} per GiB")
    out["copy_per_gib"] = {str(m): v for m, v in per_gib.items()}
    out["copy_per_gib_lambda_bench"] = {"cpu_s_per_gib": [lo, hi], "gb_s_per_gib": [f * lo, f * hi]}

    # ---- recommendation ----
    print("\n== Recommended memory per function")
    print(f"   Rule: a size qualifies when its invocation met the bound (copy, from upstream: an image of "
          f"{args.copy_bound_gib:g} GiB, scaled\n   linearly from the measured billed time, within "
          f"{args.copy_bound_s:g} s; every other step: {args.step_bound_ms:g} ms) and its peak memory is "
          f"at most 75%\n   of the size; of those, the cheapest in GB-s, where anything within 10% of the "
          f"cheapest counts as\n   a tie and the smaller size wins (CPU-bound work costs the same GB-s at "
          f"every size below 1,769 MB,\n   because CPU scales with memory; I/O-bound work costs less the "
          f"smaller the size).")
    rec = {}
    for state, fn in STEPS:
        cands = []
        why = []
        for m in mbs:
            s = sizes[m]
            invs = s.of(copy_label if fn == "copy-to-quarantine" else "promotion", fn)
            if not invs or any(i["outcome"] != "ok" for i in invs):
                why.append(f"{m}: failed")
                continue
            ms = sum(i["billed_ms"] for i in invs)
            peak = s.stats["functions"][fn]["cgroup"].get("peak_bytes") or 0
            if fn == "copy-to-quarantine" and streamed:
                projected = ms / 1000 * (args.copy_bound_gib * GIB) / streamed
                meets = projected <= args.copy_bound_s
                note = f"{m}: {projected:.0f} s for {args.copy_bound_gib:g} GiB"
            else:
                meets = ms <= args.step_bound_ms * len(invs)
                note = f"{m}: {ms} ms"
            if peak > 0.75 * m * MIB:
                meets = False
                note += f", peak {peak / MIB:.0f} MiB"
            why.append(note + ("" if meets else " (over)"))
            if meets:
                cands.append((m, gbs(m, ms)))
        if not cands:
            pick = None
        else:
            cheapest = min(c for _, c in cands)
            pick = min(m for m, c in cands if c <= cheapest * 1.10)
        rec[fn] = pick
        print(f"   {fn:<24}{(str(pick) + ' MB') if pick else 'none qualifies':>16}   ({'; '.join(why)})")
    out["recommended_mb"] = rec
    out["bounds"] = {"step_ms": args.step_bound_ms, "copy_s": args.copy_bound_s, "copy_gib": args.copy_bound_gib}

    # ---- cost per promotion ----
    c = counts["promotion"]
    kms_n = sum(c["aws"].get(k, 0) for k in KMS_OPS)
    transitions = c["transitions"]
    print("\n== Cost per promotion at list prices (ASSUMPTIONS, check them: arm64 Lambda "
          f"${LAMBDA_ARM_GBS}/GB-s and $0.20 per million\n   requests; Step Functions Standard $0.025 per "
          f"1,000 transitions; KMS asymmetric requests $0.15 per 10,000)")

    def cost(mix: dict[str, int], label: str = "promotion") -> dict:
        g = 0.0
        for _, fn in STEPS:
            m = mix[fn]
            g += sum(gbs(m, i["billed_ms"]) for i in sizes[m].of(label, fn))
        cl = counts[label]
        lam = g * LAMBDA_ARM_GBS + cl["lambda_requests"] * LAMBDA_REQUEST
        sfn = cl["transitions"] * SFN_TRANSITION
        kms = sum(cl["aws"].get(k, 0) for k in KMS_OPS) * KMS_ASYMMETRIC
        return {"gb_s": g, "lambda": lam, "sfn": sfn, "kms": kms, "total": lam + sfn + kms}

    rows = [(f"all at {m} MB", {fn: m for _, fn in STEPS}) for m in mbs]
    if all(rec.values()):
        rows.append(("recommended", dict(rec)))
    print(f"   {'memory':<16}{'GB-s':>9}{'Lambda':>12}{'Step Fn':>12}{'KMS':>12}{'total':>12}")
    out["cost"] = {}
    for name, mix in rows:
        k = cost(mix)
        out["cost"][name] = k
        print(f"   {name:<16}{k['gb_s']:>9.4f}{fmt_usd(k['lambda']):>12}{fmt_usd(k['sfn']):>12}"
              f"{fmt_usd(k['kms']):>12}{fmt_usd(k['total']):>12}")
    print(f"   ({transitions} transitions, {c['lambda_requests']} Lambda requests, {kms_n} KMS requests; "
          "the Lambda requests are in the Lambda column)")
    if "upstream" in labels and all(rec.values()):
        k = cost(dict(rec), "upstream")
        out["cost"]["recommended_upstream"] = k
        print(f"   {'upstream, rec.':<16}{k['gb_s']:>9.4f}{fmt_usd(k['lambda']):>12}{fmt_usd(k['sfn']):>12}"
              f"{fmt_usd(k['kms']):>12}{fmt_usd(k['total']):>12}   ({streamed / MIB:.0f} MiB streamed by copy)")
    if all(rec.values()):
        gm = rec["scan-gate"]
        gate_invs = sizes[gm].of("promotion", "scan-gate")
        poll_gbs = sum(gbs(gm, i["billed_ms"]) for i in gate_invs) / max(1, len(gate_invs))
        extra = args.gate_polls - 1
        k = cost(dict(rec))
        aws_total = (k["total"] + extra * (poll_gbs * LAMBDA_ARM_GBS + LAMBDA_REQUEST + 3 * SFN_TRANSITION))
        print(f"   On AWS with {args.gate_polls} gate polls (Inspector's first scan takes minutes): each extra poll "
              f"adds 3 transitions\n   (GateDecision, GateWait, Gate), 1 request and at most the measured gate "
              f"invocation ({poll_gbs:.4f} GB-s):\n   {fmt_usd(aws_total)} per promotion at the recommended sizes, "
              f"before Init phases and AWS network latency.")
        out["cost"]["recommended_with_gate_polls"] = {"polls": args.gate_polls, "total": aws_total}
        init_g = sum(gbs(rec[fn], (sizes[rec[fn]].stats["functions"][fn]["inits"][0]["init_ms"] or 0))
                     for _, fn in STEPS)
        print(f"   If all five start cold: + {init_g:.4f} GB-s of Init ({fmt_usd(init_g * LAMBDA_ARM_GBS)}), "
              "once per new execution environment.")

    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=dict) + "\n")
    if problems:
        print(file=sys.stderr)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
