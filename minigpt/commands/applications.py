"""`minigpt applications --out DIR`: the whole pipeline, corpus to report card (minigpt/applications/pipeline.py)."""

HELP = "run the whole pipeline: corpus, tokenizer, base model, every task's baselines, prompts and fine-tunes, the report card"
DESCRIPTION = ("Pretrain a base model on real English, then score it on the four tasks (summarisation, translation, "
               "question answering, classification) against their baselines, zero-shot, few-shot, fine-tuned and with "
               "LoRA, and write DIR/report.md and DIR/report.html. Stopped, it goes on where it stopped when run "
               "again. Docs: docs/applications.md.")


def add_arguments(p) -> None:
    from minigpt.config import APPLICATIONS

    p.add_argument("--out", default="applications", metavar="DIR",
                   help="where the runs, the evaluations and the report go (default: applications)")
    p.add_argument("--base", metavar="RUN", help="a base model trained before (minigpt train --preset base): the "
                                                 "pipeline starts from it instead of building the corpus and training one")
    p.add_argument("--plan", choices=("full", "smoke"), default="full",
                   help="full: the base preset and the fine-tunes of docs/applications.md; smoke: every step on the "
                        "shipped sample, a tiny model and a few records, in a minute or two (default: full)")
    p.add_argument("--tasks", default=",".join(APPLICATIONS), metavar="T,T",
                   help=f"the tasks, comma-separated (default: {','.join(APPLICATIONS)})")


def run(args) -> int:
    from pathlib import Path

    from minigpt.applications import pipeline
    from minigpt.config import APPLICATIONS

    tasks = tuple(t for t in args.tasks.split(",") if t)
    unknown = [t for t in tasks if t not in APPLICATIONS]
    if unknown or not tasks:
        raise ValueError(f"--tasks {args.tasks!r}: the tasks are {', '.join(APPLICATIONS)}, comma-separated")
    base = None if args.base is None else Path(args.base)
    if base is not None and not base.is_dir():
        raise ValueError(f"--base {base}: no such run directory; train one with minigpt train --preset base "
                         f"--out-dir {base}, or leave --base out and the pipeline trains it")
    # (each line flushed: the steps' own output, a child's, comes between them)
    md, html = pipeline.run(pipeline.PLANS[args.plan], Path(args.out), base, tasks, lambda line: print(line, flush=True))
    print(f"the report card: {md} and {html}")
    return 0
