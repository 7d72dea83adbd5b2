"""`minigpt eval`: a model scored on a JSONL file of records (minigpt/evaluation.py): one table on stdout, and the
same numbers as JSON with --json."""

HELP = "score a model on a JSONL file: completion loss, exact match, classification accuracy and F1, multiple choice"
DESCRIPTION = ("Score a model on records: {\"prompt\", \"completion\"} or {\"messages\"} (mean loss and perplexity on the "
               "completions, exact match of greedy completions), {\"text\", \"label\"} (a classifier's accuracy and "
               "per-class F1), {\"prompt\", \"choices\", \"answer\"} (multiple choice: the ending of lowest mean loss). "
               "Docs: docs/finetuning.md.")


def add_arguments(p) -> None:
    from minigpt.commands import model_arguments

    model_arguments(p)
    p.add_argument("--data", required=True, metavar="F.jsonl", help="the records to score")
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
    kind = "instruction" if file.kind == "chat" else file.kind  # (a chat is scored as instructions are)
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
    result.update(evaluation.completion_loss(model, records, records.examples))
    result["exact_match"] = records.exact_match(model, records.examples)
    return result


def table(result: dict) -> str:
    rows = [("data", result["data"]), ("records", str(result["records"]))]
    for key in ("loss", "perplexity", "exact_match", "accuracy", "macro_f1"):
        if key in result:
            rows.append((key.replace("_", " "), f"{result[key]:.4f}"))
    for name, c in result.get("per_class", {}).items():
        rows.append((f"F1 {name}", f"{c['f1']:.4f}  (precision {c['precision']:.3f}, recall {c['recall']:.3f}, "
                                   f"{c['support']} records)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args) -> int:
    import json

    from minigpt import load, outputs
    from minigpt.commands import report, use_threads
    from minigpt.files import atomic_write

    if args.json:  # checked before the scores are computed, not after
        outputs.check(args.json, "--json")
    use_threads(args.threads)
    pretrained = load.read(args.out_dir, args.checkpoint)  # (its tokenizer first: the command needs one)
    tokenizer, model = load.text_tokenizer(pretrained), load.build_model(pretrained, backend=args.backend)
    result = score(model, tokenizer, args.data, args.truncate, report)
    print(table(result), flush=True)  # (first: a --json that fails now still leaves the scores on the screen)
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(result, indent=1) + "\n")
    return 0
