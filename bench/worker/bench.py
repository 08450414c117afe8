#!/usr/bin/env python3
"""barrage-worker vs k6 (and wrk) on one target, side by side, in one run.

Target: barrage-reference-runtime (1 thread) behind barrage-mock-llm (zero delay), both
pinned to core TARGET_CORE; every load generator is pinned to core LOAD_CORE. Measures:

  1. CPU per HTTP request, agent flow, N VUs for D s: barrage-worker --standalone vs
     k6 running bench/worker/agent-flow.js (the same 12 requests); requests counted
     by the target's own /stats. ROUNDS (env, default 3) alternating rounds; the figure
     is each tool's median.
  1b. (section "get") CPU per simple GET, like for like: GET /threads/{id}/state, N VUs
     for D s, barrage's one-request flow (`flow.request`) vs a k6 script of one
     `http.get` (bench/worker/get.js); ROUNDS alternating rounds, medians.
  2. Memory per VU: max RSS with 1000 mostly idle VUs (ramped 0 -> 1000 over 10 s, each
     runs one iteration then thinks 60 s) minus max RSS with 10, for both tools.
  3. 10,000 mostly idle VUs in one barrage worker (ramped over 60 s, think 300 s): max RSS.
  4. Latency overhead, like for like: GET /threads/{id}/state (a thread with two runs: 4
     messages, as in the flow) in a tight loop on one connection, for 10 s each: barrage
     (1 VU, the one-request flow `flow.request`), oha -c1 and wrk -t1 -c1; p50 and p99.
     Also the flow's own get_state step (1 VU agent flow) for reference.

Usage: python3 bench/worker/bench.py [--quick] [--no-build] [--before PATH] [--only cpu,latency,...]
  --only: run only these sections (cpu, get, memory, idle, latency); all by default.
  (release binaries are built first). --before PATH: also run another barrage-worker
  binary (e.g. a copy of the previous release build) in the CPU and latency measurements,
  in the same run on the same target, as `barrage_before`.
Everything started here is killed by PID; every run has a timeout.
"""
import json, os, re, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REL = os.path.join(ROOT, "target", "release")
TARGET_CORE, LOAD_CORE = "1", "0"
QUICK = "--quick" in sys.argv
FLOW_VUS, FLOW_SECS = 10, (10 if QUICK else 20)
ROUNDS = int(os.environ.get("ROUNDS", "1" if QUICK else "3"))
started = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(cmd, env=None):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})})
    started.append(p)
    return p


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def post(url, body, method="POST"):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def wait_ok(url, limit=20):
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            get(url)
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def requests_total(base):
    return json.loads(get(base + "/stats"))["requests_total"]


def timed(cmd, limit, env=None):
    """Runs cmd under /usr/bin/time, pinned; returns (user+sys s, max RSS KiB, stdout)."""
    out = tempfile.NamedTemporaryFile(delete=False, suffix=".time").name
    full = ["/usr/bin/time", "-o", out, "-f", "%U %S %M", "taskset", "-c", LOAD_CORE] + cmd
    p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, **(env or {})})
    started.append(p)
    try:
        stdout, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        raise SystemExit(f"timed out: {' '.join(cmd)}")
    u, s, m = open(out).read().split()[-3:]
    os.unlink(out)
    return float(u) + float(s), int(m), stdout


def plan(url, vus, secs, think="0s", graceful="30s", extra="", ramp=False, flow=""):
    f = tempfile.NamedTemporaryFile("w", delete=False, suffix=".toml")
    if ramp:  # 0 -> vus over the run: VUs start spread out, then sit in their think time
        scenario = f'executor = "ramping-vus"\nstages = [{{ duration = "{secs}s", target = {vus} }}]\n'
    else:
        scenario = f'executor = "constant-vus"\nvus = {vus}\nduration = "{secs}s"\n'
    f.write(f'name = "bench"\ngraceful_stop = "{graceful}"\n{extra}\n[target]\nurl = "{url}"\n'
            f'[scenario]\n{scenario}[flow]\nthink_time = "{think}"\n{flow}\n')
    f.close()
    return f.name


