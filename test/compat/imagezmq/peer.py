#!/usr/bin/env python3
"""ImageZMQ peers for framewire's tests and benchmark, written from the wire format alone (docs/compat.md):
every message is a ZeroMQ multipart of two parts, UTF-8 JSON and the bytes. send_jpg sends {"msg": TEXT}
and a JPEG; send_image sends {"msg": TEXT, "dtype": ..., "shape": [...]} and a C-contiguous array.

  peer.py req URL PLAN.json         REQ sender (ImageSender): sends PLAN's messages, prints each reply
  peer.py pub URL PLAN.json         PUB sender: binds (port 0: a free one), prints PORT, sends PLAN's
                                    messages over and over, PERIOD seconds apart, until stdin closes
  peer.py rep URL OUT [--die-after N] [--count N] [--plain 1]
                                    REP hub (ImageHub): binds, prints PORT, saves each message atomically
                                    under OUT/<msg>/<fw.name or its number>, answers b'OK'. --die-after N:
                                    exits abruptly after saving message N, before answering it.
                                    --count N: exits once N distinct files are saved (a resent frame
                                    counts once).
                                    --plain 1: writes OUT/<msg>/<n>.jpg with open/write, as a typical
                                    ImageZMQ hub does (the benchmark's baseline).
  peer.py sub URL OUT --count N     SUB hub: connects, saves N messages, exits
  peer.py check OUT PLAN.json       compares arrays saved by a hub (.npy, or framewire's raw files and
                                    index.jsonl) with the arrays PLAN describes, with numpy
  peer.py bench-req URL FILE N      sends FILE N times with send_jpg; prints {"seconds": S}

A PLAN is a JSON list of {"msg": TEXT, "jpg": PATH} or {"msg": TEXT, "image": {"dtype", "shape", "seed"}}.
"""
import json
import os
import sys
import time

import numpy as np
import zmq


def array_of(spec):
    """A deterministic array: what PLAN's {"dtype", "shape", "seed"} stands for."""
    dtype = np.dtype(spec["dtype"])
    n = int(np.prod(spec["shape"])) if spec["shape"] else 1
    k = np.arange(n, dtype=np.uint64)
    values = (k * 7919 + int(spec["seed"]) * 104729) % 65521
    if dtype.kind == "f":
        return (values.astype(dtype) / 7).reshape(spec["shape"])
    info = np.iinfo(dtype)
    return (values % (int(info.max) + 1)).astype(dtype).reshape(spec["shape"])


def parts_of(item):
    if "jpg" in item:
        with open(item["jpg"], "rb") as f:
            return [json.dumps({"msg": item["msg"]}).encode(), f.read()]
    a = np.ascontiguousarray(array_of(item["image"]))
    md = {"msg": item["msg"], "dtype": str(a.dtype), "shape": list(a.shape)}
    return [json.dumps(md).encode(), a.tobytes()]


def load_plan(path):
    with open(path) as f:
        return json.load(f)


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def bind(sock, url):
    if url.endswith(":0"):
        port = sock.bind_to_random_port(url[: url.rindex(":")])
    else:
        sock.bind(url)
        port = int(url.rsplit(":", 1)[1])
    out({"port": port})
    return port


def req(url, plan_path):
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 20000)
    s.connect(url)
    for item in load_plan(plan_path):
        s.send_multipart(parts_of(item))
        out({"reply": s.recv().decode("utf-8", "replace")})
    s.close()


def pub(url, plan_path):
    import select
    import threading

    plan = [parts_of(i) for i in load_plan(plan_path)]
    period = float(os.environ.get("PERIOD", "0.03"))
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUB)
    s.setsockopt(zmq.LINGER, 0)
    bind(s, url)
    stop = threading.Event()

    def watch():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    deadline = time.time() + 60
    i = 0
    while not stop.is_set() and time.time() < deadline:
        s.send_multipart(plan[i % len(plan)])
        i += 1
        time.sleep(period)
    out({"sent": i})
    s.close()


