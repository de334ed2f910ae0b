"""The ``bidenv`` command line: ``bidenv <command> [options]`` (``bidenv -h`` lists them)."""

from __future__ import annotations

import argparse
import json
import sys

import agents
from bidenv.validation import first_line

SB3_ALGOS = tuple(agents.available("online_rl"))
OFFLINE_AGENTS = tuple(agents.available("offline"))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


# Commands whose tasks run locally or on Ray: they take --executor and --ray-address.
EXECUTOR_COMMANDS = ("simulate-budget", "evaluate", "benchmark", "collect")

# Commands that train or evaluate: they take --threads and pin torch/OpenMP/BLAS threads.
THREADED_COMMANDS = ("quickstart", "simulate-budget", "evaluate", "train", "benchmark",
                     "collect", "steer", "scale", "market", "selfplay")


def _threads(text: str) -> int:
    from experiments.threads import check_threads, max_threads

    try:
        return check_threads(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer in [1, {max_threads()}] (1 to the CPU count), got {text!r}"
        ) from None


def _set_up_threads(args) -> None:
    """Pin this process's threads (and its workers') to --threads and say so (on stdout: a
    refused command's stderr stays one line), with the --workers :func:`_default_workers`
    resolved."""
    from experiments.threads import describe, pin_threads

    print(describe(pin_threads(args.threads), getattr(args, "workers", None)), flush=True)