def arg(name):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


BEFORE = arg("--before")


def barrage(url, vus, secs, think="0s", graceful="30s", extra="", limit=300, ramp=False, exe=None, flow=""):
    path = plan(url, vus, secs, think, graceful, extra, ramp, flow)
    try:
        return timed([exe or os.path.join(REL, "barrage-worker"), "--standalone", "--plan", path], limit,
                     env={"RUST_LOG": "warn"})
    finally:
        os.unlink(path)


def k6(url, vus, secs, think="0", graceful="30s", limit=300, ramp=False):
    script = os.path.join(ROOT, "bench", "worker", "agent-flow.js")
    return timed(["k6", "run", "--quiet", "--no-summary", "-e", f"RUNTIME_URL={url}", "-e", f"VUS={vus}",
                  "-e", f"RAMP={'1' if ramp else ''}",
                  "-e", f"DURATION={secs}s", "-e", f"THINK={think}", "-e", f"GRACEFUL_STOP={graceful}",
                  script], limit, env={"K6_NO_USAGE_REPORT": "true"})


def binary(name):
    """The release binary; the target's may fall back to the debug build (--no-build on a
    machine whose cargo lock is busy): noted in the output."""
    path = os.path.join(REL, name)
    if os.path.exists(path):
        return path
    debug = os.path.join(ROOT, "target", "debug", name)
    print(f"NOTE: {name}: no release build, using {debug}", flush=True)
    return debug


def state_path(url):
    """A thread whose state holds 4 messages (two runs), as the flow's thread at get_state."""
    a = post(url + "/assistants", {"graph_id": "agent"})
    t = post(url + "/threads", {})
    for _ in range(2):
        post(f"{url}/threads/{t['thread_id']}/runs/wait",
             {"assistant_id": a["assistant_id"], "input": {"messages": [{"role": "user", "content": "Hello from barrage"}]}})
    return f"/threads/{t['thread_id']}/state"


def cpu_rounds(label, tools, url, res, prefix=""):
    """ROUNDS alternating rounds of `tools` ((name, run) pairs, `run()` -> `timed`'s
    result); requests counted by the target's /stats. Each tool's figure is its median
    µs per request: res[f"{prefix}{name}_cpu_us_per_req"] (and `_rounds`, `_reqs`)."""
    per = {tool: [] for tool, _ in tools}
    for rnd in range(ROUNDS):
        for tool, run in tools:
            before = requests_total(url)
            cpu, rss, _ = run()
            n = requests_total(url) - before
            per[tool].append((cpu / n * 1e6, n))
            load = float(open("/proc/loadavg").read().split()[0])
            print(f"[{label}] round {rnd + 1} {tool}: {n} requests, {cpu:.2f} CPU s, {cpu / n * 1e6:.1f} µs/request, "
                  f"rss {rss} KiB, load {load}", flush=True)
    for tool, runs in per.items():
        res[f"{prefix}{tool}_cpu_us_per_req_rounds"] = [round(r[0], 1) for r in runs]
        res[f"{prefix}{tool}_cpu_us_per_req"] = statistics.median(r[0] for r in runs)
        res[f"{prefix}{tool}_reqs"] = sum(r[1] for r in runs)


def cpu_get(url, res):
    """Section 1b: CPU per simple GET, barrage's one-request flow vs k6's http.get."""
    path = state_path(url)
    script = os.path.join(ROOT, "bench", "worker", "get.js")
    k6_get = ["k6", "run", "--quiet", "--no-summary", "-e", f"URL={url}{path}", "-e", f"VUS={FLOW_VUS}",
              "-e", f"DURATION={FLOW_SECS}s", script]
    cpu_rounds("get", [
        ("barrage", lambda: barrage(url, FLOW_VUS, FLOW_SECS, flow=f'request = {{ path = "{path}" }}')),
        ("k6", lambda: timed(k6_get, 300, env={"K6_NO_USAGE_REPORT": "true"})),
    ], url, res, prefix="get_")


