#!/usr/bin/env python3
"""Fairness between tenants (issue 18, finding 3), on a release binary: a well-behaved
tenant's latency while another floods. Org A sends 5,000-event batches from N threads over 32
of its keys for S seconds; org B sends one small batch every 50 ms. Prints B's p50/p99/max and
the status codes A got. Loopback only; the server and its data directory go away at the end.
Usage: scripts/fairness.py BINARY [threads] [seconds]   (defaults 32 and 10)"""
import json, os, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request, urllib.error

binary = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 32
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
data = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir", data],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
api = "http://127.0.0.1:%d" % port
for _ in range(100):
    try:
        urllib.request.urlopen(api + "/readyz", timeout=1); break
    except Exception:
        time.sleep(0.1)
admin = open(os.path.join(data, "admin.token")).read().strip()

def call(method, path, token, body=None):
    data = body if isinstance(body, bytes) else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(api + path, method=method, data=data,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            return r.status, (json.loads(body or b"null") if len(body) < 100_000 else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

def org(name):
    _, o = call("POST", "/v1/admin/orgs", admin, {"name": name})
    _, k = call("POST", "/v1/admin/orgs/%s/keys" % o["id"], admin, {"name": "k"})
    return k["secret"]

key_a, key_b = org("Abuser"), org("Bystander")
keys = [key_a] + [call("POST", "/v1/keys", key_a, {"name": "k%d" % i})[1]["secret"] for i in range(31)]
batch = json.dumps([{"user": "u%d" % (i % 50), "path": "/api", "ms": 20 + i % 20} for i in range(5000)]).encode()
stop = time.time() + seconds
counts = {}
lock = threading.Lock()

def flood(i):
    n = 0
    while time.time() < stop:
        st, _ = call("POST", "/v1/streams/flood/events", keys[(i + n) % len(keys)], batch)
        n += 1
        with lock:
            counts[st] = counts.get(st, 0) + 1

ts = [threading.Thread(target=flood, args=(i,)) for i in range(threads)]
for t in ts: t.start()
time.sleep(0.5)
lat = []
while time.time() < stop:
    t0 = time.time()
    st, _ = call("POST", "/v1/streams/calm/events", key_b, [{"path": "/", "ms": 20}])
    lat.append((time.time() - t0) * 1000)
    assert st == 200, st
    time.sleep(0.05)
for t in ts: t.join()
proc.terminate(); proc.wait()
shutil.rmtree(data, ignore_errors=True)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("%s: bystander p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d requests; flood answers %s"
      % (os.path.basename(binary), p(0.5), p(0.99), lat[-1], len(lat), dict(sorted(counts.items()))))
