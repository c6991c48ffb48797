"""`gnnlm tune` on UMLS: does a 20-trial search find a ComplEx config at least as good as the shipped one?

    GNNLM_DATA_DIR=/path/to/datasets python benchmarks/tune_umls.py [--trials 20] [--epochs 200] \
        [--baseline] [--threads 1] [--out runs/tune-umls]

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
import time
from pathlib import Path

import torch
from common import header, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "umls" / "complex.yaml"
SPACE = ROOT / "configs" / "umls" / "complex_space.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's (200)")
    parser.add_argument("--baseline", action="store_true", help="first trial = shipped config")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/tune-umls"))
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
        config, SPACE, args.out / "search", trials=args.trials, quiet=True,
        baseline=args.baseline, on_trial=line,
    )  # fmt: skip
    search_seconds = time.perf_counter() - start
    load.append(os.getloadavg())
    best_dir = args.out / "search" / "trials" / str(result.best_trial)
    best = json.loads((best_dir / "metrics.json").read_text())
    states = [row["state"] for row in result.rows]
    record = {
        **header(argv, args.threads),
        "config": str(CONFIG.relative_to(ROOT)),
        "space": str(SPACE.relative_to(ROOT)),
        "epochs_per_trial": config.training.epochs,
        "trials": args.trials,
        "baseline_first": args.baseline,
        "shipped": {"valid": shipped["valid"], "test": shipped["test"],
                    "epochs": shipped["epochs"], "seconds": shipped_seconds},
        "best": {"trial": result.best_trial, "params": result.study.best_trial.params,
                 "valid": best["valid"], "test": best["test"], "epochs": best["epochs"]},
        "states": {s: states.count(s) for s in sorted(set(states))},
        "search_seconds": search_seconds,
        "load_average": load,
        "trials_table": result.rows,
    }  # fmt: skip
    sv, st, bv, bt = shipped["valid"], shipped["test"], best["valid"], best["test"]
    text = (
        f"# gnnlm tune on UMLS (ComplEx, {args.trials} trials)\n\n"
        f"Command: `python benchmarks/tune_umls.py {' '.join(argv or [])}`".rstrip()
        + "\n\n"
        f"Each trial: the shipped config with the trial's values, {config.training.epochs} epochs max "
        f"(early stopping as shipped), seed {config.seed}; first trial = shipped config: "
        f"{'yes' if args.baseline else 'no'}. Trials: {record['states']}; search wall time "
        f"{search_seconds / 60:.1f} min on {args.threads} thread(s), load average "
        f"{load[0][0]:.1f} -> {load[1][0]:.1f}.\n\n"
        "| config | valid MRR | test MRR | test Hits@1 | test Hits@10 | epochs |\n"
        "|---|---|---|---|---|---|\n"
        f"| shipped `configs/umls/complex.yaml` | {sv['mrr']:.4f} | {st['mrr']:.4f} | "
        f"{st['hits@1']:.4f} | {st['hits@10']:.4f} | {shipped['epochs']} |\n"
        f"| best of search (trial {result.best_trial}) | {bv['mrr']:.4f} | {bt['mrr']:.4f} | "
        f"{bt['hits@1']:.4f} | {bt['hits@10']:.4f} | {best['epochs']} |\n\n"
        f"Best trial's values: {json.dumps(result.study.best_trial.params)}\n\n"
        "All trials (valid MRR; a pruned trial shows its last reported value):\n\n```\n"
        f"{format_table(result)}```\n"
    )
    write_results(ROOT / "benchmarks" / "results" / "tune_umls.json", record, text)


if __name__ == "__main__":
    main()