def save(out_dir, md, data, number, plain=False):
    msg = md["msg"]
    folder = os.path.join(out_dir, msg.replace("/", "_").replace("\\", "_") or "_")
    os.makedirs(folder, exist_ok=True)
    fw = md.get("fw") if isinstance(md.get("fw"), dict) else {}
    name = fw.get("name") or (str(fw["seq"]) if "seq" in fw else str(number))
    name = os.path.basename(name)
    if not fw.get("name") and "dtype" not in md:
        name += ".jpg"
    if plain:
        # What a typical ImageZMQ hub does: open, write, close.
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        return os.path.join(folder, name)
    if "dtype" in md:
        a = np.frombuffer(data, dtype=md["dtype"]).reshape(md["shape"])
        name += ".npy"
        tmp = os.path.join(folder, ".tmp-" + name)
        with open(tmp, "wb") as f:
            np.save(f, a)
    else:
        tmp = os.path.join(folder, ".tmp-" + name)
        with open(tmp, "wb") as f:
            f.write(data)
    # A resent frame lands on the same name: saved once, however often it arrives.
    os.replace(tmp, os.path.join(folder, name))
    return os.path.join(folder, name)


def rep(url, out_dir, die_after, count, plain):
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.setsockopt(zmq.LINGER, 0)
    bind(s, url)
    n = 0
    saved = set()
    # --count counts distinct files: a sender resending a frame whose answer came late (a slow machine)
    # must not end the hub before every frame is in.
    while count is None or len(saved) < count:
        parts = s.recv_multipart()
        n += 1
        md = json.loads(parts[0])
        saved.add(save(out_dir, md, parts[1], n - 1, plain))
        if die_after is not None and n >= die_after:
            os._exit(3)
        s.send(b"OK")
    out({"received": n, "files": len(saved)})
    s.close()


def sub(url, out_dir, count):
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.RCVTIMEO, 30000)
    s.connect(url)
    out({"connected": url})
    for n in range(count):
        parts = s.recv_multipart()
        save(out_dir, json.loads(parts[0]), parts[1], n)
    out({"received": count})
    s.close()


def check(out_dir, plan_path):
    """Every array in PLAN is in OUT, equal (numpy) to what was sent; prints {"equal": N}."""
    equal = 0
    by_msg = {}
    for item in load_plan(plan_path):
        if "image" in item:
            by_msg.setdefault(item["msg"], []).append(array_of(item["image"]))
    for msg, arrays in by_msg.items():
        folder = os.path.join(out_dir, msg)
        index = os.path.join(folder, "index.jsonl")
        got = []
        if os.path.exists(index):
            # framewire's folder: raw files (or .bin), dtype and shape in each line's meta.
            with open(index) as f:
                for line in f:
                    e = json.loads(line)
                    izmq = e["meta"]["imagezmq"]
                    with open(os.path.join(folder, e["name"]), "rb") as g:
                        got.append(np.frombuffer(g.read(), dtype=izmq["dtype"]).reshape(izmq["shape"]))
        else:
            for name in sorted(os.listdir(folder), key=lambda x: int(x.split(".")[0])):
                got.append(np.load(os.path.join(folder, name)))
        if len(got) != len(arrays):
            out({"error": f"{msg}: {len(got)} arrays saved, {len(arrays)} sent"})
            sys.exit(1)
        for a, b in zip(arrays, got):
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                out({"error": f"{msg}: an array differs ({a.dtype}{a.shape} vs {b.dtype}{b.shape})"})
                sys.exit(1)
            equal += 1
    out({"equal": equal})


def bench_req(url, path, n):
    with open(path, "rb") as f:
        jpg = f.read()
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 30000)
    s.connect(url)
    md = json.dumps({"msg": "bench"}).encode()
    # One round trip first, so that connecting is not timed.
    s.send_multipart([md, jpg])
    s.recv()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        s.send_multipart([md, jpg])
        s.recv()
    out({"seconds": time.perf_counter() - t0, "frames": n - 1, "bytes": (n - 1) * len(jpg)})
    s.close()


def main(argv):
    cmd = argv[1]
    if cmd == "req":
        req(argv[2], argv[3])
    elif cmd == "pub":
        pub(argv[2], argv[3])
    elif cmd in ("rep", "sub"):
        opts = {"--die-after": None, "--count": None, "--plain": 0}
        rest = argv[4:]
        for i in range(0, len(rest), 2):
            opts[rest[i]] = int(rest[i + 1])
        if cmd == "rep":
            rep(argv[2], argv[3], opts["--die-after"], opts["--count"], bool(opts["--plain"]))
        else:
            sub(argv[2], argv[3], opts["--count"])
    elif cmd == "check":
        check(argv[2], argv[3])
    elif cmd == "bench-req":
        bench_req(argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