def oha_bin():
    """oha, installed with cargo (into ~/.cargo/bin) when missing."""
    for path in [os.path.expanduser("~/.cargo/bin/oha"), "/usr/local/bin/oha", "/usr/bin/oha"]:
        if os.access(path, os.X_OK):
            return path
    print("installing oha (cargo install oha --locked, once)", flush=True)
    subprocess.run(["cargo", "install", "oha", "--locked"], check=True)
    return os.path.expanduser("~/.cargo/bin/oha")


def to_us(value, unit):
    return float(value) * {"us": 1, "µs": 1, "ms": 1000, "s": 1e6}[unit]


def summary_p50_p99(text, op):
    """p50 and p99 (µs) of `http_req_duration{operation:op}` in a standalone worker's
    summary (the threshold line names the sub-metric; `med=`/`p(99)=` as printed)."""
    line = next(l for l in text.splitlines() if f"{{operation:{op}}}" in l and "med=" in l)
    p99 = re.search(r"p\(99\)=([\d.]+)(µs|ms|s)", line)
    return (to_us(*re.search(r"med=([\d.]+)(µs|ms|s)", line).groups()),
            to_us(*p99.groups()) if p99 else float("nan"))


def latency(url, res):
    """Section 4: p50/p99 of GET /threads/{id}/state, one connection, tight loop, 10 s each."""
    path = state_path(url)  # the same answer size for every tool
    secs = 5 if QUICK else 10
    for _ in range(2):  # warm the target up (and page in the tools)
        subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c1", "-d1s", url + path],
                       capture_output=True, timeout=30)
    oha = oha_bin()
    out = subprocess.run(["taskset", "-c", LOAD_CORE, oha, "-c", "1", "-z", f"{secs}s", "--no-tui",
                          "--output-format", "json", url + path],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    pct = json.loads(out)["latencyPercentiles"]
    res["oha_p50_us"], res["oha_p99_us"] = pct["p50"] * 1e6, pct["p99"] * 1e6
    wrk = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c1", f"-d{secs}s", "--latency", url + path],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    m50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", wrk)
    m99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", wrk)
    res["wrk_p50_us"], res["wrk_p99_us"] = to_us(*m50.groups()), to_us(*m99.groups())
    flow = f'request = {{ path = "{path}" }}'
    extra = '[thresholds]\n"http_req_duration{operation:request}" = ["med<1000", "p(99)<1000"]'
    for tool, exe in [("barrage", None)] + ([("barrage_before", BEFORE)] if BEFORE else []):
        if tool == "barrage_before":  # an older build may not know flow.request: its flow step
            extra_b = '[thresholds]\n"http_req_duration{operation:get_state}" = ["med<1000", "p(99)<1000"]'
            _, _, text = barrage(url, 1, secs, extra=extra_b, exe=exe)
            op = "get_state"
        else:
            _, _, text = barrage(url, 1, secs, extra=extra, flow=flow, exe=exe)
            op = "request"
        res[f"{tool}_p50_us"], res[f"{tool}_p99_us"] = summary_p50_p99(text, op)
    # the agent flow's own get_state step, for reference (not like for like: it follows a
    # runs/stream on the same thread)
    extra = '[thresholds]\n"http_req_duration{operation:get_state}" = ["med<1000"]'
    _, _, text = barrage(url, 1, secs, extra=extra)
    res["barrage_flow_get_state_p50_us"], _ = summary_p50_p99(text, "get_state")
    for ref in ["oha", "wrk"]:
        res[f"p50_overhead_vs_{ref}_us"] = res["barrage_p50_us"] - res[f"{ref}_p50_us"]
    print(f"[latency] GET state p50 / p99 µs: barrage {res['barrage_p50_us']:.0f} / {res['barrage_p99_us']:.0f}, "
          f"oha {res['oha_p50_us']:.0f} / {res['oha_p99_us']:.0f}, wrk {res['wrk_p50_us']:.0f} / {res['wrk_p99_us']:.0f}"
          + (f", barrage_before (flow step) {res['barrage_before_p50_us']:.0f} / {res['barrage_before_p99_us']:.0f}" if BEFORE else "")
          + f"; flow get_state step p50 {res['barrage_flow_get_state_p50_us']:.0f}", flush=True)


