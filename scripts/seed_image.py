#!/usr/bin/env python3
"""Pushes a generated OCI image into a registry over plain HTTP (no Docker daemon, no internet).

Every platform gets its own config and random layers (optionally sharing the first few layers,
like a common base image); with more than one platform, or without --no-index, the platform
manifests are tied together by an OCI image index pushed under the tag.

Layers are real `tar+gzip` blobs: a tar holding one file of random bytes, gzip-framed with
stored (level 0) deflate blocks so generating them costs little CPU. They are produced in 1 MiB
pieces, hashed on the way and sent as one chunked PATCH, so memory and disk use stay flat
whatever the layer size.

Prints a JSON summary on stdout: the tag's digest and media type, and for every platform its
manifest, config and layer descriptors (used by bench/ to copy the same blobs with curl).

    seed_image.py --registry 127.0.0.1:5000 --repository incoming/app --tag 1.0.0 \\
        --platform linux/amd64 --platform linux/arm64/v8 --layers 2 --layer-bytes 1048576
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import sys
import tarfile
import urllib.parse
import zlib

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
PIECE = 1 << 20
# A fixed timestamp keeps configs free of wall-clock noise.
CREATED = "2024-01-01T00:00:00Z"


class Registry:
    """A tiny distribution-spec client: blob upload (monolithic and streamed) and manifest PUT."""

    def __init__(self, hostport: str, creds: str | None) -> None:
        self.hostport = hostport
        self.base = f"http://{hostport}"
        self.headers = {}
        if creds:
            token = base64.b64encode(creds.encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.conn = http.client.HTTPConnection(hostport, timeout=300, blocksize=PIECE)

    def _request(self, method: str, url: str, body=None, headers=None, expect=(200,)):
        parsed = urllib.parse.urlsplit(urllib.parse.urljoin(self.base + "/", url))
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        encode_chunked = body is not None and not isinstance(body, (bytes, bytearray))
        self.conn.request(method, path, body=body, headers=hdrs, encode_chunked=encode_chunked)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status not in expect:
            raise SystemExit(
                f"seed_image: {method} {path}: HTTP {resp.status}: {data[:300].decode(errors='replace')}"
            )
        return resp, data

    def _start_upload(self, repo: str) -> str:
        resp, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        return resp.getheader("Location")

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        sep = "&" if "?" in location else "?"
        return f"{location}{sep}digest={urllib.parse.quote(digest)}"

    def put_blob(self, repo: str, data: bytes) -> dict:
        """Monolithic upload: POST, then PUT ?digest= with the body."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = self._start_upload(repo)
        self._request(
            "PUT",
            self._with_digest(location, digest),
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(201,),
        )
        return {"digest": digest, "size": len(data)}

    def stream_blob(self, repo: str, pieces) -> dict:
        """Streamed upload: POST, one chunked PATCH hashing on the way, then PUT ?digest=."""
        hasher = hashlib.sha256()
        size = 0

        def body():
            nonlocal size
            for piece in pieces:
                hasher.update(piece)
                size += len(piece)
                yield piece

        location = self._start_upload(repo)
        resp, _ = self._request(
            "PATCH",
            location,
            body=body(),
            headers={"Content-Type": "application/octet-stream"},
            expect=(202,),
        )
        digest = "sha256:" + hasher.hexdigest()
        self._request(
            "PUT",
            self._with_digest(resp.getheader("Location"), digest),
            body=b"",
            headers={"Content-Length": "0"},
            expect=(201,),
        )
        return {"digest": digest, "size": size}

    def put_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> str:
        resp, _ = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            body=data,
            headers={"Content-Type": media_type},
            expect=(201,),
        )
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        served = resp.getheader("Docker-Content-Digest")
        if served and served != digest:
            raise SystemExit(f"seed_image: registry stored {served}, expected {digest}")
        return digest


def random_layer(name: str, nbytes: int, diff_hasher):
    """Yields a gzip (stored blocks) of a tar holding one file of `nbytes` random bytes.

    `diff_hasher` receives the uncompressed tar stream: its digest is the layer's diff_id.
    """
    gz = zlib.compressobj(0, zlib.DEFLATED, 31)
    info = tarfile.TarInfo(name)
    info.size = nbytes
    info.mode = 0o644
    info.mtime = 1704067200

    def feed(raw: bytes):
        diff_hasher.update(raw)
        out = gz.compress(raw)
        if out:
            yield out

    yield from feed(info.tobuf(format=tarfile.PAX_FORMAT))
    with open("/dev/urandom", "rb", buffering=0) as urandom:
        left = nbytes
        while left > 0:
            piece = urandom.read(min(PIECE, left))
            left -= len(piece)
            yield from feed(piece)
    pad = (-nbytes) % tarfile.BLOCKSIZE
    yield from feed(b"\0" * (pad + 2 * tarfile.BLOCKSIZE))
    yield gz.flush()


