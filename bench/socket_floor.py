#!/usr/bin/env python3
"""The serving side of the kernel's share of a copy's floor: a source that sends N bytes and a
sink that counts them, over loopback TCP, for bench/socket_relay.c to relay between.

    socket_floor.py serve BYTES READY_FILE   # outside the cgroup: a source that sends BYTES
                                             # bytes and a sink that counts them; writes
                                             # "SRC_PORT SINK_PORT" to READY_FILE, then waits
                                             # for one relay and exits 0 when the sink got all

bench/lambda-bench.sh runs this outside the cgroup and bench/socket_relay.c (compiled with cc
at run time) inside it, and reports the relay's CPU-seconds per GiB as the kernel floor: the
socket work (receive, send, loopback TCP processing) any copy client pays for moving the bytes
in and out, with 1 MiB recv/send calls so that the per-call cost is negligible (and, as a
separate figure outside the floor, with 16 KiB reads and 64 KiB writes). Only the relay is
charged to the cgroup, so this side's interpreter costs do not count; the relay is C so that
no interpreter's do either.

Standard library only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

CHUNK = 1 << 20


def serve(total: int, ready_file: str) -> int:
    src = socket.create_server(("127.0.0.1", 0))
    sink = socket.create_server(("127.0.0.1", 0))
    with open(ready_file + ".tmp", "w") as f:
        f.write(f"{src.getsockname()[1]} {sink.getsockname()[1]}\n")
    # Renamed into place so the reader never sees a half-written file.
    os.replace(ready_file + ".tmp", ready_file)

    got = [0]

    def drain() -> None:
        conn, _ = sink.accept()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(view)
            if n == 0:
                break
            got[0] += n
        conn.close()

    t = threading.Thread(target=drain)
    t.start()
    conn, _ = src.accept()
    block = bytes(CHUNK)
    left = total
    while left > 0:
        n = min(left, CHUNK)
        conn.sendall(block[:n] if n < CHUNK else block)
        left -= n
    conn.shutdown(socket.SHUT_WR)
    t.join()
    conn.close()
    if got[0] != total:
        print(f"socket_floor: the sink got {got[0]} bytes, expected {total}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        return serve(int(sys.argv[2]), sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
