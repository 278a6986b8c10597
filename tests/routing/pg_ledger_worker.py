"""One app instance spending a shared quota: acquire until the deadline, print grant times as JSON.

Run as a separate process by test_pg_ledger.py (argv: url, key, seconds, tokens, tpm, window, margin).
"""

from __future__ import annotations

import json
import sys
import time

from azmem.azure.routing.pg_ledger import PostgresLedger


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    seconds, tokens, tpm = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    window, margin = float(sys.argv[6]), float(sys.argv[7])
    ledger = PostgresLedger(url, window, margin)
    granted: list[float] = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        result = ledger.acquire(key, tokens, tpm=tpm, rpm=None, now=time.monotonic())
        if isinstance(result, float):
            time.sleep(min(result, 0.05))
        else:
            granted.append(time.time())
    ledger.close()
    print(json.dumps(granted))


if __name__ == "__main__":
    main()
