"""`minigpt inspect`: one self-contained HTML page of what each layer and head of a model does (minigpt/inspect)."""

HELP = "one self-contained HTML page of what each layer and head does (needs plotly)"
DESCRIPTION = ("Write one HTML page (everything inline: it opens offline) showing, for a prompt, every attention head, "
               "the predictions, the logit lens, activations, gradients and, for a run directory, its training curves. "
               "Docs: docs/inspect.md.")


def add_arguments(p) -> None:
    from minigpt.commands import model_arguments

    model_arguments(p)
    p.add_argument("--prompt", help="the text to inspect (default: a held-out problem of a task run, else the model's own "
                                    "greedy continuation of a newline)")
    p.add_argument("--html", metavar="FILE", help="where to write the page (default: DIR/inspect.html for a run, "
                                                  "else ./inspect.html)")
    p.add_argument("--top-k", type=int, default=5, help="next tokens shown at each position (default: 5)")


def run(args) -> int:
    from pathlib import Path

    from minigpt import checkpoint, inspect, load, outputs
    from minigpt.commands import report, use_threads
    from minigpt.runlog import LOG, read_log

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    inspect.plotly()  # before any work: without plotly, say so at once
    is_run = (Path(args.out_dir) / checkpoint.POINTER).is_file()
    html_path = Path(args.html) if args.html else (Path(args.out_dir) if is_run else Path.cwd()) / "inspect.html"
    outputs.check(html_path, "--html")  # (before any work, as the page's other checks)
    use_threads(args.threads)
    pretrained = load.read(args.out_dir, args.checkpoint)  # (its tokenizer first: the command needs one)
    tokenizer, model = load.text_tokenizer(pretrained), load.build_model(pretrained, backend=args.backend)
    task = None if pretrained.train is None else pretrained.train.task  # (a checkpoint's run's)
    prompt = args.prompt if args.prompt is not None else inspect.default_prompt(model, tokenizer, task)
    records = read_log(args.out_dir) if is_run and (Path(args.out_dir) / LOG).is_file() else None
    page = inspect.report(model, tokenizer, prompt, args.top_k, records, title=f"minigpt inspect: {pretrained.path}",
                          say=lambda notice: report(f"minigpt: {notice}"))
    print(inspect.write(page, html_path))
    return 0
