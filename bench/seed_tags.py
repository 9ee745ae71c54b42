#!/usr/bin/env python3
"""Push N small, distinct single-platform OCI images as tags of one repository.

    seed_tags.py HOST:PORT REPO N

Each image is one 1 KiB random layer, a config and a manifest, tagged 1.0.0, 1.0.1, ... (so that
`promote sync --semver` sees versions). Plain HTTP, the distribution API only (monolithic blob
uploads), for bench/sync-bench.sh: seeding 200 images with a registry client per image would take
longer than the benchmark.
"""
import hashlib
import json
import os
import sys
import urllib.request


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as resp:
        return resp.status, dict(resp.headers)


def push_blob(base, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers = request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    location = headers["Location"]
    if not location.startswith("http"):
        location = base + location
    sep = "&" if "?" in location else "?"
    request("PUT", f"{location}{sep}digest={digest}", data,
            {"Content-Type": "application/octet-stream"})
    return {"digest": digest, "size": len(data)}


def main():
    host, repo, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    base = f"http://{host}"
    for i in range(n):
        tag = f"1.{i // 100}.{i % 100}"
        layer = push_blob(base, repo, os.urandom(1024))
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode()
        cfg = push_blob(base, repo, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }).encode()
        request("PUT", f"{base}/v2/{repo}/manifests/{tag}", manifest,
                {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    print(n)


if __name__ == "__main__":
    main()