def parse_platform(text: str) -> dict:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SystemExit(f"seed_image: --platform must be OS/ARCH[/VARIANT], got {text!r}")
    platform = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def canonical(doc: dict) -> bytes:
    return json.dumps(doc, indent=2).encode() + b"\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", required=True, help="HOST:PORT, spoken to over plain HTTP")
    ap.add_argument("--repository", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--platform", action="append", help="OS/ARCH[/VARIANT] (repeatable)")
    ap.add_argument("--layers", type=int, default=2, help="layers per platform (default 2)")
    ap.add_argument("--layer-bytes", type=int, default=1 << 20, help="random bytes per layer")
    ap.add_argument("--shared-layers", type=int, default=0,
                    help="how many of the first layers every platform shares (default 0)")
    ap.add_argument("--no-index", action="store_true",
                    help="single platform: tag the image manifest itself, no index")
    ap.add_argument("--creds", default=os.environ.get("SEED_CREDS"), help="USER:PASS (basic auth)")
    args = ap.parse_args()

    platforms = [parse_platform(p) for p in (args.platform or ["linux/amd64", "linux/arm64/v8"])]
    if args.no_index and len(platforms) != 1:
        raise SystemExit("seed_image: --no-index needs exactly one --platform")
    if not 0 <= args.shared_layers <= args.layers:
        raise SystemExit("seed_image: --shared-layers must be between 0 and --layers")

    reg = Registry(args.registry, args.creds)
    repo = args.repository
    shared: list[tuple[dict, str]] = []  # (descriptor, diff_id) of the shared base layers
    summary = {"registry": args.registry, "repository": repo, "tag": args.tag, "platforms": []}
    index_entries = []

    for platform in platforms:
        plat_name = "/".join(filter(None, [platform["os"], platform["architecture"],
                                           platform.get("variant")]))
        layers, diff_ids = [], []
        for i in range(args.layers):
            if i < len(shared):
                desc, diff_id = shared[i]
            else:
                diff_hasher = hashlib.sha256()
                blob = reg.stream_blob(repo, random_layer(f"data/layer-{i}.bin",
                                                          args.layer_bytes, diff_hasher))
                desc = {"mediaType": OCI_LAYER_GZIP, **blob}
                diff_id = "sha256:" + diff_hasher.hexdigest()
                if i < args.shared_layers:
                    shared.append((desc, diff_id))
            layers.append(desc)
            diff_ids.append(diff_id)

        config = {
            "created": CREATED,
            "architecture": platform["architecture"],
            "os": platform["os"],
            **({"variant": platform["variant"]} if "variant" in platform else {}),
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": CREATED, "created_by": f"seed_image.py layer {i}"}
                        for i in range(args.layers)],
        }
        config_desc = {"mediaType": OCI_CONFIG, **reg.put_blob(repo, canonical(config))}
        manifest = canonical({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_desc,
            "layers": layers,
        })
        ref = args.tag if args.no_index else "sha256:" + hashlib.sha256(manifest).hexdigest()
        digest = reg.put_manifest(repo, ref, OCI_MANIFEST, manifest)
        index_entries.append({"mediaType": OCI_MANIFEST, "digest": digest,
                              "size": len(manifest), "platform": platform})
        summary["platforms"].append({"platform": plat_name, "digest": digest,
                                     "size": len(manifest), "config": config_desc,
                                     "layers": layers})

    if args.no_index:
        summary["digest"] = index_entries[0]["digest"]
        summary["media_type"] = OCI_MANIFEST
    else:
        index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries})
        summary["digest"] = reg.put_manifest(repo, args.tag, OCI_INDEX, index)
        summary["media_type"] = OCI_INDEX
    blobs = {p["config"]["digest"]: p["config"]["size"] for p in summary["platforms"]}
    blobs.update({l["digest"]: l["size"] for p in summary["platforms"] for l in p["layers"]})
    summary["blob_bytes"] = sum(blobs.values())
    summary["blobs"] = len(blobs)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
