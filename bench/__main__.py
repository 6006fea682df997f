"""`python -m bench [--quick] [--only NAME ...] [--output PATH]`: run the benchmarks
against real local components, print one Markdown report and (full runs) write it
to bench/RESULTS.md. Exits non-zero if any benchmark could not run; no figure is
ever judged against a threshold."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType, ModuleType

from bench import (
    api_throughput,
    cold_start,
    parked_waits,
    power,
    provisioning,
    scale,
    sweep,
    table_cost,
)
from bench.report import Section, document, load_average
from bench.stack import Stack, process_env_for_boto
from devstack.processes import StartupError

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# name -> its module. They run in this order, the cold path first, while nothing of
# ours runs yet; the rest need the stack (redis-server, the table server, dockerd).
BENCHMARKS: dict[str, ModuleType] = {
    "cold": cold_start,
    "api": api_throughput,
    "cost": table_cost,
    "provision": provisioning,
    "power": power,
    "sweep": sweep,
    "waits": parked_waits,
    "scale": scale,
}
NEEDS_NO_STACK = {"cold"}
# Report order: as in the issues that asked for each figure.
ORDER = ["api", "cost", "provision", "power", "sweep", "cold", "waits", "scale"]


class Stop(BaseException):
    """SIGTERM or SIGHUP: unwind like Ctrl-C, so that everything started is stopped."""


def _on_signal(signum: int, _: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _run_one(name: str, args: tuple[object, ...]) -> Section:
    module = BENCHMARKS[name]
    print(f"bench: {name}: {module.TITLE} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        section: Section = module.run(*args)
    except Exception as exc:
        traceback.print_exc()
        section = Section(title=module.TITLE, baseline="")
        section.error = f"{type(exc).__name__}: {exc}"
    section.seconds = time.monotonic() - started
    status = "FAILED" if section.error else "done"
    print(f"bench: {name} {status} in {section.seconds:.0f} s", file=sys.stderr, flush=True)
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few repetitions")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"write the report here (default: {RESULTS.name} on full runs of every benchmark)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="CHECKOUT",
        help="another checkout of Corral (`git worktree add --detach DIR main`): the API "
        "benchmark and the cold path measure its app too, in the same run, as `before`",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    process_env_for_boto()
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    started = time.monotonic()
    load = load_average()
    sections: dict[str, Section] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="corral-bench-") as workdir:
            for name in chosen:
                if name in NEEDS_NO_STACK:
                    sections[name] = _run_one(name, (args.quick, args.compare_with))
            staged = [name for name in chosen if name not in NEEDS_NO_STACK]
            if staged:
                with Stack(Path(workdir), args.compare_with) as stack:
                    for name in staged:
                        sections[name] = _run_one(name, (stack, args.quick))
    except StartupError as exc:
        print(f"bench: the local components did not start: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop) as exc:
        print(f"bench: interrupted ({type(exc).__name__}); everything started was stopped",
              file=sys.stderr)  # fmt: skip
        return 130
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
    elapsed = time.monotonic() - started
    ordered = [sections[name] for name in ORDER if name in sections]
    mode = "quick" if args.quick else "full"
    command = "make bench" if not args.quick else "python -m bench --quick"
    text = "\n".join(document(ordered, mode=mode, seconds=elapsed, command=command, load=load))
    print(text)
    failed = [s.title for s in ordered if s.error]
    output = args.output
    if output is None and not args.quick and not args.only:
        output = RESULTS
    if output is not None:
        if failed and output == RESULTS:
            print(f"bench: {RESULTS.name} not updated: a benchmark failed", file=sys.stderr)
        else:
            output.write_text(text + "\n")
            print(f"bench: wrote {output}", file=sys.stderr)
    if failed:
        print(f"bench: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