def main():
    if "--no-build" not in sys.argv:
        subprocess.run(["cargo", "build", "--release", "-p", "barrage-worker", "-p",
                        "barrage-mock-llm", "-p", "barrage-reference-runtime"], cwd=ROOT, check=True)
    llm_port, rt_port = free_port(), free_port()
    start(["taskset", "-c", TARGET_CORE, binary("barrage-mock-llm"), "--port", str(llm_port),
           "--delay-ms", "0", "--stream-delay-ms", "0", "--threads", "1"])
    start(["taskset", "-c", TARGET_CORE, binary("barrage-reference-runtime"), "--port", str(rt_port),
           "--openai-base-url", f"http://127.0.0.1:{llm_port}/v1", "--threads", "1"])
    url = f"http://127.0.0.1:{rt_port}"
    wait_ok(url + "/ok")
    res = {}

    only = (arg("--only") or "cpu,get,memory,idle,latency").split(",")

    # 1. CPU per request, agent flow: ROUNDS alternating rounds, medians (a shared VM's
    # noise moves single runs by ±10 %)
    tools = [("barrage", barrage), ("k6", k6)]
    if BEFORE:
        tools.insert(1, ("barrage_before", lambda *a: barrage(*a, exe=BEFORE)))
    if "cpu" in only:
        cpu_rounds("flow", [(tool, lambda run=run: run(url, FLOW_VUS, FLOW_SECS)) for tool, run in tools], url, res)

    # 1b. CPU per simple GET, like for like
    if "get" in only:
        cpu_get(url, res)

    # 2. memory per VU (mostly idle: one iteration, then a 60 s think time)
    for tool in ["barrage", "k6"] if "memory" in only else []:
        rss = {}
        for vus in [10, 1000]:
            if tool == "barrage":
                _, rss[vus], _ = barrage(url, vus, 10, think="60s", graceful="0s", ramp=True)
            else:
                _, rss[vus], _ = k6(url, vus, 10, think="60", graceful="0s", ramp=True)
        per = (rss[1000] - rss[10]) / 990
        res[f"{tool}_kib_per_vu"] = per
        print(f"[memory] {tool}: rss 10 VUs {rss[10]} KiB, 1000 VUs {rss[1000]} KiB -> {per:.1f} KiB/VU", flush=True)

    # 3. 10,000 mostly idle VUs in one worker
    if "idle" in only:
        _, rss, _ = barrage(url, 10000, 60, think="300s", graceful="0s", limit=150, ramp=True)
        res["barrage_10k_rss_mib"] = rss / 1024
        print(f"[10k] barrage: max RSS {rss / 1024:.1f} MiB", flush=True)

    # 4. latency overhead on GET /threads/{id}/state
    if "latency" in only:
        latency(url, res)
    res["load_average"] = open("/proc/loadavg").read().split()[:3]

    if "cpu" in only:
        res["cpu_ratio_barrage_over_k6"] = res["barrage_cpu_us_per_req"] / res["k6_cpu_us_per_req"]
        if BEFORE:
            res["cpu_ratio_before_over_k6"] = res["barrage_before_cpu_us_per_req"] / res["k6_cpu_us_per_req"]
    if "get" in only:
        res["get_cpu_ratio_barrage_over_k6"] = res["get_barrage_cpu_us_per_req"] / res["get_k6_cpu_us_per_req"]
    if "memory" in only:
        res["mem_ratio_barrage_over_k6"] = res["barrage_kib_per_vu"] / res["k6_kib_per_vu"]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
