#!/usr/bin/env python3
"""A Swerve worker in Python, written from docs/PROTOCOL.md alone.

It proves the node/worker contract is language-neutral: start it as a node agent's worker
(`swerve node --worker-command "python3 examples/python-worker/worker.py"`) and it takes part
like `swerve worker` does. It serves the built-in `echo` handler: the request body back, or
the replica tag when the body is empty, with `X-Swerve-Replica: TAG`.

Needs the `redis` package (requirements.txt).
"""
import http.server
import json
import os
import signal
import sys
import threading
import time

import redis

env = os.environ
TAG = env["SWERVE_REPLICA_TAG"]
NODE = env["SWERVE_NODE_ID"]
ADDRESS = env["SWERVE_NODE_ADDRESS"]
AGENT_PID = int(env["SWERVE_AGENT_PID"]) if env.get("SWERVE_AGENT_PID") else None
P = "swerve:{%s}:" % env.get("SWERVE_CLUSTER", "default")
KEYS = {name: P + "replica:" + TAG + ":" + name for name in ("ready", "drain", "drained", "config", "control")}

db = redis.Redis.from_url(env.get("SWERVE_REDIS_URL", "redis://127.0.0.1:6379"), password=env.get("SWERVE_REDIS_PASSWORD"))


def now_ms():
    return int(time.time() * 1000)


def document(**fields):
    return json.dumps(dict(fields, schemaVersion=1), sort_keys=True)


def log(message):
    print(f"python-worker replica={TAG}: {message}", file=sys.stderr, flush=True)


raw = db.hget(P + "assignments:" + NODE, TAG)
if raw is None:
    log("no assignment")
    sys.exit(2)
assignment = json.loads(raw)
if assignment.get("schemaVersion") != 1:
    log(f"assignment schema version {assignment.get('schemaVersion')} is not 1")
    sys.exit(2)
if "builtin" not in assignment["replicaConfig"]["workload"]:
    log("only built-in workloads are served by this example")
    sys.exit(2)

state = threading.Condition()
in_flight = 0
accepting = True


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        global in_flight
        with state:
            if not accepting:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            in_flight += 1
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or (TAG + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Swerve-Replica", TAG)
            self.end_headers()
            self.wfile.write(body)
        finally:
            with state:
                in_flight -= 1
                state.notify_all()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((ADDRESS, 0), Echo)
threading.Thread(target=server.serve_forever, daemon=True).start()
ready = document(tag=TAG, backend=assignment["backend"], node=NODE, version=assignment["version"],
                 address=f"{ADDRESS}:{server.server_address[1]}", pid=os.getpid(), startedAt=now_ms(), readyAt=now_ms())
# Written once, no TTL: the node's heartbeat vouches for its workers. Every write of the
# ready, drained or exit key is followed by the tag in the changed set, which is all the
# leader reads (then the wake-up, so it reads now).
db.set(KEYS["ready"], ready)
db.sadd(P + "replicas:changed", TAG)
db.publish(P + "wake", document(event="ready", subject=TAG))
log("ready at " + json.loads(ready)["address"])

wake_up = threading.Event()
terminated = threading.Event()


def on_sigterm(*_):
    # The node agent is shutting down: drain as if asked to.
    terminated.set()
    wake_up.set()


signal.signal(signal.SIGTERM, on_sigterm)


def listen():
    # Subscription confirmations wake the loop too: after a reconnect (Redis restarted or
    # failed over) the keys are re-checked.
    pubsub = db.pubsub(ignore_subscribe_messages=False)
    pubsub.subscribe(KEYS["control"])
    for _ in pubsub.listen():
        wake_up.set()


threading.Thread(target=listen, daemon=True).start()


def drain_request():
    raw = db.get(KEYS["drain"])
    if raw is None:
        return None
    drain = json.loads(raw)
    return None if drain.get("schemaVersion") != 1 or drain.get("force") else drain


def recheck_ready():
    # Redis may have lost the ready record (its node asked, or a reconnect): write it if missing.
    if db.set(KEYS["ready"], ready, nx=True):
        log("the ready record was missing: written again")
        db.sadd(P + "replicas:changed", TAG)
        db.publish(P + "wake", document(event="ready", subject=TAG))


last_poll = 0.0
while True:
    woken = wake_up.wait(timeout=0.1)
    wake_up.clear()
    if AGENT_PID is not None and os.getppid() != AGENT_PID:
        log("node agent is gone; exiting")
        sys.exit(1)
    # Re-read the drain key when told to, and every 60 s anyway (messages are hints).
    if terminated.is_set() or woken or time.monotonic() - last_poll >= 60:
        last_poll = time.monotonic()
        if terminated.is_set() or drain_request():
            break
        recheck_ready()

# Drain: keep accepting stragglers for the wait loop, stop accepting, wait for in-flight.
log("draining")
time.sleep(float(assignment.get("gracefulShutdownWaitLoopS", 0)))
with state:
    accepting = False
    state.wait_for(lambda: in_flight == 0)
server.shutdown()
server.server_close()
db.set(KEYS["drained"], document(tag=TAG, drainedAt=now_ms()), ex=3600)
db.delete(KEYS["ready"])
db.sadd(P + "replicas:changed", TAG)
db.publish(P + "wake", document(event="drained", subject=TAG))
log("drained; exiting")
sys.exit(0)
