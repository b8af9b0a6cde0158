"""``python -m bench``: every benchmark, printed, and ``bench/results/latest.json``.

``--size tiny`` runs each on a token input (the harness test); ``--only NAME``
runs some of them. A busy machine (1-minute load average above ``--max-load``, before or
after a benchmark) stops the run with exit status 3 and writes nothing; ``--busy-ok``
writes the figures marked ``"busy": true`` instead (``bench.harness.LoadGuard``).
``--table`` prints the summary table of docs/benchmarks.md from the results file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import (
    RESULTS,
    Figure,
    LoadGuard,
    MachineBusy,
    Size,
    add_load_arguments,
    markdown_table,
    write,
)
from proctoring.settings import Settings

BENCHMARKS = ("frames", "consumer_cpu", "engine", "e2e", "calls")


def _runner(name: str) -> Callable[[Path, Size, Path], list[Figure]]:
    if name == "frames":
        from bench import frames

        return lambda data, size, out: frames.run(data, size)
    if name == "consumer_cpu":
        from bench import consumer_cpu

        return lambda data, size, out: consumer_cpu.run(data, size)
    if name == "engine":
        from bench import engine

        return lambda data, size, out: engine.run(data, size)
    if name == "e2e":
        from bench import e2e

        return e2e.run
    from bench import calls

    return lambda data, size, out: calls.run(data, size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--only", action="append", choices=BENCHMARKS)
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--table", action="store_true", help="print --out as a markdown table")
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())))
        return
    try:
        guard = LoadGuard.from_arguments(args)
    except MachineBusy as exc:
        parser.error(str(exc))
    data_dir = Settings().data_dir
    if not (data_dir / "video").is_dir():
        parser.error(f"the recordings are not at {data_dir}/video (../shared/data)")
    started = time.monotonic()
    figures: list[Figure] = []
    for name in args.only or BENCHMARKS:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:  # others on the machine skew the figures: refuse, or mark them busy
            guard.start()
            measured = _runner(name)(data_dir, args.size, args.out.parent)
            load = guard.finish()
        except MachineBusy as exc:
            print(f"refused ({name}): {exc}; nothing written", file=sys.stderr, flush=True)
            raise SystemExit(3) from exc
        for figure in measured:
            figure.details["load"] = load
            figure.details["load_average_at_start"] = load["load_average_at_start"]
            figure.busy = load["busy"]
            figures.append(figure)
            print(figure.line(), flush=True)
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    if args.only and args.out.exists():  # some benchmarks again: keep the others' figures
        kept = json.loads(args.out.read_text()).get("benchmarks", {})
        fresh = {f.name for f in figures}
        figures = [Figure(**f) for name, f in kept.items() if name not in fresh] + figures
    write(figures, args.out, size=args.size, started=started)
    print(f"results written to {args.out} after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
