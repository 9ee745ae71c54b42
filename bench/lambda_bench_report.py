#!/usr/bin/env python3
"""Summarises bench/lambda-bench.sh runs: medians per tool, the 3 GiB estimate, promote/skopeo.

Input: a TSV with one line per run (written by lambda-bench.sh):
    tool run wall_s user_s sys_s rss_kib cg_cpu_s cg_peak_bytes nr_throttled throttled_s bytes
wall/user/sys/rss are GNU time's %e %U %S %M for the client; the others are the cgroup's own
accounting (v1: cpuacct.usage, memory.max_usage_in_bytes, cpu.stat; v2: cpu.stat usage_usec,
memory.peak). cg_peak_bytes is "-" when the kernel has no peak file (v2 before Linux 5.19).
throttled_s is the kernel's throttled time, which v1 sums over CPUs (it can exceed the wall
time), so it goes to the JSON only. `bytes` is the image's blob bytes (config + layers), the
amount every copy moves. Tool "curl" is bench/curl-copy.sh over TLS (a reference);
"promote@2x" is promote on the image with layers twice as big (memory must stay flat); "socket"
is bench/socket_relay.c's plain relay of the same byte count with 1 MiB calls (the kernel's
share of the floor, reported with the floor, not as a tool); "socket-16k" is the same relay
with 16 KiB reads and 64 KiB writes (a TLS client reading one record at a time), reported next
to the floor but not part of it.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict

GIB = 2**30
MIB = 2**20
ESTIMATE_GIB = 3
TOOL_ORDER = ("promote", "promote@2x", "skopeo", "curl")
# Issue 16's targets for a 128 MB Lambda (the box this benchmark builds).
TARGET_CPU_S_PER_GIB = 1.6
TARGET_SPEEDUP = 2.5
TARGET_PEAK_MIB = 48
TARGET_3GIB_S = 72
# Flat: a copy's memory must not follow the layer size; doubling the layers may add at most
# this much (allocator and page-cache noise).
FLAT_SLACK_MIB = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--json", help="also write the figures as JSON to this file")
    ap.add_argument("--cgroup", default="?", help="cgroup version used (for the header and JSON)")
    ap.add_argument("--memory-mib", type=int, required=True)
    ap.add_argument("--cpu-quota-us", type=int, required=True)
    ap.add_argument("--cpu-period-us", type=int, required=True)
    ap.add_argument("--image", default="", help="LAYERSxMIB, for the header and JSON")
    ap.add_argument("--sha256-s-per-gib", type=float,
                    help="CPU-seconds per GiB of SHA-256 on this CPU (openssl speed)")
    ap.add_argument("--aes-gcm-s-per-gib", type=float,
                    help="CPU-seconds per GiB of AES-128-GCM, one direction (openssl speed)")
    args = ap.parse_args()

    runs: dict[str, list[dict]] = defaultdict(list)
    with open(args.results) as f:
        for line in f:
            if not line.strip():
                continue
            (tool, run, wall, user, sys_, rss, cg_cpu, cg_peak, nthr, thr_s,
             nbytes) = line.rstrip("\n").split("\t")
            nbytes_i = int(nbytes)
            cpu = float(cg_cpu)
            r = {
                "run": int(run), "wall_s": float(wall), "user_s": float(user), "sys_s": float(sys_),
                "time_cpu_s": float(user) + float(sys_), "cpu_s": cpu,
                "cpu_s_per_gib": cpu / (nbytes_i / GIB),
                "peak_mib": int(cg_peak) / MIB if cg_peak != "-" else None,
                "rss_mib": int(rss) / 1024, "nr_throttled": int(nthr),
                "throttled_s": float(thr_s), "bytes": nbytes_i,
            }
            r["est_3gib_s"] = r["wall_s"] * ESTIMATE_GIB * GIB / nbytes_i
            # GNU time's split of the process's CPU: user space, and the kernel working for it
            # (syscalls, and on loopback part of the peer's TCP receive work, which runs in
            # the sender's context).
            r["user_s_per_gib"] = r["user_s"] / (nbytes_i / GIB)
            r["sys_s_per_gib"] = r["sys_s"] / (nbytes_i / GIB)
            runs[tool].append(r)
    socket_runs = runs.pop("socket", [])
    socket_16k_runs = runs.pop("socket-16k", [])
    if not runs:
        print("no results", file=sys.stderr)
        return 1

    tools = [t for t in TOOL_ORDER if t in runs] + sorted(t for t in runs if t not in TOOL_ORDER)
    keys = ("wall_s", "cpu_s", "cpu_s_per_gib", "peak_mib", "rss_mib", "est_3gib_s",
            "time_cpu_s", "throttled_s", "nr_throttled", "user_s_per_gib", "sys_s_per_gib")
    med: dict[str, dict] = {}
    for t in tools:
        rs = runs[t]
        m: dict = {"runs": len(rs), "bytes": rs[0]["bytes"]}
        for k in keys:
            vals = [r[k] for r in rs if r[k] is not None]
            m[k] = statistics.median(vals) if vals else None
        peaks = [r["peak_mib"] for r in rs if r["peak_mib"] is not None]
        m["peak_max_mib"] = max(peaks) if peaks else None
        m["mib_per_s"] = m["bytes"] / MIB / m["wall_s"] if m["wall_s"] > 0 else float("inf")
        med[t] = m

    share = args.cpu_quota_us / args.cpu_period_us
    image_mib = med[tools[0]]["bytes"] / MIB
    print(f"cgroup {args.cgroup}: memory {args.memory_mib} MiB, CPU {args.cpu_quota_us}/"
          f"{args.cpu_period_us} us ({share:.1%} of one CPU); image {args.image} "
          f"({image_mib:.1f} MiB of blobs)")
    print()

    def fmt(x, spec: str, width: int) -> str:
        return f"{'n/a':>{width}}" if x is None else f"{x:>{width}{spec}}"

    header = (f"{'tool':<11}{'runs':>5}{'wall s':>9}{'MiB/s':>8}{'CPU s':>8}{'CPU-s/GiB':>11}"
              f"{'user':>7}{'sys':>6}{'peak MiB':>10}{'RSS MiB':>9}"
              f"{f'{ESTIMATE_GIB} GiB est. s':>14}")
    print(header)
    print("-" * len(header))
    for t in tools:
        m = med[t]
        print(f"{t:<11}{m['runs']:>5}{m['wall_s']:>9.2f}{m['mib_per_s']:>8.1f}{m['cpu_s']:>8.2f}"
              f"{m['cpu_s_per_gib']:>11.2f}{m['user_s_per_gib']:>7.2f}{m['sys_s_per_gib']:>6.2f}"
              f"{fmt(m['peak_mib'], '.1f', 10)}{m['rss_mib']:>9.1f}{m['est_3gib_s']:>14.1f}")
    print("medians. CPU s: the cgroup's CPU time (CPU-s/GiB per GiB of blobs moved); user, sys:\n"
          "GNU time's user and system CPU-seconds per GiB (the kernel's part: syscalls and, on\n"
          "loopback, part of the peer's TCP receive work, charged to the sender). peak MiB: the\n"
          "cgroup's peak memory charge, what the limit applies to (pages the process allocated or\n"
          "read while in the cgroup; not the pages of its executable and libraries that were\n"
          "already cached, which RSS does count). RSS MiB: GNU time's peak RSS. 3 GiB est.:\n"
          f"wall x {ESTIMATE_GIB} GiB / image size.")

    ratios = None
    if "promote" in med and "skopeo" in med:
        p, s = med["promote"], med["skopeo"]

        def ratio(a, b):
            return a / b if a is not None and b else None

        ratios = {
            "wall": ratio(p["wall_s"], s["wall_s"]),
            "cpu_s_per_gib": ratio(p["cpu_s_per_gib"], s["cpu_s_per_gib"]),
            "peak_mib": ratio(p["peak_mib"], s["peak_mib"]),
        }
        print()
        print(f"promote/skopeo: wall {fmt(ratios['wall'], '.2f', 0)}x   "
              f"CPU/GiB {fmt(ratios['cpu_s_per_gib'], '.2f', 0)}x   "
              f"peak memory {fmt(ratios['peak_mib'], '.2f', 0)}x")

    kernel = (statistics.median(r["cpu_s_per_gib"] for r in socket_runs)
              if socket_runs else None)
    kernel_16k = (statistics.median(r["cpu_s_per_gib"] for r in socket_16k_runs)
                  if socket_16k_runs else None)
    floor = floor_line(med, kernel, kernel_16k, args.sha256_s_per_gib, args.aes_gcm_s_per_gib)
    targets = target_lines(med, ratios)

    if args.json:
        def rnd(d: dict) -> dict:
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}

        with open(args.json, "w") as f:
            json.dump({
                "limits": {"cgroup": args.cgroup, "memory_mib": args.memory_mib,
                           "cpu_quota_us": args.cpu_quota_us,
                           "cpu_period_us": args.cpu_period_us, "cpu_share": round(share, 4)},
                "image": {"layout": args.image, "blob_bytes": med[tools[0]]["bytes"]},
                "medians": {t: rnd(m) for t, m in med.items()},
                "ratios_promote_over_skopeo": rnd(ratios) if ratios else None,
                "floor": rnd(floor) if floor else None,
                "targets": targets,
                "runs": {t: [rnd(r) for r in rs] for t, rs in runs.items()},
            }, f, indent=2)
            f.write("\n")
    return 0


def floor_line(med: dict, kernel: float | None, kernel_16k: float | None, sha: float | None,
               aes: float | None) -> dict | None:
    """Prints (and returns) the floor: what a client that verifies what it copies over TLS
    cannot avoid per byte: the kernel moving the bytes in and out, one SHA-256 pass, and
    AES-GCM once per direction. KERNEL_16K, the relay with 16 KiB reads, is printed (and
    returned) next to it, not added to it."""
    if kernel is None or sha is None or aes is None:
        return None
    total = kernel + sha + 2 * aes
    out: dict = {"kernel_s_per_gib": kernel, "sha256_s_per_gib": sha,
                 "aes_gcm_s_per_gib_per_direction": aes, "floor_s_per_gib": total}
    print()
    print(f"floor: {total:.2f} s/GiB = kernel {kernel:.2f} (C relay in the box, 1 MiB calls) "
          f"+ SHA-256 {sha:.2f} + AES-128-GCM 2 x {aes:.2f} (openssl speed)")
    if kernel_16k is not None:
        out["kernel_16k_reads_s_per_gib"] = kernel_16k
        print(f"  kernel with 16 KiB reads, 64 KiB writes (a TLS client reading one record at a "
              f"time): {kernel_16k:.2f} s/GiB, {kernel_16k - kernel:+.2f} over 1 MiB calls; "
              f"not in the floor")
    clients = {t: med[t]["sys_s_per_gib"] for t in ("promote", "skopeo") if t in med}
    if clients:
        # The relay's peers are Python sockets; the copies' peers are docker-registry. Both
        # clients pay the same kernel time against the registries, well above the relay's:
        # that part is the peers' and the loopback's, not a client's overhead.
        out["kernel_as_clients_pay_it_s_per_gib"] = clients
        print("  kernel as the clients pay it against the registries (GNU time's sys per GiB): "
              + ", ".join(f"{t} {v:.2f}" for t, v in clients.items()))
    if "promote" in med:
        p = med["promote"]["cpu_s_per_gib"]
        out["promote_over_floor_s_per_gib"] = p - total
        print(f"  promote: {p:.2f} s/GiB, {p - total:+.2f} s/GiB ({p / total:.2f}x) over the floor")
        if "promote" in clients:
            user = med["promote"]["user_s_per_gib"]
            above = user - sha - 2 * aes
            out["promote_user_above_crypto_s_per_gib"] = above
            print(f"  promote in user space: {user:.2f} s/GiB, {above:+.2f} over SHA-256 + "
                  f"AES-128-GCM x 2 (copies, HTTP, TLS framing, the runtime)")
    return out


def target_lines(med: dict, ratios: dict | None) -> list[dict]:
    """Prints issue 16's targets with the measured figure and whether it is met."""
    if "promote" not in med:
        return []
    p = med["promote"]
    rows: list[dict] = []

    def row(name: str, value: str, met: bool | None) -> None:
        rows.append({"target": name, "measured": value, "met": met})

    row(f"CPU <= {TARGET_CPU_S_PER_GIB} s/GiB", f"{p['cpu_s_per_gib']:.2f}",
        p["cpu_s_per_gib"] <= TARGET_CPU_S_PER_GIB)
    if ratios and ratios.get("wall"):
        speedup = 1 / ratios["wall"]
        row(f"wall >= {TARGET_SPEEDUP}x faster than skopeo", f"{speedup:.2f}x",
            speedup >= TARGET_SPEEDUP)
    if p["peak_max_mib"] is not None:
        row(f"peak memory <= {TARGET_PEAK_MIB} MiB", f"{p['peak_max_mib']:.1f} MiB",
            p["peak_max_mib"] <= TARGET_PEAK_MIB)
    d = med.get("promote@2x")
    if d and d["peak_mib"] is not None and p["peak_mib"] is not None:
        # Medians, not maxima: the cgroup's peak charge of one image varies by several MiB
        # from run to run (4.9 to 17.2 MiB over 11 runs of the same binary and image on
        # 2026-12-06), so a single run of each size, or the worst of a different number of
        # runs, says nothing about growth with the layer size.
        grow = d["peak_mib"] - p["peak_mib"]
        row(f"peak flat when the layers double (medians, +<= {FLAT_SLACK_MIB:.0f} MiB)",
            f"{p['peak_mib']:.1f} -> {d['peak_mib']:.1f} MiB ({grow:+.1f})",
            grow <= FLAT_SLACK_MIB)
    row(f"3 GiB image <= {TARGET_3GIB_S} s", f"{p['est_3gib_s']:.1f} s",
        p["est_3gib_s"] <= TARGET_3GIB_S)
    print()
    print("targets (issue 16, 128 MB Lambda):")
    for r in rows:
        mark = {True: "met", False: "MISSED", None: "n/a"}[r["met"]]
        print(f"  {r['target']:<46} {r['measured']:>26}   {mark}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
