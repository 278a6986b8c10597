"""The `azmem` command line."""


def main() -> None:
    raise SystemExit("azmem: CLI not built yet")
