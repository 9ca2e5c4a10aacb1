#!/usr/bin/env python3
"""Open-loop load for the fleet scenario: RATE requests per second for
SECONDS, each a POST of one photo, whatever the answers take. Prints one JSON
line: offered, answered by status, transport errors, p50/p99 of 200s (ms).

    load.py URL PHOTO API_KEY RATE SECONDS
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request


def main():
    url, photo, key, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    body = open(photo, "rb").read()
    lock = threading.Lock()
    statuses, errors, latencies = {}, {}, []

    def one():
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "image/jpeg", "Authorization": f"Bearer {key}"})
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
                code = r.status
        except urllib.error.HTTPError as e:
            e.read()
            code = e.code
        except Exception as e:  # a transport error: the kind is what matters
            with lock:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            return
        ms = (time.monotonic() - t) * 1000
        with lock:
            statuses[code] = statuses.get(code, 0) + 1
            if code == 200:
                latencies.append(ms)

    threads, start, n = [], time.monotonic(), 0
    while time.monotonic() - start < seconds:
        due = start + n / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        t = threading.Thread(target=one, daemon=True)
        t.start()
        threads.append(t)
        n += 1
    for t in threads:
        t.join(timeout=35)
    latencies.sort()
    pct = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None
    print(json.dumps({"offered": n, "status": {str(k): v for k, v in sorted(statuses.items())},
                      "transport_errors": errors, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}))


if __name__ == "__main__":
    main()
