"""`lenet serve` under concurrent clients: requests/s and latency, against the real server.

    python benchmarks/serve.py [--checkpoint RUN] [--requests 1000] [--clients 16]
                               [--endpoint predict|activations] [--side 280]

Starts `lenet serve --port 0` on 127.0.0.1 (a checkpoint of `lenet train --config
configs/quick.toml` trained first into a temporary folder when none is named), then sends
``--requests`` POSTs from ``--clients`` threads, each with its own keep-alive connection. The
pictures are the bundled sample's test digits, dark on white and scaled to ``--side`` pixels as
PNG, as the page sends its 280x280 pad. Every answer must be a 200 naming the digit's class
count; the figures are requests/s over the whole run and the p50/p99 latency of one request.
The clients run on the same machine as the server and share its cores.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pictures(count: int, side: int) -> list[bytes]:
    """PNG bytes of the first ``count`` test digits of the bundled sample, dark ink on white."""
    import numpy as np
    from PIL import Image

    from lenet_cli.data import read_idx_pair, resolve_source

    located, _ = resolve_source("mnist-sample", data_dir=None, download=False)
    images, _ = read_idx_pair(*located.files["test"])
    out = []
    for digit in np.asarray(images[:count], dtype=np.uint8):
        img = Image.fromarray(255 - digit).resize((side, side), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def train_quick(out: Path) -> Path:
    cmd = [sys.executable, "-m", "lenet_cli", "train", "--config", "configs/quick.toml",
           "--progress", "none", "--out", str(out), "--name", "bench"]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return out / "bench"


def start_server(checkpoint: Path) -> tuple[subprocess.Popen, str, int]:
    """`lenet serve --port 0`, and the host and port its start line names."""
    cmd = [sys.executable, "-m", "lenet_cli", "serve", "--checkpoint", str(checkpoint.resolve()),
           "--port", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    said = []
    for line in proc.stderr:
        said.append(line)
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep it drained
            return proc, found.group(1), int(found.group(2))
    sys.exit(f"lenet serve ended with {proc.wait()} before it said its address: {''.join(said)}")


def client(host, port, path, jobs, bodies, latencies, failures, lock) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    while True:
        with lock:
            if not jobs:
                break
            i = jobs.pop()
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
            response = conn.getresponse()
            answer = response.read()
            ok = response.status == 200 and "predicted" in json.loads(answer)
        except (OSError, http.client.HTTPException, ValueError) as e:
            ok, answer = False, repr(e).encode()
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
        elapsed = time.perf_counter() - t0
        with lock:
            latencies.append(elapsed)
            if not ok:
                failures.append(answer[:200].decode(errors="replace"))
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a run or checkpoint [default: train one]")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--endpoint", choices=("predict", "activations"), default="predict")
    ap.add_argument("--side", type=int, default=280, help="pixels a side of each picture sent")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    bodies = pictures(200, args.side)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or train_quick(Path(tmp))
        proc, host, port = start_server(checkpoint)
        try:
            path = f"/api/{args.endpoint}"
            jobs = list(range(args.requests))
            latencies: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()
            threads = [
                threading.Thread(
                    target=client,
                    args=(host, port, path, jobs, bodies, latencies, failures, lock),
                )
                for _ in range(args.clients)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
    ms = sorted(x * 1000 for x in latencies)
    result = {
        "endpoint": path,
        "requests": len(latencies),
        "clients": args.clients,
        "picture": f"{args.side}x{args.side} PNG",
        "failed": len(failures),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
        "wall_s": round(wall, 2),
        "server_exit": code,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['requests']} requests to {path} from {args.clients} clients "
            f"({result['picture']}): {result['requests_per_s']} requests/s, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {len(failures)} failed; "
            f"server exit {code}"
        )
    if failures:
        sys.exit(f"{len(failures)} requests failed, the first: {failures[0]}")


if __name__ == "__main__":
    main()
