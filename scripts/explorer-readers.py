#!/usr/bin/env python3
"""Explorer reads against a mining node: its blocks/s and /status latency for SECONDS without
readers, then with 16 clients asking for unknown accounts and transactions, then with 16
clients asking for the heaviest reads there are (listings of 100 blocks, and the miner's
account with its 20 latest coinbases, each from its own block). None of these needs a token.
Python's standard library only.

    scripts/explorer-readers.py target/release/powchain [SECONDS]
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

binary = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
datadir = tempfile.mkdtemp(prefix="apiload-")
node = subprocess.Popen(
    [binary, "node", "--datadir", datadir, "--difficulty", "8", "--mine",
     "--miner-threads", "1", "--rpc", "127.0.0.1:0"],
    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
address_file = os.path.join(datadir, "api.address")
for _ in range(200):
    if os.path.exists(address_file):
        break
    time.sleep(0.05)
base = "http://" + open(address_file).read().strip()

def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        return e.read()


def height():
    return json.loads(get("/api/v1/status"))["height"]

def unknown_ids():
    if random.random() < 0.5:
        return "/api/v1/accounts/" + "%064x" % random.getrandbits(256)
    return "/api/v1/tx/" + "%0128x" % random.getrandbits(512)

def heavy_reads():
    if random.random() < 0.5:
        return "/api/v1/blocks?count=100"
    return "/api/v1/accounts/0"

def phase(name, attackers, path=unknown_ids):
    stop = threading.Event()
    served = [0]
    def attack():
        while not stop.is_set():
            get(path())
            served[0] += 1
    threads = [threading.Thread(target=attack) for _ in range(attackers)]
    for t in threads: t.start()
    start_h, start = height(), time.time()
    latencies = []
    while time.time() - start < seconds:
        t0 = time.time(); get("/api/v1/status"); latencies.append(time.time() - t0)
        time.sleep(0.2)
    end_h, elapsed = height(), time.time() - start
    stop.set()
    for t in threads: t.join()
    latencies.sort()
    print(f"{name}: {(end_h - start_h) / elapsed:.0f} blocks/s (height {start_h} to {end_h}), "
          f"/status p50 {latencies[len(latencies)//2]*1000:.1f} ms, max {latencies[-1]*1000:.1f} ms, "
          f"{served[0] / elapsed:.0f} attacker requests/s")

time.sleep(3)
phase("control, no readers", 0)
phase("16 readers of unknown ids", 16)
phase("16 readers of listings and the miner's account", 16, heavy_reads)
node.stdin.write(b"quit\n")
node.stdin.flush()
node.wait(timeout=30)
shutil.rmtree(datadir, ignore_errors=True)
