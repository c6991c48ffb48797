"""`gnnlm tune` on UMLS: does a 20-trial search find a ComplEx config at least as good as the shipped one?

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/tune_umls.py [--trials 20] [--epochs 200] \
        [--space configs/umls/complex_space.yaml] [--name tune_umls] [--seeds 0 1 2] [--baseline] \
        [--threads 1] [--out runs/tune-umls]

Trains the shipped ``configs/umls/complex.yaml`` once (its own budget, or ``--epochs``), then searches
``configs/umls/complex_space.yaml`` with the same budget per trial (TPE, median pruning on validation
MRR, every trial with the config's seed). By default the search does *not* start from the shipped
values (``--no-baseline`` of ``gnnlm tune``), so a win is the search's own; ``--baseline`` makes the
shipped config its first trial. Reports validation MRR (what the search selects on) and test MRR of
the shipped config and of the best trial, and the whole trial table. Writes
``benchmarks/results/tune_umls.{json,md}``; the search resumes from ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from common import header, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "umls" / "complex.yaml"
SPACE = ROOT / "configs" / "umls" / "complex_space.yaml"


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's (200)")
    parser.add_argument("--baseline", action="store_true", help="first trial = shipped config")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/tune-umls"))
    parser.add_argument("--space", type=Path, default=SPACE)
    parser.add_argument("--name", default="tune_umls", help="results file name")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import optuna

    from gnnlm.tasks import load_config
    from gnnlm.train import train
    from gnnlm.tune import format_table, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    overrides = [f"training.epochs={args.epochs}"] if args.epochs else []
    config = load_config(CONFIG, overrides)
    load = [os.getloadavg()]
    start = time.perf_counter()
    shipped_dir = args.out / "shipped"
    if (shipped_dir / "metrics.json").is_file():
        shipped = json.loads((shipped_dir / "metrics.json").read_text())
    else:
        shipped = train(config, shipped_dir, quiet=True, overwrite=True).metrics
    shipped_seconds = time.perf_counter() - start

    def line(row: dict) -> None:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        print(
            f"trial {row['number']}: {row['state']} {value} ({row['seconds'] or 0:.0f} s)",
            flush=True,
        )

    start = time.perf_counter()
    result = tune(
        config, args.space, args.out / "search", trials=args.trials, quiet=True,
        baseline=args.baseline, on_trial=line,
    )  # fmt: skip
    search_seconds = time.perf_counter() - start  # of this process (a resumed search: new trials)
    trial_seconds = sum(row["seconds"] or 0.0 for row in result.rows)
    best_dir = args.out / "search" / "trials" / str(result.best_trial)
    best = json.loads((best_dir / "metrics.json").read_text())
    # both configs over seeds: the search picked its best on one seed's validation split
    seeds: dict[str, dict[int, dict]] = {"shipped": {}, "best": {}}
    for name, base in (("shipped", config), ("best", result.best_config)):
        for seed in args.seeds:
            run = args.out / "seeds" / name / f"seed-{seed}"
            if (run / "metrics.json").is_file():
                seeds[name][seed] = json.loads((run / "metrics.json").read_text())
            else:
                single = base.variant(None, seed)
                seeds[name][seed] = train(single, run, quiet=True, overwrite=True).metrics
    load.append(os.getloadavg())
    states = [row["state"] for row in result.rows]
    record = {
        **header(argv, args.threads),
        "config": str(CONFIG.relative_to(ROOT)),
        "space": str(
            args.space.resolve().relative_to(ROOT)
            if args.space.resolve().is_relative_to(ROOT)
            else args.space
        ),
        "epochs_per_trial": config.training.epochs,
        "trials": args.trials,
        "baseline_first": args.baseline,
        "shipped": {"valid": shipped["valid"], "test": shipped["test"],
                    "epochs": shipped["epochs"], "seconds": shipped_seconds},
        "best": {"trial": result.best_trial, "params": result.study.best_trial.params,
                 "valid": best["valid"], "test": best["test"], "epochs": best["epochs"]},
        "states": {s: states.count(s) for s in sorted(set(states))},
        "seeds": {name: {str(seed): {"valid_mrr": m["valid"]["mrr"], "test_mrr": m["test"]["mrr"]}
                         for seed, m in runs.items()} for name, runs in seeds.items()},
        "search_seconds": search_seconds,
        "trial_seconds": trial_seconds,
        "load_average": load,
        "trials_table": result.rows,
    }  # fmt: skip
    sv, st, bv, bt = shipped["valid"], shipped["test"], best["valid"], best["test"]
    text = (
        f"# gnnlm tune on UMLS (ComplEx, {args.trials} trials, space `{record['space']}`)\n\n"
        f"Command: `python benchmarks/{record['command']}`\n\n"
        f"Each trial: the shipped config with the trial's values, {config.training.epochs} epochs max "
        f"(early stopping as shipped), seed {config.seed}; first trial = shipped config: "
        f"{'yes' if args.baseline else 'no'}. Trials: {record['states']}; their training took "
        f"{trial_seconds / 60:.1f} min in all on {args.threads} thread(s), load average "
        f"{load[0][0]:.1f} -> {load[1][0]:.1f}.\n\n"
        "| config | valid MRR | test MRR | test Hits@1 | test Hits@10 | epochs |\n"
        "|---|---|---|---|---|---|\n"
        f"| shipped `configs/umls/complex.yaml` | {sv['mrr']:.4f} | {st['mrr']:.4f} | "
        f"{st['hits@1']:.4f} | {st['hits@10']:.4f} | {shipped['epochs']} |\n"
        f"| best of search (trial {result.best_trial}) | {bv['mrr']:.4f} | {bt['mrr']:.4f} | "
        f"{bt['hits@1']:.4f} | {bt['hits@10']:.4f} | {best['epochs']} |\n\n"
        "Space:\n\n```yaml\n"
        + "".join(f"{k}: {json.dumps(v)}\n" for k, v in result.study.user_attrs["space"].items())
        + "```\n\n"
        f"Best trial's values: {json.dumps(result.study.best_trial.params)}\n\n"
        f"Retrained with seeds {args.seeds} (mean ± sample std):\n\n"
        "| config | valid MRR | test MRR |\n|---|---|---|\n"
        + "".join(
            f"| {name} | {mean_std([m['valid']['mrr'] for m in runs.values()])} | "
            f"{mean_std([m['test']['mrr'] for m in runs.values()])} |\n"
            for name, runs in seeds.items()
        )
        + "\n"
        "All trials (valid MRR; a pruned trial shows its last reported value):\n\n```\n"
        f"{format_table(result)}```\n"
    )
    write_results(ROOT / "benchmarks" / "results" / f"{args.name}.json", record, text)


if __name__ == "__main__":
    main()
