#!/usr/bin/env python3
"""The kernel's share of a copy's floor: relay N bytes from one loopback TCP connection to
another with large reads and writes, nothing else (no HTTP, no TLS, no hashing).

    socket_floor.py serve BYTES READY_FILE   # outside the cgroup: a source that sends BYTES
                                             # bytes and a sink that counts them; writes
                                             # "SRC_PORT SINK_PORT" to READY_FILE, then waits
                                             # for one relay and exits 0 when the sink got all
    socket_floor.py relay SRC_PORT SINK_PORT BYTES
                                             # inside the cgroup: connect to both, relay

bench/lambda-bench.sh runs the relay in the same cgroup as the copies and reports its
CPU-seconds per GiB as the kernel floor: the socket work (receive, send, loopback TCP
processing) any copy client pays for moving the bytes in and out, measured with 1 MiB
recv_into/sendall calls so that the per-call cost is negligible. Python's interpreter costs
a few tens of milliseconds once, which the default 512 MiB amortises to under 0.05 s/GiB.

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


def relay(src_port: int, sink_port: int, total: int) -> int:
    src = socket.create_connection(("127.0.0.1", src_port))
    sink = socket.create_connection(("127.0.0.1", sink_port))
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    moved = 0
    while True:
        n = src.recv_into(view)
        if n == 0:
            break
        sink.sendall(view[:n])
        moved += n
    sink.shutdown(socket.SHUT_WR)
    sink.close()
    src.close()
    if moved != total:
        print(f"socket_floor: relayed {moved} bytes, expected {total}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        return serve(int(sys.argv[2]), sys.argv[3])
    if len(sys.argv) == 5 and sys.argv[1] == "relay":
        return relay(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
