"""Send /sillage/latent/<i> messages at a steady rate (its own process). Prints the count sent."""

from __future__ import annotations

import random
import sys
import time

from pythonosc.udp_client import SimpleUDPClient


def main() -> None:
    port, rate, seconds, dims = (
        int(sys.argv[1]),
        float(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    client = SimpleUDPClient("127.0.0.1", port)
    rng = random.Random(0)
    period = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        due = start + n * period
        if now < due:
            time.sleep(due - now)
        client.send_message(f"/sillage/latent/{n % dims}", rng.uniform(-2, 2))
        n += 1
    print(n, flush=True)


if __name__ == "__main__":
    main()
