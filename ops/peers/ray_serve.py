"""Ray Serve's side of `ops/bench peers`: the scenarios Swerve's benchmarks measure, on a
local Ray cluster of trivial replicas. Prints one `name value` line per figure (ms, req/s,
MiB). Run with the virtual environment's python (ops/bench peers installs it).
"""
import argparse, os, re, signal, subprocess, sys, time

import ray
from ray import serve

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--runs", type=int, default=3)
parser.add_argument("--seconds", type=int, default=5)
args = parser.parse_args()


@serve.deployment(ray_actor_options={"num_cpus": 0}, graceful_shutdown_wait_loop_s=2)
class Echo:
    async def __call__(self, request):
        return "ok"


def ms(seconds):
    return seconds * 1000.0


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def actors(prefix):
    """Pids of live Ray worker processes running an actor of `prefix` (Ray titles them
    `ray::<class>…`; the state API would need the dashboard)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if title.startswith("ray::" + prefix):
            pids.append(int(pid))
    return pids


def replicas():
    return actors("ServeReplica")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def deploy(n):
    start = time.monotonic()
    serve.run(Echo.options(num_replicas=n).bind(), name="echo", route_prefix="/echo")
    return time.monotonic() - start


ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": args.port})

deploy_times, up_times, down_times, replace_times, control_times = [], [], [], [], []
for run in range(args.runs):
    deploy_times.append(deploy(8))
    serve.delete("echo")
    deploy(1)
    up_times.append(deploy(8))
    down_times.append(deploy(1))
    serve.delete("echo")

# A replica killed with SIGKILL: until as many replicas are alive again, one of them new.
deploy(2)
for run in range(args.runs):
    before = set(replicas())
    victim = min(before)
    start = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    while True:
        now = set(replicas())
        if len(now) >= 2 and victim not in now and now - before:
            break
        time.sleep(0.02)
    # ... and serving: a request through the proxy answers.
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{args.port}/echo"]).returncode != 0:
        time.sleep(0.02)
    replace_times.append(time.monotonic() - start)

# The controller killed with SIGKILL: until a scale request through the new one is done.
for run in range(args.runs):
    controller = actors("ServeController")[0]
    start = time.monotonic()
    os.kill(controller, signal.SIGKILL)
    deploy(3 if run % 2 == 0 else 2)
    control_times.append(time.monotonic() - start)
deploy(2)

# HTTP through Ray's proxy, as ops/bench router drives Swerve's.
out = subprocess.run(["wrk", "-t2", "-c64", f"-d{args.seconds}s", "--latency", f"http://127.0.0.1:{args.port}/echo"],
                     capture_output=True, text=True).stdout
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
p99ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]

# Memory: the controller, the proxy and the two replicas.
memory = sum(rss_mib(pid) for pid in actors("ServeController") + actors("ProxyActor") + replicas())

print(f"deploy8_ms {ms(median(deploy_times)):.1f}")
print(f"scale1to8_ms {ms(median(up_times)):.1f}")
print(f"scale8to1_ms {ms(median(down_times)):.1f}")
print(f"replica_replaced_ms {ms(median(replace_times)):.1f}")
print(f"controller_killed_scale_done_ms {ms(median(control_times)):.1f}")
print(f"http_rps {rate:.0f}")
print(f"http_p99_ms {p99ms:.2f}")
print(f"memory_mib {memory:.1f}")
serve.shutdown()
ray.shutdown()
