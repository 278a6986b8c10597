"""Run in a fresh interpreter by test_azure_monitor.py: set up Azure Monitor, do real memory work, flush.

A subprocess because OpenTelemetry's global providers can be set once per process and never
reset: the test process itself must stay free of them. Arguments: one JSON object with the
emulator's endpoint, the store path, the memory text and the query.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    from azmem.azure.monitor import setup_azure_monitor
    from azmem.memory import Memory

    handle = setup_azure_monitor()  # APPLICATIONINSIGHTS_CONNECTION_STRING from the environment
    assert handle is not None, "Azure Monitor was not set up"
    assert setup_azure_monitor() is handle  # once per process
    config = {
        "endpoint": args["endpoint"],
        "api_key": args["api_key"],
        "chat": "gpt-4o",
        "embedding": "text-embedding-3-small",
        "retry": {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.02},
        "store": {"path": args["store"]},
    }
    with Memory(config=config) as memory:
        memory.add(args["text"], user_id=args["user"])  # infers: chat + embeddings
        memory.add(args["text"], user_id=args["user"], infer=False)
        found = memory.search(args["query"], user_id=args["user"])
        assert found.results, "the search found nothing"
        handle.force_flush()  # while the store is open, so the store-size gauge has a figure
    handle.shutdown()  # flush spans, a last metrics collection and logs, then stop the exporters
    print("ok")


if __name__ == "__main__":
    main()
