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
    e = sub.add_parser("evaluate", help="every agent on the same held-out days against the "
                       "hindsight oracle: episodes.csv, leaderboard.csv/.md and figures")
    e.add_argument("--agents", required=True,
                   help="comma-separated agents: a name (see --list-agents) or name:checkpoint")
    e.add_argument("--episodes", type=_positive_int, default=5, help="days per scenario")
    e.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    e.add_argument("--scenarios", default="default",
                   help="a preset (default, smoke, grid, roi) or comma-separated scenario names")
    e.add_argument("--env", default="bidenv/AutoBidding-v0", help="environment id")
    e.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    e.add_argument("--out", required=True, help="output folder")

    t = sub.add_parser("train", help="train an online RL agent (stable-baselines3)")
    t.add_argument("algo", choices=["ppo", "sac", "td3"])
    t.add_argument("--env", default="bidenv/AutoBiddingLite-v0", help="environment id")
    t.add_argument("--timesteps", type=_positive_int, default=20_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--n-envs", type=_positive_int, default=4, help="parallel envs (PPO)")
    t.add_argument("--net-arch", default="64,64", help="hidden layer sizes, e.g. 64,64")
    t.add_argument("--learning-rate", type=float, default=3e-4)
    t.add_argument("--out", required=True, help="run folder (model.zip, policy.pt, config.json)")

    m = sub.add_parser("benchmark", help="train the RL agents and evaluate them with the "
                       "heuristics on held-out seeds")
    m.add_argument("--preset", choices=["smoke", "full"], default="smoke")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--workers", type=_positive_int, default=1)
    m.add_argument("--out", required=True)

    r = sub.add_parser("traffic-report", help="figures and a summary of the traffic generators")
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--traffic", default="mixed", choices=["mixed", "feed", "search"])
    r.add_argument("--opportunities", type=_positive_int, default=500_000)
    r.add_argument("--advertisers", type=_positive_int, default=48)
    return parser


def _net_arch(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise SystemExit(f"bidenv train: --net-arch must be positive integers like 64,64, "
                         f"got {text!r}")
    return sizes


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "quickstart":
        from experiments.quickstart import run_quickstart

        run_quickstart(episodes=args.episodes, seed=args.seed, env_id=args.env, out=args.out)
    elif args.command == "bench":
        from experiments.bench import run_bench

        run_bench(n=args.opportunities, k=args.advertisers, n_slots=args.slots,
                  traffic=args.traffic, repeats=args.repeats, seed=args.seed, out=args.out)
    elif args.command == "evaluate":
        from experiments.evaluate import run_evaluate

        try:
            run_evaluate(args.agents, episodes=args.episodes, seed=args.seed,
                         scenarios=args.scenarios, out=args.out, env_id=args.env,
                         workers=args.workers)
        except ValueError as exc:
            raise SystemExit(f"bidenv evaluate: {exc}") from None
    elif args.command == "train":
        from agents.sb3 import TrainConfig, train

        config = TrainConfig(algo=args.algo, env_id=args.env, timesteps=args.timesteps,
                             seed=args.seed, n_envs=args.n_envs, net_arch=_net_arch(args.net_arch),
                             learning_rate=args.learning_rate)
        try:
            out = train(config, args.out)
        except ValueError as exc:
            raise SystemExit(f"bidenv train: {exc}") from None
        print(f"wrote {out}/model.zip, policy.pt, config.json and TensorBoard logs in {out}/tb; "
              f"evaluate it as {args.algo}:{out}")
    elif args.command == "benchmark":
        from experiments.benchmark import run_benchmark

        run_benchmark(preset=args.preset, seed=args.seed, out=args.out, workers=args.workers)
    elif args.command == "traffic-report":
        from experiments.traffic_report import run_traffic_report

        run_traffic_report(args.out, seed=args.seed, n_advertisers=args.advertisers,
                           opportunities_per_day=args.opportunities, traffic=args.traffic)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
