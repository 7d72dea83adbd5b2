"""`minigpt eval`: a model scored on a JSONL file of records (minigpt/evaluation.py), or on a task's split, or a
task's baseline (minigpt/applications/evaluate.py): one table on stdout, and the same numbers as JSON with --json."""

HELP = ("score a model on a JSONL file (completion loss, exact match, classification accuracy and F1, multiple "
        "choice, preference accuracy) or on a task (ROUGE, BLEU, chrF, SQuAD's F1, accuracy), or a task's baseline")
DESCRIPTION = ("Score a model on records: {\"prompt\", \"completion\"} or {\"messages\"} (mean loss and perplexity on the "
               "completions, exact match of greedy completions), {\"text\", \"label\"} (a classifier's accuracy and "
               "per-class F1), {\"prompt\", \"choices\", \"answer\"} (multiple choice: the ending of lowest mean loss), "
               "{\"prompt\", \"chosen\", \"rejected\"} (preference accuracy: chosen more likely than rejected). "
               "Or a task's split by the field's metrics, the model's answers (zero-shot, few-shot, fine-tuned) or a "
               "baseline's (--task NAME). Docs: docs/finetuning.md, docs/applications.md.")


def add_arguments(p) -> None:
    from minigpt.commands import model_arguments, quantize_argument
    from minigpt.config import APPLICATIONS

    model_arguments(p)
    quantize_argument(p)
    p.add_argument("--data", metavar="F.jsonl", help="the records to score (default: none; give it or --task)")
    p.add_argument("--task", choices=APPLICATIONS, metavar="NAME",
                   help=f"score on a task's split instead: {', '.join(APPLICATIONS)} (default: none)")
    p.add_argument("--split", default="test", metavar="train|val|test", help="--task's split to score (default: test)")
    p.add_argument("--shots", type=int, default=0, metavar="K",
                   help="--task: K training examples before each prompt, as many as fit; 0 is zero-shot (default: 0)")
    p.add_argument("--num-beams", type=int, default=1, metavar="N",
                   help="--task: beam search with N beams; 1 is greedy (default: 1)")
    p.add_argument("--baseline", metavar="NAME",
                   help="--task: score this baseline's predictions, with no model (default: none, the model's)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="--task: score the split's first N records only (default: all)")
    p.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    p.add_argument("--truncate", action="store_true",
                   help="score records longer than the model's context cut to fit it (as minigpt train --truncate "
                        "cuts them), or dropped where no token of the completion is left; without it they are refused")


def score(model, tokenizer, path, truncate: bool = False, say=lambda line: None) -> dict:
    """Every number `minigpt eval` reports for the records of `path`; with truncate, those longer than the context
    are cut to fit (or dropped), and say() is told how many."""
    from minigpt import evaluation
    from minigpt.data.record_datasets import dataset_of
    from minigpt.data.records import read_records

    file = read_records(path)  # what is scored, and how, is what the file holds
    # (a chat is scored as instructions are; a conversational preference as a preference)
    kind = {"chat": "instruction", "chat preference": "preference"}.get(file.kind, file.kind)
    result = {"data": str(path), "records": len(file.records), "kind": kind}
    if kind == "choice":
        result.update(evaluation.multiple_choice(model, tokenizer, file.records))
        return result
    records = dataset_of(file, tokenizer, model.config.labels)

    def fit() -> None:
        said = records.fit_examples(model.config.block_size, truncate)
        if said is not None:
            say(said)
            result["records"] = len(records.examples)  # (the records scored: those dropped are not)
    if kind == "classification":
        if model.config.labels is None:
            raise ValueError(f"{path} holds classification records but the model has no classification head; "
                             f"fine-tune one first: minigpt train --data {path} --init-from ...")
        fit()
        result.update(evaluation.classification(model, records, records.examples))
        return result
    missing = sorted(set(records.tokenizer.special_tokens) - set(tokenizer.special_tokens))
    if missing:
        raise ValueError(f"the records' template writes {', '.join(missing)}, which the model's vocabulary lacks: it "
                         f"was not fine-tuned on such records; fine-tune it first (minigpt train --data {path} "
                         f"--init-from ...)")
    fit()
    if kind == "preference":
        result.update(evaluation.preferences(model, records, records.examples))
        return result
    result.update(evaluation.completion_loss(model, records, records.examples))
    result["exact_match"] = records.exact_match(model, records.examples)
    return result


def table(result: dict) -> str:
    rows = [("data", result["data"]), ("records", str(result["records"]))]
    if result["quantize"] is not None:
        rows.append(("weights", result["quantize"]))
    for key in ("loss", "perplexity", "exact_match", "accuracy", "macro_f1", "preference_accuracy", "logp_margin"):
        if key in result:
            rows.append((key.replace("_", " "), f"{result[key]:.4f}"))
    for name, c in result.get("per_class", {}).items():
        rows.append((f"F1 {name}", f"{c['f1']:.4f}  (precision {c['precision']:.3f}, recall {c['recall']:.3f}, "
                                   f"{c['support']} records)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def score_task(args) -> tuple[dict, str]:
    """--task: the model's answers to the split, or a baseline's, scored (minigpt/applications/evaluate.py); the
    result and its table."""
    from minigpt import load
    from minigpt.applications import evaluate
    from minigpt.commands import report

    setting = evaluate.Setting(args.task, args.split, args.shots, args.num_beams, args.baseline, args.limit)
    if args.baseline is not None:
        result = evaluate.evaluate_baseline(setting)
    else:
        evaluate.check(setting)  # (before the model is read)
        pretrained = load.read(args.out_dir, args.checkpoint)
        tokenizer = load.text_tokenizer(pretrained)
        model = load.build_model(pretrained, backend=args.backend, quantize=args.quantize)
        result = {**evaluate.evaluate_model(model, tokenizer, setting, str(pretrained.path), report),
                  "quantize": args.quantize}
    return result, evaluate.table(result)


def run(args) -> int:
    import json

    from minigpt import load, outputs
    from minigpt.commands import report, use_threads
    from minigpt.files import atomic_write

    if (args.data is None) == (args.task is None):
        raise ValueError("give the records to score (--data F.jsonl) or a task (--task NAME), one of the two")
    task_flags = [flag for flag, given in (("--split", args.split != "test"), ("--shots", args.shots != 0),
                                           ("--num-beams", args.num_beams != 1), ("--baseline", args.baseline),
                                           ("--limit", args.limit)) if given]
    if args.baseline is not None and args.quantize is not None:
        raise ValueError("--quantize is for a model; a --baseline has none")
    if args.data is not None and task_flags:
        raise ValueError(f"{task_flags[0]} is for a task (--task NAME); with --data, every record of the file is "
                         f"scored")
    if args.task is not None and args.truncate:
        raise ValueError("--truncate is for --data: a task's prompts too long for the context are cut on the left")
    if args.json:  # checked before the scores are computed, not after
        outputs.check(args.json, "--json")
    use_threads(args.threads)
    if args.task is not None:
        result, shown = score_task(args)
    else:
        pretrained = load.read(args.out_dir, args.checkpoint)  # (its tokenizer first: the command needs one)
        tokenizer = load.text_tokenizer(pretrained)
        model = load.build_model(pretrained, backend=args.backend, quantize=args.quantize)
        result = {**score(model, tokenizer, args.data, args.truncate, report), "quantize": args.quantize}
        shown = table(result)
    print(shown, flush=True)  # (first: a --json that fails now still leaves the scores on the screen)
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(result, indent=1) + "\n")
    return 0
