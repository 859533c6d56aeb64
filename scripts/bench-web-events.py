#!/usr/bin/env python3
"""Benchmark of the web console's live tail: a headless Chromium on /events while 1,000 events/s
are appended to the event stream for 60 s; prints one JSON line with how far behind the page
was during the run and at the end.

    /usr/bin/python3 scripts/bench-web-events.py [--binary .build/debug/coordinatord] [--rate 1000] [--seconds 60]
        [--cluster-url redis://HOST:PORT --partitions 64]

It starts its own redis-server and `coordinatord web` on free ports and stops them. With
--cluster-url (a node of a running Redis Cluster) it starts no redis-server: the events go
round-robin to the partition streams coord:{p<k>}:events:stream, and the console runs with
--cluster --partitions. Needs what
scripts/setup.sh installs (redis-server, chromium, chromium-driver, python3-selenium).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

parser = argparse.ArgumentParser()
parser.add_argument("--binary", default=".build/debug/coordinatord")
parser.add_argument("--rate", type=int, default=1000)
parser.add_argument("--seconds", type=int, default=60)
parser.add_argument("--cluster-url")
parser.add_argument("--partitions", type=int, default=64)
args = parser.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing on port %d" % port)


directory = tempfile.mkdtemp(prefix="bench-web-")
redis_port, web_port = free_port(), free_port()
if args.cluster_url:
    redis = None
    url = args.cluster_url
    cluster = ["--cluster", "--partitions", str(args.partitions)]
else:
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", directory],
                             stdout=subprocess.DEVNULL)
    wait_port(redis_port)
    url = "redis://127.0.0.1:%d/0" % redis_port
    cluster = []


def stream(n):
    return "coord:{p%d}:events:stream" % (n % args.partitions) if args.cluster_url else "coord:events:stream"


web = subprocess.Popen([args.binary, "web", "--port", str(web_port)] + cluster, env={"PATH": os.environ["PATH"], "REDIS_URL": url},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_port(web_port)
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
writer = subprocess.Popen(["redis-cli", "-u", url] + (["-c"] if args.cluster_url else []), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
try:
    driver.get("http://127.0.0.1:%d/events" % web_port)
    deadline = time.time() + 10
    while driver.execute_script("return document.getElementById('stream-status').textContent") != "live":
        if time.time() > deadline:
            raise SystemExit("the tail did not go live")
        time.sleep(0.05)

    def lag_ms():
        last = driver.execute_script("return document.getElementById('events').dataset.last || ''")
        return (time.time() * 1000 - int(last.split("-")[0])) if last else None

    batch = args.rate // 10
    sent, samples, start = 0, [], time.time()
    next_sample = start + 5
    while time.time() - start < args.seconds:
        tick = time.time()
        lines = []
        for _ in range(batch):
            sent += 1
            event = {"event_id": "e%d" % sent, "type": "step.completed", "at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                     "customer_id": "cust-bench", "plan_id": "p%d" % (sent // 3), "step_index": sent % 3, "data": {}}
            lines.append("XADD %s MAXLEN ~ 100000 * event '%s'\n" % (stream(sent), json.dumps(event, separators=(",", ":"))))
        writer.stdin.write("".join(lines).encode())
        writer.stdin.flush()
        if time.time() >= next_sample:
            samples.append(lag_ms())
            next_sample += 5
        time.sleep(max(0, 0.1 - (time.time() - tick)))
    elapsed = time.time() - start
    writer.stdin.close()
    writer.wait()
    last_id = subprocess.run(["redis-cli", "-u", url] + (["-c"] if args.cluster_url else []) + ["XREVRANGE", stream(sent), "+", "-", "COUNT", "1"],
                             capture_output=True, text=True).stdout.split("\n")[0].strip()
    end = time.time()
    while driver.execute_script("return document.getElementById('events').dataset.last || ''") != last_id:
        if time.time() - end > 30:
            break
        time.sleep(0.01)
    caught_up = (time.time() - end) * 1000
    rows = driver.execute_script("return document.querySelectorAll('#events tbody tr').length")
    print(json.dumps({"bench": "web-events", "cluster_partitions": args.partitions if args.cluster_url else None, "rate_per_s": round(sent / elapsed), "seconds": round(elapsed, 1), "events": sent,
                      "lag_ms_samples": [round(s) for s in samples if s is not None],
                      "behind_at_end_ms": round(caught_up), "rows_kept": rows}))
finally:
    driver.quit()
    web.terminate()
    web.wait()
    if redis:
        redis.terminate()
        redis.wait()
    shutil.rmtree(directory, ignore_errors=True)
