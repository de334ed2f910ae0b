"""The ``bidenv`` command line: ``bidenv <command> [options]`` (``bidenv -h`` lists them)."""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bidenv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="simulate held-out days for the built-in bidders and "
                       "print a per-strategy summary (the main job)")
    q.add_argument("--episodes", type=_positive_int, default=3, help="days per strategy")
    q.add_argument("--seed", type=int, default=1000, help="first episode seed")
    q.add_argument("--env", default="bidenv/AutoBidding-v0", help="environment id")
    q.add_argument("--out", default=None, help="folder for summary.csv and episodes.csv")

    b = sub.add_parser("bench", help="opportunities per second: bare auction kernel vs a full "
                       "environment day")
    b.add_argument("--opportunities", type=_positive_int, default=500_000,
                   help="opportunities in the kernel benchmark and per simulated day")
    b.add_argument("--advertisers", type=_positive_int, default=48)
    b.add_argument("--slots", type=_positive_int, default=3)
    b.add_argument("--traffic", default="mixed", choices=["mixed", "feed", "search"])
    b.add_argument("--repeats", type=_positive_int, default=3, help="best of this many runs")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default=None, help="folder for bench.json")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "quickstart":
        from experiments.quickstart import run_quickstart

        run_quickstart(episodes=args.episodes, seed=args.seed, env_id=args.env, out=args.out)
    elif args.command == "bench":
        from experiments.bench import run_bench

        run_bench(n=args.opportunities, k=args.advertisers, n_slots=args.slots,
                  traffic=args.traffic, repeats=args.repeats, seed=args.seed, out=args.out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
