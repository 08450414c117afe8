#!/usr/bin/env python3
"""Pacing and concurrency figures of barrage-mock-llm (the timing the tests do not assert).

The tests in mock-llm/tests/mock_llm/streaming.rs check what the mock sends and that it never
answers faster than its configured delays; how close it gets to the ideal time, and how much
faster unpaced or concurrent streams are, are performance figures, printed here:

  paced      best/median of 5 streams with the default delays vs the ideal 10 + 42 * 5 ms
  zero-delay 20 streams + 20 completions with both delays 0 (20 paced streams: 4.4 s)
  concurrent 50 streams at once on a 1-thread server, 10 ms + 42 * 2 ms each (4.7 s in sequence)

Usage: bench/mock-llm/pacing.py [BIN]   (default target/release/barrage-mock-llm;
`cargo build --release -p barrage-mock-llm` first). Loopback only; every server is killed by PID.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/barrage-mock-llm")
BODY = json.dumps({"model": "mock-gpt-4o", "stream": True,
                   "stream_options": {"include_usage": True},
                   "messages": [{"role": "user", "content": "hi"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, env=None):
        self.port = free_port()
        e = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen([BIN, "--port", str(self.port), *args], env=e,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/health")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        sys.exit(f"pacing.py: {BIN} did not answer /health within 10 s")

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers={"content-type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {r.status}")
            return data
        finally:
            c.close()

    def stream(self):
        t0 = time.monotonic()
        data = self.request("POST", "/v1/chat/completions", BODY)
        if b"[DONE]" not in data:
            raise RuntimeError("stream without [DONE]")
        return time.monotonic() - t0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def ms(s):
    return f"{s * 1000:.1f} ms"


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"pacing.py: {BIN} not found; cargo build --release -p barrage-mock-llm")
    s = Server()
    try:
        s.stream()
        times = [s.stream() for _ in range(5)]
    finally:
        s.stop()
    ideal = 0.010 + 42 * 0.005
    print(f"paced      best {ms(min(times))}, median {ms(statistics.median(times))}, "
          f"ideal {ms(ideal)} (best/ideal {min(times) / ideal:.2f}x)")

    s = Server(env={"MOCK_LLM_DELAY_MS": "0", "MOCK_LLM_STREAM_DELAY_MS": "0"})
    try:
        t0 = time.monotonic()
        for _ in range(20):
            s.stream()
            s.request("POST", "/v1/chat/completions", BODY.replace('"stream": true', '"stream": false'))
        took = time.monotonic() - t0
    finally:
        s.stop()
    print(f"zero-delay 20 streams + 20 completions in {ms(took)} (20 paced streams: 4400 ms)")

    s = Server("--threads", "1", "--delay-ms", "10", "--stream-delay-ms", "2")
    errors = []

    def one():
        try:
            s.stream()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    try:
        threads = [threading.Thread(target=one) for _ in range(50)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        took = time.monotonic() - t0
    finally:
        s.stop()
    if errors:
        sys.exit(f"pacing.py: {len(errors)} concurrent streams failed: {errors[0]}")
    print(f"concurrent 50 streams on 1 thread in {ms(took)} (one: 94 ms; in sequence: 4700 ms)")


if __name__ == "__main__":
    main()
