#!/usr/bin/env python
"""Evaluate DQN checkpoints and the baselines on live_recommendation (same seeded episodes).

    python scripts/evaluate_recommenders.py \
        --checkpoint results/live_recommendation_runs/dqn/checkpoints/iter_000040 \
        [--fair-checkpoint results/live_recommendation_runs/dqn_fair/checkpoints/iter_000030] \
        [--extra-checkpoint NAME=PATH ...] [--rerank-betas 2,5,10] \
        --episodes 10 --seed 10000 [--json results/live_recommendation.json] \
        [--md results/live_recommendation.md] [--png results/live_recommendation.png]

Baselines: random, popular, repeat (user's most-watched live streamer), oracle. Writes
the JSON ``{recommender: {metric: value}}`` (metrics watch_time_per_user,
acceptance_rate, invalid_rate, hr10, ndcg10, exposure_gini, active_streamers and more),
the markdown table and a plot; see :mod:`policies.recommender_evaluation` for the
metric definitions. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import (  # noqa: E402
    cli_errors,
    nonneg_int,
    output_file,
    parse_env_kwargs,
    positive_int,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="DQN checkpoint (row 'dqn')")
    p.add_argument("--fair-checkpoint", default=None,
                   help="DQN checkpoint trained with exposure_fairness (row 'dqn_fair')")
    p.add_argument("--extra-checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="another DQN checkpoint as row NAME (repeatable)")
    p.add_argument("--rerank-betas", default="", metavar="B1,B2,...",
                   help="rows dqn_viability<B>: the --checkpoint DQN's Q-values plus B times "
                        "each live streamer's shortfall below the departure threshold "
                        "(fairness-aware re-ranking, see ViabilityRerank)")
    p.add_argument("--episodes", type=positive_int, default=10, help="episodes (default 10)")
    p.add_argument("--seed", type=nonneg_int, default=10_000, help="seed of the first episode")
    p.add_argument("--env-kwargs", default="{}", help="JSON dict of env kwargs")
    p.add_argument("--json", default="results/live_recommendation.json", metavar="FILE",
                   help="metrics JSON (default results/live_recommendation.json)")
    p.add_argument("--md", type=output_file, default="results/live_recommendation.md",
                   help="markdown report ('' for none)")
    p.add_argument("--png", type=output_file, default="results/live_recommendation.png",
                   help="plot ('' for none)")
    p.add_argument("--notes", default="", help="text added to the markdown report")
    p.add_argument("--notes-file", default=None, metavar="FILE",
                   help="read that text from FILE (keeps the recorded command short)")
    args = p.parse_args(argv)
    command = shlex.join(["python", "scripts/evaluate_recommenders.py",
                          *(argv if argv is not None else sys.argv[1:])])
    with cli_errors():
        env_kwargs = parse_env_kwargs(args.env_kwargs)
        notes = args.notes
        if args.notes_file is not None:
            if not Path(args.notes_file).is_file():
                raise ValueError(f"--notes-file {args.notes_file!r} does not exist")
            notes = "\n\n".join(filter(None, [notes, Path(args.notes_file).read_text().strip()]))
        extra: dict[str, str] = {}
        for item in args.extra_checkpoint:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--extra-checkpoint must be NAME=PATH, got {item!r}")
            extra[name] = path
        betas: list[float] = []
        for text in filter(None, args.rerank_betas.split(",")):
            try:
                betas.append(float(text))
            except ValueError:
                raise ValueError(f"--rerank-betas must be comma-separated numbers, got "
                                 f"{text!r}") from None
        from policies.recommender_evaluation import main_evaluation, markdown_table

        results = main_evaluation(
            checkpoint=args.checkpoint, fair_checkpoint=args.fair_checkpoint,
            episodes=args.episodes, seed=args.seed, env_kwargs=env_kwargs,
            json_path=args.json, md_path=args.md or None, png_path=args.png or None,
            command=command, notes=notes, extra_checkpoints=extra, rerank_betas=betas,
        )
    print(markdown_table(results))
    print(f"wrote {args.json}" + (f", {args.md}" if args.md else "")
          + (f", {args.png}" if args.png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
