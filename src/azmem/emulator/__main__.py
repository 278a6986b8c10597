"""`python -m azmem.emulator [--host H] [--port P] [--config FILE]`: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib

from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m azmem.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", default=None, help="YAML or JSON file of api_keys and deployments")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, args.config)


if __name__ == "__main__":
    main()