def _default_workers(args, executor) -> None:
    """Fill a --workers left unset (None): the executor's default for the batch commands
    (local: 1; Ray: the cluster's CPUs / --threads), quickstart's own otherwise (up to 2)."""
    if getattr(args, "workers", 1) is not None:
        return
    if executor is not None:
        args.workers = executor.default_workers()
    else:
        from experiments.quickstart import default_workers

        args.workers = default_workers()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bidenv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="the main job: heuristic bidders on held-out days "
                       "(leaderboard vs the oracle) and a budget sweep with ROI curves")
    q.add_argument("--episodes", type=_positive_int, default=3,
                   help="held-out days per bidder")
    q.add_argument("--budget-days", type=_positive_int, default=5,
                   help="simulated days per budget in the sweep")
    q.add_argument("--seed", type=int, default=1000, help="first episode seed")
    q.add_argument("--env", default="bidenv/AutoBidding-v0", help="environment id")
    q.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel processes (default: up to 2)")
    q.add_argument("--out", default="bidenv-quickstart", help="output folder")

    s = sub.add_parser("simulate-budget", help="a campaign at several budgets: spend, "
                       "conversions, CPA/ROI and marginal CPA per budget, ROI curves, advice")
    s.add_argument("--spec", default=None, help="campaign spec file (JSON, or YAML with PyYAML);"
                   " the flags below override it")
    s.add_argument("--budgets", default=None, help="comma-separated daily budgets, e.g. "
                   "1000,2000,4000 (reference day of 500k opportunities)")
    s.add_argument("--budget-range", default=None, help="START:STOP:NUM evenly spaced budgets")
    s.add_argument("--constraint", default=None, choices=["cpa", "roi", "budget"])
    s.add_argument("--target", default=None, help="target CPA or ROI; comma-separated for "
                   "several")
    s.add_argument("--category", type=int, default=None, help="advertiser category 0-7")
    s.add_argument("--traffic", default=None, help="mixed, feed, search, or shares like "
                   "feed=0.7,search=0.3")
    s.add_argument("--strategies", default=None, help="comma-separated agents (default "
                   "pid_cpa,online_lp)")
    s.add_argument("--days", type=_positive_int, default=None, help="days per budget (with "
                   "--until-confident: per block)")
    s.add_argument("--until-confident", action="store_true", help="add blocks of --days days "
                   "(the same seeds continuing) until no marginal CPA/ROI interval straddles "
                   "the target, up to --max-days")
    s.add_argument("--max-days", type=_positive_int, default=None,
                   help="cap on days per budget with --until-confident (default 40)")
    s.add_argument("--seed", type=int, default=None, help="day i uses seed + i")
    s.add_argument("--env", default=None, help="environment id (default bidenv/AutoBidding-v0)")
    s.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--report", action="store_true", help="also write report.html: one "
                   "self-contained page (advice, figures, tables, spec) to send or print")
    s.add_argument("--cold-start", action="store_true", default=None, help="simulate your "
                   "campaign as cold-start (new ads: wider, biased predictions)")
    s.add_argument("--marketing-style", action="store_true", default=None, help="simulate "
                   "your campaign as marketing-style (inflated predictions, lower true rate)")
    s.add_argument("--popularity", type=float, default=None, metavar="RANK", help="rank of "
                   "your campaign's engagement history among the market's advertisers, 0-1 "
                   "(default 0.5, the median; 0.1 a small account): the cascade's recall "
                   "favours popular ones")
    s.add_argument("--retrieval", default=None, help="the platform's retrieval: cascade "
                   "(default), generative, or cascade,generative to compare both on the same "
                   "days (retrieval column, retrieval_comparison.png)")

    b = sub.add_parser("bench", help="opportunities per second: bare auction kernel vs a full "
                       "environment day; env steps per core: single vs vector envs")
    b.add_argument("--opportunities", type=_positive_int, default=500_000,
                   help="opportunities in the kernel benchmark and per simulated day")
    b.add_argument("--advertisers", type=_positive_int, default=48)
    b.add_argument("--slots", type=_positive_int, default=3)
    b.add_argument("--traffic", default="mixed", choices=["mixed", "feed", "search"])
    b.add_argument("--repeats", type=_positive_int, default=3,
                   help="runs of each measurement, interleaved; medians are reported")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--vector-envs", type=_positive_int, default=16,
                   help="envs of the vector-env measurement (Lite: single vs sync vs native)")
    b.add_argument("--vector-steps", type=_positive_int, default=480,
                   help="env steps per run of the vector-env measurement")
    b.add_argument("--out", default=None, help="folder for bench.json")
    e = sub.add_parser("evaluate", help="every agent on the same held-out days against the "
                       "hindsight oracle: episodes.csv, leaderboard.csv/.md and figures")
    e.add_argument("--agents", required=True,
                   help="comma-separated agents: a registered name (agents.available()) or "
                        "name:checkpoint")
    e.add_argument("--episodes", type=_positive_int, default=5, help="days per scenario")
    e.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    e.add_argument("--scenarios", default="default",
                   help="a preset (default, smoke, grid, roi) or comma-separated scenario names")
    e.add_argument("--env", default="bidenv/AutoBidding-v0", help="environment id")
    e.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    e.add_argument("--reference", default=None,
                   help="agent every other agent is compared with on the same days in "
                        "paired.csv (default: the first agent)")
    e.add_argument("--out", required=True, help="output folder")

    t = sub.add_parser("train", help="train an agent: online RL (ppo, sac, td3) in the "
                       "simulator, or an offline agent (bc, iql, cql, dt, gave, gave_stable, gas) "
                       "on a dataset from `bidenv collect`")
    t.add_argument("algo", metavar="AGENT", choices=list(SB3_ALGOS) + list(OFFLINE_AGENTS),
                   help=f"one of {', '.join(list(SB3_ALGOS) + list(OFFLINE_AGENTS))}")
    t.add_argument("--out", required=True, help="run folder (checkpoint, config, TensorBoard)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--env", default="bidenv/AutoBiddingLite-v0",
                   help="environment id (online RL; offline: periodic evaluation)")
    t.add_argument("--timesteps", type=_positive_int, default=20_000, help="online RL steps")
    t.add_argument("--n-envs", type=_positive_int, default=4,
                   help="parallel envs (PPO): N days stepped in one pass by the id's native "
                   "vector env")
    t.add_argument("--vectorization", choices=["native", "dummy"], default="native",
                   help="online RL: the native batched vector env (default) or SB3's "
                   "DummyVecEnv (one env after another; ids without a vector entry point)")
    t.add_argument("--net-arch", default="64,64", help="hidden layer sizes, e.g. 64,64")
    t.add_argument("--learning-rate", type=float, default=3e-4)
    t.add_argument("--data", help="offline agents: dataset (.parquet) from bidenv collect")
    t.add_argument("--steps", type=_positive_int, default=3000,
                   help="offline agents: gradient steps in all (with --resume: the step to "
                   "train up to, not steps to add)")
    t.add_argument("--resume", action="store_true",
                   help="offline agents: continue from OUT/checkpoint up to --steps in all, "
                   "identical to an uninterrupted run; refused if --data (content), --set or "
                   "--seed differ from the checkpoint's, or if it already reached --steps")
    t.add_argument("--eval-every", type=int, default=0,
                   help="offline agents: evaluate in the simulator every N steps (0: never)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="offline agents: override a config field (JSON value), repeatable")

    m = sub.add_parser("benchmark", help="train the RL agents and evaluate them with the "
                       "heuristics on held-out seeds")
    m.add_argument("--preset", choices=["smoke", "full"], default="smoke")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--workers", type=_positive_int, default=1,
                   help="parallel processes for collection, training and evaluation")
    m.add_argument("--out", required=True)
    m.add_argument("--agents", default=None,
                   help="comma-separated labels: train and evaluate only these (and the runs "
                   "they need); finished runs are reused by a later full invocation")
    m.add_argument("--train-only", action="store_true",
                   help="collect and train only (a later invocation reuses the runs)")
    m.add_argument("--readme", default=None,
                   help="splice the leaderboard into this Markdown file (between "
                   "<!-- leaderboard:start --> and <!-- leaderboard:end -->)")

    r = sub.add_parser("traffic-report", help="figures and a summary of the traffic generators")
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--traffic", default="mixed", choices=["mixed", "feed", "search"])
    r.add_argument("--opportunities", type=_positive_int, default=500_000)
    r.add_argument("--advertisers", type=_positive_int, default=48)
    r.add_argument("--retrieval", default="cascade", choices=["cascade", "generative", "both"],
                   help="retrieval mode; 'both': a report per mode (DIR/cascade, "
                   "DIR/generative) and their comparison over --days days (retrieval.csv, "
                   "retrieval_modes.png, a table)")
    r.add_argument("--days", type=_positive_int, default=10,
                   help="days of the --retrieval both comparison (seeds SEED..SEED+DAYS-1)")

    c = sub.add_parser("collect", help="log simulated days of a behaviour mix as an offline "
                       "dataset (Parquet)")
    c.add_argument("--episodes", type=_positive_int, required=True, help="days to log")
    c.add_argument("--behavior", default="mix",
                   help="'mix' (the default heuristic mix), an agent name, or name=w,name=w; "
                   "'expert' is the day's best constant multiplier in hindsight (data, not "
                   "an agent)")
    c.add_argument("--seed", type=int, default=0, help="day i uses seed + i")
    c.add_argument("--noise", type=float, default=0.3,
                   help="exploration: per-day sigma ~ U(0, noise) of log-normal alpha noise")
    c.add_argument("--env", default="bidenv/AutoBiddingLite-v0", help="environment id")
    c.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    c.add_argument("--yardstick", action="store_true",
                   help="also compute every day's yardstick (oracle of the day without the "
                   "agent; one more simulated day each) and report each behaviour's percent "
                   "of it, also in OUT_STEM.behaviors.csv")
    c.add_argument("--out", required=True, help="output file, e.g. data.parquet")

    k = sub.add_parser("calibrate", help="the full day and Lite side by side: per-opportunity "
                       "market statistics of a fixed bidder's days, with the reference")
    k.add_argument("--days", type=_positive_int, default=10, help="days per environment")
    k.add_argument("--seed", type=int, default=0, help="day i uses seed + i (both envs)")
    k.add_argument("--out", default="bidenv-calibration", help="output folder")

    a = sub.add_parser("import-auctionnet", help="convert public AuctionNet traffic-log CSVs "
                       "or trajectory_data.csv into an offline dataset (Parquet)")
    a.add_argument("csv", nargs="+", help="traffic-log CSVs (AuctionNet schema) or trajectory "
                   "files (trajectory_data.csv, *-rlData.csv; told apart by the header) or "
                   "globs; their episodes are numbered across the files in order")
    a.add_argument("--out", required=True, help="output file, e.g. auctionnet.parquet")
    a.add_argument("--n-ticks", type=_positive_int, default=48, help="ticks per day")

    x = sub.add_parser("export-minari", help="write an offline dataset as a Minari dataset "
                       "with its environment's spec (needs pip install 'bidenv[minari]')")
    x.add_argument("data", help="dataset file of bidenv collect or import-auctionnet")
    x.add_argument("--dataset-id", required=True,
                   help="Minari id [namespace/]name-vN, e.g. bidenv/lite-mix-v0")
    x.add_argument("--out", default=None, help="root folder of Minari datasets (default: "
                   "MINARI_DATASETS_PATH or ~/.minari/datasets)")
    x.add_argument("--env", default=None, help="environment to record (default: the one that "
                   "played collected days; bidenv/AutoBidding-v0 for imported logs)")

    g = sub.add_parser("steer", help="does a generative bidder's target return steer it? "
                       "Evaluate one checkpoint at several target scales on the same days")
    g.add_argument("--agent", required=True,
                   help="a checkpoint of the decision-transformer family, e.g. dt:runs/dt")
    g.add_argument("--scales", default="0.5,0.75,1,1.25,1.5,2,3",
                   help="target scales (x the checkpoint's base target), comma-separated")
    g.add_argument("--episodes", type=_positive_int, default=10, help="days per scenario")
    g.add_argument("--seed", type=int, default=2_000_000, help="first held-out day's seed")
    g.add_argument("--scenarios", default="default", help="scenario preset or names")
    g.add_argument("--env", default="bidenv/AutoBiddingLite-v0", help="environment id")
    g.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    g.add_argument("--out", required=True, help="output folder")

    c = sub.add_parser("scale", help="percent of the yardstick against training steps and "
                       "model width (does more compute help?)")
    c.add_argument("--agents", default="dt", help="offline agents, comma-separated")
    c.add_argument("--data", required=True, help="offline dataset (bidenv collect)")
    c.add_argument("--steps", default="250,500,1000,2000",
                   help="step counts, comma-separated (one run per width, saved at each)")
    c.add_argument("--widths", default="32,64,128", help="widths, comma-separated")
    c.add_argument("--width-field", default="embed_dim",
                   help="the config field the widths set")
    c.add_argument("--seed", type=int, default=0, help="training seed")
    c.add_argument("--episodes", type=_positive_int, default=10, help="days per scenario")
    c.add_argument("--eval-seed", type=int, default=3_000_000,
                   help="first evaluation day's seed (default: tuning days, disjoint from "
                   "the benchmark's held-out days)")
    c.add_argument("--scenarios", default="default", help="scenario preset or names")
    c.add_argument("--env", default="bidenv/AutoBiddingLite-v0", help="environment id")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (JSON value), repeatable")
    c.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    c.add_argument("--out", required=True, help="output folder")
    mk = sub.add_parser("market", help="mixed markets of registered or checkpointed agents "
                        "(the first K advertisers of the multi-agent env): each agent's score, "
                        "spend, CPA/ROI, the platform's revenue, prices and the advertisers' "
                        "welfare; --sweep: the share of one bidder from 0 to all")
    mk.add_argument("--agents", default=None,
                    help="comma-separated specs, each with an optional *count, e.g. "
                    "'dt*8,pid_budget*8,online_lp*4' (name, name:checkpoint; dt alone is the "
                    "shipped decision transformer)")
    mk.add_argument("--sweep", default=None, metavar="SPEC:COUNTS",
                    help="instead of --agents: one market per count, e.g. 'dt:0,4,8,12,16', "
                    "the other --slots advertisers being --fill; writes sweep.csv, sweep.png")
    mk.add_argument("--fill", default="pid_budget", help="with --sweep: the other agents' spec")
    mk.add_argument("--slots", type=_positive_int, default=16,
                    help="with --sweep: agents per market (the first advertisers of the day)")
    mk.add_argument("--days", type=_positive_int, default=10, help="days per market")
    mk.add_argument("--seed", type=int, default=0, help="day i uses seed + i")
    mk.add_argument("--env", default="bidenv/AutoBidding-v0", help="environment id")
    mk.add_argument("--env-kwargs", default=None, metavar="JSON",
                    help="env settings over the id's, e.g. '{\"n_competitors\": 11}'")
    mk.add_argument("--workers", type=_positive_int, default=1, help="parallel processes")
    mk.add_argument("--out", required=True, help="output folder")
    sp = sub.add_parser("selfplay", help="self-play: K offline learners bid together in the "
                        "multi-agent market, each retrained on its own logs, round after round")
    sp.add_argument("--agent", default="dt",
                    help=f"the offline learner (one per advertiser): {', '.join(OFFLINE_AGENTS)}")
    sp.add_argument("--n-agents", type=int, default=4, help="K learning advertisers")
    sp.add_argument("--rounds", type=int, default=3, help="rounds of play, log and train")
    sp.add_argument("--days", type=int, default=8, help="market days played per round")
    sp.add_argument("--steps", type=int, default=300,
                    help="gradient steps per learner per round")
    sp.add_argument("--seed", type=int, default=0, help="day i of the run uses seed + i")
    sp.add_argument("--env", default="bidenv/AutoBiddingLite-v0", help="environment id")
    sp.add_argument("--env-kwargs", default=None, metavar="JSON",
                    help="env settings over the id's, e.g. '{\"n_competitors\": 11}'")
    sp.add_argument("--start", default="mix",
                    help="round 0's policies: 'mix' (heuristics, as bidenv collect), a "
                    "behaviour mix name=w,..., dt (the shipped checkpoint) or NAME:CHECKPOINT")
    sp.add_argument("--noise", type=float, default=0.3,
                    help="exploration of the logged days: per agent and day sigma ~ U(0, noise)")
    sp.add_argument("--eval-days", type=int, default=8,
                    help="held-out days the K current policies play together every round")
    sp.add_argument("--eval-seed", type=int, default=1_000_000,
                    help="held-out day j uses eval-seed + j")
    sp.add_argument("--shared", action="store_true",
                    help="one model on every agent's logs (default: one per agent, its own)")
    sp.add_argument("--window", type=int, default=0,
                    help="rounds of logs each learner trains on (the last N; 0: all so far)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="learner config override (JSON value), repeatable")
    sp.add_argument("--out", required=True, help="output folder")
    for name in THREADED_COMMANDS:
        sub.choices[name].add_argument(
            "--threads", type=_threads, default=1, metavar="N",
            help="torch / OpenMP / BLAS threads per process, workers included (default 1: "
            "fastest for these small models, and processes side by side do not compete)")
    for name in EXECUTOR_COMMANDS:
        command = sub.choices[name]
        command.add_argument(
            "--executor", choices=["local", "ray"], default="local",
            help="where the tasks run: local worker processes (default) or Ray tasks, on a "
            "cluster or a local Ray instance (pip install 'bidenv[distributed]'); the files "
            "are identical either way")
        command.add_argument(
            "--ray-address", default=None, metavar="ADDR",
            help="with --executor ray: the cluster to join, e.g. auto (the cluster this "
            "machine joined with `ray start`) or HEAD:6379 (default: start a local Ray "
            "instance); --workers then defaults to the cluster's CPUs / --threads")
        command.set_defaults(workers=None)  # local: 1; ray: the cluster's CPUs / --threads
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


def _set_up_executor(args):
    """This process's executor (--executor, --ray-address), before any work. A missing Ray or
    an unreachable cluster is one line naming the fix."""
    from experiments.pool import use_executor
    from experiments.threads import pin_threads

    if args.ray_address is not None and args.executor != "ray":
        raise SystemExit(f"bidenv {args.command}: --ray-address needs --executor ray")
    if args.executor == "ray":
        pin_threads(args.threads)  # before Ray starts: its processes inherit the settings
    try:
        executor = use_executor(args.executor, args.ray_address)
    except (ImportError, ConnectionError) as exc:
        raise SystemExit(f"bidenv {args.command}: {exc}") from None
    return executor


def main(argv=None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # the pools have already cancelled their tasks
        print("bidenv: interrupted", file=sys.stderr)
        return 130
    finally:  # back to local; a Ray instance this command started is shut down
        from experiments.pool import current_executor, use_executor

        if current_executor().kind != "local":
            use_executor("local")


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    executor = _set_up_executor(args) if args.command in EXECUTOR_COMMANDS else None
    _default_workers(args, executor)
    if args.command in THREADED_COMMANDS:
        _set_up_threads(args)
    if executor is not None and executor.kind == "ray":
        print(executor.describe(args.workers), flush=True)
    if args.command == "quickstart":
        from experiments.quickstart import run_quickstart

        try:
            run_quickstart(episodes=args.episodes, budget_days=args.budget_days, seed=args.seed,
                           env_id=args.env, out=args.out, workers=args.workers)
        except ValueError as exc:
            raise SystemExit(f"bidenv quickstart: {exc}") from None
    elif args.command == "simulate-budget":
        from experiments.simulate_budget import fields_from_args, run_simulate_budget

        try:
            run_simulate_budget(args.spec, out=args.out, workers=args.workers,
                                report=args.report, until_confident=args.until_confident,
                                max_days=args.max_days, **fields_from_args(args))
        except ValueError as exc:
            raise SystemExit(f"bidenv simulate-budget: {exc}") from None
    elif args.command == "bench":
        from experiments.bench import run_bench

        run_bench(n=args.opportunities, k=args.advertisers, n_slots=args.slots,
                  traffic=args.traffic, repeats=args.repeats, seed=args.seed,
                  vector_envs=args.vector_envs, vector_steps=args.vector_steps, out=args.out)
    elif args.command == "evaluate":
        from experiments.evaluate import run_evaluate

        try:
            run_evaluate(args.agents, episodes=args.episodes, seed=args.seed,
                         scenarios=args.scenarios, out=args.out, env_id=args.env,
                         workers=args.workers, reference=args.reference)
        except ValueError as exc:
            raise SystemExit(f"bidenv evaluate: {exc}") from None
    elif args.command == "train":
        if args.algo in OFFLINE_AGENTS:
            from experiments.train import run_train_offline

            try:
                run_train_offline(args.algo, data=args.data, steps=args.steps, seed=args.seed,
                                  out=args.out, resume=args.resume, eval_every=args.eval_every,
                                  eval_env=args.env, overrides=args.set)
            except (ValueError, FileNotFoundError) as exc:
                raise SystemExit(f"bidenv train: {exc}") from None
            return 0
        from agents.sb3 import TrainConfig, train

        config = TrainConfig(algo=args.algo, env_id=args.env, timesteps=args.timesteps,
                             seed=args.seed, n_envs=args.n_envs, net_arch=_net_arch(args.net_arch),
                             learning_rate=args.learning_rate, vectorization=args.vectorization)
        try:
            out = train(config, args.out)
        except ValueError as exc:
            raise SystemExit(f"bidenv train: {exc}") from None
        print(f"wrote {out}/model.zip, policy.pt, config.json and TensorBoard logs in {out}/tb; "
              f"evaluate it as {args.algo}:{out}")
    elif args.command == "benchmark":
        from experiments.benchmark import run_benchmark

        try:
            subset = None if args.agents is None else [
                a.strip() for a in args.agents.split(",") if a.strip()]
            run_benchmark(preset=args.preset, seed=args.seed, out=args.out,
                          workers=args.workers, readme=args.readme, agents_subset=subset,
                          train_only=args.train_only)
        except ValueError as exc:
            raise SystemExit(f"bidenv benchmark: {exc}") from None
    elif args.command == "traffic-report":
        from experiments.traffic_report import run_traffic_report

        if args.retrieval == "both":
            from experiments.retrieval import run_retrieval_report

            run_retrieval_report(args.out, seed=args.seed, days=args.days,
                                 n_advertisers=args.advertisers,
                                 opportunities_per_day=args.opportunities, traffic=args.traffic)
        else:
            run_traffic_report(args.out, seed=args.seed, n_advertisers=args.advertisers,
                               opportunities_per_day=args.opportunities, traffic=args.traffic,
                               retrieval=args.retrieval)
    elif args.command == "collect":
        from experiments.collect import run_collect

        try:
            run_collect(episodes=args.episodes, behavior=args.behavior, seed=args.seed,
                        out=args.out, noise=args.noise, env_id=args.env, workers=args.workers,
                        yardstick=args.yardstick)
        except ValueError as exc:
            raise SystemExit(f"bidenv collect: {exc}") from None
    elif args.command == "calibrate":
        from experiments.calibrate import run_calibrate

        run_calibrate(days=args.days, seed=args.seed, out=args.out)
    elif args.command == "import-auctionnet":
        from experiments.collect import run_import_auctionnet

        try:
            run_import_auctionnet(list(args.csv), out=args.out, n_ticks=args.n_ticks)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"bidenv import-auctionnet: {exc}") from None
    elif args.command == "export-minari":
        from experiments.handoff import run_export_minari

        try:
            run_export_minari(args.data, dataset_id=args.dataset_id, out=args.out,
                              env_id=args.env)
        except (ValueError, FileNotFoundError, ImportError) as exc:
            raise SystemExit(f"bidenv export-minari: {exc}") from None
    elif args.command == "steer":
        from experiments.steering import run_steer

        try:
            scales = [float(x) for x in args.scales.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"bidenv steer: --scales must be numbers like 0.5,1,2, got "
                             f"{args.scales!r}") from None
        try:
            run_steer(args.agent, scales=scales, episodes=args.episodes, seed=args.seed,
                      scenarios=args.scenarios, env_id=args.env, workers=args.workers,
                      out=args.out)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"bidenv steer: {exc}") from None
    elif args.command == "market":
        from experiments.market import run_market, run_sweep

        try:
            if (args.agents is None) == (args.sweep is None):
                raise ValueError("--agents: give --agents or --sweep (one of them)")
            try:
                env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else None
            except json.JSONDecodeError as exc:
                raise ValueError(f"--env-kwargs: not JSON ({exc.msg})") from None
            if env_kwargs is not None and not isinstance(env_kwargs, dict):
                raise ValueError("--env-kwargs: expected a JSON object like "
                                 '{"n_competitors": 11}')
            if args.sweep is not None:
                run_sweep(args.sweep, args.fill, args.slots, args.days, args.seed, args.env,
                          args.workers, args.out, env_kwargs=env_kwargs)
            else:
                run_market(args.agents, args.days, args.seed, args.env, args.workers, args.out,
                           env_kwargs=env_kwargs)
        except ValueError as exc:
            first = first_line(exc)
            raise SystemExit(f"bidenv market: {first}") from None
    elif args.command == "scale":
        from experiments.scaling import run_scale
        from experiments.train import parse_overrides

        try:
            steps = [int(x) for x in args.steps.split(",") if x.strip()]
            widths = [int(x) for x in args.widths.split(",") if x.strip()]
        except ValueError:
            raise SystemExit("bidenv scale: --steps and --widths must be integers like "
                             f"500,1000, got {args.steps!r} and {args.widths!r}") from None
        try:
            run_scale([a.strip() for a in args.agents.split(",") if a.strip()], args.data,
                      steps=steps, widths=widths, width_field=args.width_field,
                      seed=args.seed, episodes=args.episodes, eval_seed=args.eval_seed,
                      scenarios=args.scenarios, env_id=args.env, workers=args.workers,
                      out=args.out, config=parse_overrides(args.set))
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"bidenv scale: {exc}") from None
    elif args.command == "selfplay":
        from experiments.selfplay import run_selfplay

        try:
            run_selfplay(agent=args.agent, n_agents=args.n_agents, rounds=args.rounds,
                         days=args.days, steps=args.steps, seed=args.seed, env_id=args.env,
                         env_kwargs=args.env_kwargs, start=args.start, noise=args.noise,
                         eval_days=args.eval_days, eval_seed=args.eval_seed,
                         shared=args.shared, window=args.window, overrides=args.set,
                         out=args.out)
        except (ValueError, FileNotFoundError) as exc:
            first = first_line(exc)
            raise SystemExit(f"bidenv selfplay: {first}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
