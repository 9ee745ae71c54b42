#!/usr/bin/env python3
"""Summarises bench/copy-bench.sh runs: medians per variant and tool, ratios and targets.

Input: a TSV with one line per run:
    variant  tool  run  wall_s  user_s  sys_s  peak_rss_kib  bytes
(the last four as GNU time's %e %U %S %M, then the image's blob bytes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict

RSS_LIMIT_MIB = 32.0
CPU_FRACTION = 1 / 3
# Peak RSS counts as flat when the large variant stays within this much of the small one.
FLAT_SLACK_MIB = 4.0
FLAT_SLACK_FRACTION = 0.20


def variant_key(v: str) -> tuple[int, int]:
    layers, mib = v.split("x")
    return int(mib), int(layers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--json", help="also write the medians and verdicts to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()

    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    with open(args.results) as f:
        for line in f:
            if not line.strip():
                continue
            variant, tool, _run, wall, user, sys_, rss, nbytes = line.split("\t")
            runs[(variant, tool)].append({
                "wall": float(wall), "cpu": float(user) + float(sys_), "user": float(user),
                "sys": float(sys_), "rss_mib": int(rss) / 1024, "bytes": int(nbytes),
            })
    if not runs:
        print("no results", file=sys.stderr)
        return 1

    variants = sorted({v for v, _ in runs}, key=variant_key)
    tools = [t for t in ("promote", "skopeo", "curl") if any(t == k[1] for k in runs)]
    med: dict[tuple[str, str], dict] = {}
    for key, rs in runs.items():
        m = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "user", "sys", "rss_mib")}
        m["rss_max_mib"] = max(r["rss_mib"] for r in rs)
        m["bytes"] = rs[0]["bytes"]
        m["runs"] = len(rs)
        m["mib_per_s"] = m["bytes"] / 2**20 / m["wall"] if m["wall"] > 0 else float("inf")
        med[key] = m

    header = (f"{'variant':<12}{'tool':<9}{'runs':>5}{'wall s':>9}{'MiB/s':>9}{'user s':>9}"
              f"{'sys s':>8}{'cpu s':>8}{'peak RSS MiB':>14}")
    print(header)
    print("-" * len(header))
    for v in variants:
        layers, mib = v.split("x")
        label = f"{layers}x{mib}MiB"
        for t in tools:
            m = med.get((v, t))
            if not m:
                continue
            print(f"{label:<12}{t:<9}{m['runs']:>5}{m['wall']:>9.2f}{m['mib_per_s']:>9.0f}"
                  f"{m['user']:>9.2f}{m['sys']:>8.2f}{m['cpu']:>8.2f}{m['rss_mib']:>14.1f}")
    if "curl" in tools:
        print("(curl: one bash running curl | curl per blob; CPU sums every process, peak RSS is"
              " the largest single process, as GNU time's %M reports it)")

    verdicts = []

    def verdict(name: str, ok: bool, detail: str) -> None:
        verdicts.append({"target": name, "ok": ok, "detail": detail})

    if "promote" in tools and "skopeo" in tools:
        print()
        print("promote vs skopeo")
        for v in variants:
            p, s = med.get((v, "promote")), med.get((v, "skopeo"))
            if not p or not s:
                continue
            wall_ratio = p["wall"] / s["wall"] if s["wall"] else float("inf")
            cpu_ratio = p["cpu"] / s["cpu"] if s["cpu"] else float("inf")
            print(f"  {v:<10} wall {wall_ratio:5.2f}x   cpu {cpu_ratio:5.2f}x   "
                  f"promote peak RSS {p['rss_mib']:.1f} MiB (max {p['rss_max_mib']:.1f})")
            verdict(f"{v}: wall time no worse than skopeo", wall_ratio <= 1.0,
                    f"promote/skopeo wall = {wall_ratio:.2f}")
            verdict(f"{v}: client CPU at most 1/3 of skopeo's", cpu_ratio <= CPU_FRACTION,
                    f"promote/skopeo cpu = {cpu_ratio:.2f}")
    if "promote" in tools:
        for v in variants:
            p = med.get((v, "promote"))
            if p:
                verdict(f"{v}: promote peak RSS at most {RSS_LIMIT_MIB:.0f} MiB",
                        p["rss_max_mib"] <= RSS_LIMIT_MIB, f"max {p['rss_max_mib']:.1f} MiB")
        pv = [v for v in variants if (v, "promote") in med]
        if len(pv) >= 2:
            small, large = med[(pv[0], "promote")], med[(pv[-1], "promote")]
            growth = large["rss_mib"] - small["rss_mib"]
            flat = growth <= max(FLAT_SLACK_MIB, FLAT_SLACK_FRACTION * small["rss_mib"])
            verdict(f"promote peak RSS flat from {pv[0]} to {pv[-1]}", flat,
                    f"{small['rss_mib']:.1f} -> {large['rss_mib']:.1f} MiB ({growth:+.1f})")

    if verdicts:
        print()
        print("targets")
        for vd in verdicts:
            print(f"  {'met   ' if vd['ok'] else 'MISSED'}  {vd['target']}: {vd['detail']}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "medians": [{"variant": v, "tool": t,
                             **{k: round(x, 4) if isinstance(x, float) else x for k, x in m.items()}}
                            for (v, t), m in sorted(med.items())],
                "targets": verdicts,
            }, f, indent=2)
            f.write("\n")

    if args.strict and not all(vd["ok"] for vd in verdicts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
