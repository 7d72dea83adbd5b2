"""The applications' report card: one page that shows every figure of a run of the whole pipeline (corpus, tokenizer,
base model, each fine-tune, each evaluation), as Markdown (report.md) and as a self-contained HTML page (report.html:
its style inline, no script, nothing fetched, so it opens offline and can be mailed).

    rows = [Evaluation(read_result("eval/summary-lead.json"), "minigpt eval --task docstring-summary --baseline "
                       "lead --json eval/summary-lead.json"), ...,
            Evaluation(read_result("eval/summary-tuned.json"), "minigpt eval --task ...", model="fine-tuned")]
    card = ReportCard(this_machine(), steps, (table(rows), ...))
    write(card, out_dir)   # -> (out_dir / "report.md", out_dir / "report.html")

A table's rows are read from the JSON files `minigpt eval --task NAME --json OUT` writes (read_result): its settings
(task, split, shots, num_beams, baseline) and the model it scored (which the pipeline knows) say which row it is, its
metric keys (rouge1, bleu, f1, accuracy, ...) fill the columns, and its predictions give the examples a reader looks
at. The texts shown (sources, references, the
model's outputs) are untrusted: every one is escaped, in both files. Docs: docs/applications.md. Tests:
tests/test_report.py.
"""

import datetime
import html
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from minigpt.applications.tasks import read_split
from minigpt.files import atomic_write

# The metric keys of an evaluation's JSON (minigpt.metrics.score, minigpt.evaluation.classification_scores), in the
# order a table shows them, with their column headers and how each is printed: the text metrics are on a 0-100 scale
# (as papers report them), accuracy and macro F1 fractions (as minigpt eval prints them).
METRICS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "bleu": "BLEU", "chrf": "chrF",
           "exact_match": "exact match", "f1": "F1", "accuracy": "accuracy", "macro_f1": "macro F1"}
DIGITS = {"accuracy": 3, "macro_f1": 3}  # decimals; the others 1
MODELS = ("base", "fine-tuned", "LoRA")  # which model an evaluation scored (the pipeline knows; its JSON does not)
EXAMPLES = 3  # predictions shown per task


@dataclass(frozen=True)
class Machine:
    cpu: str  # the CPU's model name, as lscpu prints it
    cores: int  # logical cores the run could use
    date: str  # ISO date of the run


@dataclass(frozen=True)
class Step:
    name: str  # "base model", "fine-tune docstring-summary", ...
    command: str  # the command line that ran it, as a reader would type it
    seconds: float  # its wall time


@dataclass(frozen=True)
class Row:
    setting: str  # a baseline's name, "zero-shot", "few-shot (K)", "fine-tuned" or "LoRA"
    command: str  # the command that produced the scores
    scores: dict  # metric key (METRICS) -> value


@dataclass(frozen=True)
class Example:
    source: str  # what the model was given (a docstring's body, a Spanish verse, a context and question, a definition)
    reference: str  # the test split's answer
    prediction: str  # the fine-tuned model's


@dataclass(frozen=True)
class Table:
    task: str
    main: str  # the task's main metric (a key of METRICS): the one the fine-tuned model must win on
    rows: tuple  # of Row
    signatures: tuple = ()  # (column, signature): sacreBLEU's, of the BLEU and chrF columns (what changes them)
    examples: tuple = ()  # of Example

    @property
    def metrics(self) -> tuple:
        """The columns: every metric any row holds, in METRICS's order."""
        return tuple(key for key in METRICS if any(key in row.scores for row in self.rows))


@dataclass(frozen=True)
class ReportCard:
    machine: Machine
    steps: tuple  # of Step, in the order they ran
    tables: tuple  # of Table, one per task
    title: str = "minigpt's applications: the report card"
    note: str = ""  # said under the machine: what the run reused rather than made (a base model trained before)


def cpu_name() -> str:
    """The CPU's model name: lscpu's "Model name", else /proc/cpuinfo's "model name", else "unknown CPU"."""
    try:
        listed = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
    except OSError:  # no lscpu (not Linux, or util-linux missing)
        listed = ""
    found = re.search(r"^Model name:\s*(.+)$", listed, re.MULTILINE)
    if found is None and Path("/proc/cpuinfo").is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    return found.group(1).strip() if found else "unknown CPU"


def this_machine() -> Machine:
    return Machine(cpu_name(), os.cpu_count() or 1, datetime.date.today().isoformat())


# The keys of an evaluation's JSON (minigpt/applications/evaluate.py, scored) that say which row it is and what it
# predicted, with the types they must have.
SETTINGS = {"task": (str,), "split": (str,), "shots": (int,), "num_beams": (int,), "baseline": (str, type(None)),
            "main_metric": (str,), "ids": (list,), "references": (list,), "predictions": (list,)}


def read_result(path) -> dict:
    """The JSON of `minigpt eval --task NAME --json OUT`, checked: one line naming the file and what is wrong."""
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: not JSON ({e.msg}); write it with minigpt eval --task NAME "
                         f"--json {path}") from None
    if type(result) is not dict:
        raise ValueError(f"{path}: expected a JSON object of minigpt eval --task NAME --json, found a "
                         f"{type(result).__name__}")
    for key, types in SETTINGS.items():
        if key not in result or type(result[key]) not in types:
            raise ValueError(f"{path}: no {key!r} of type {' or '.join(t.__name__ for t in types)}; is it the JSON "
                             f"of minigpt eval --task NAME --json?")
    if result["main_metric"] not in METRICS:
        raise ValueError(f"{path}: main_metric {result['main_metric']!r} is none of {', '.join(METRICS)}")
    for key in METRICS:
        if key in result and type(result[key]) not in (int, float):
            raise ValueError(f"{path}: metric {key!r} is {result[key]!r}, not a number")
    if not len(result["ids"]) == len(result["references"]) == len(result["predictions"]):
        raise ValueError(f"{path}: {len(result['ids'])} ids, {len(result['references'])} references and "
                         f"{len(result['predictions'])} predictions; they go in threes, one per record scored")
    return result


class Evaluation(NamedTuple):
    """One row's evaluation: its JSON (read_result), the command that wrote it, and the model it scored."""
    result: dict
    command: str
    model: str = "base"  # one of MODELS; a baseline's row scored none, and says "base"


def setting(result: dict, model: str) -> str:
    """The row's name: a baseline's own name; the base model's "zero-shot" or "few-shot (K)"; "fine-tuned" or "LoRA",
    with ", N beams" where it decoded with beam search."""
    if model not in MODELS:
        raise ValueError(f"model {model!r} is none of {', '.join(MODELS)}")
    if result["baseline"] is not None:
        return result["baseline"]
    if model == "base":
        return f"few-shot ({result['shots']})" if result["shots"] > 0 else "zero-shot"
    return f"{model}, {result['num_beams']} beams" if result["num_beams"] > 1 else model


def row(evaluation: Evaluation) -> Row:
    result = evaluation.result
    return Row(setting(result, evaluation.model), evaluation.command,
               {key: float(result[key]) for key in METRICS if key in result})


def signatures(results: list) -> tuple:
    """sacreBLEU's signatures the evaluations printed (bleu_signature, chrf_signature), each once, in order, with the
    column each is of: ("BLEU", "nrefs:1|case:mixed|...")."""
    found = [(METRICS[key[:-len("_signature")]], result[key]) for result in results
             for key in ("bleu_signature", "chrf_signature") if key in result]
    return tuple(dict.fromkeys(found))


def source_of(record: dict) -> str:
    """What the model read, for a reader: the source (summary, translation), the context and question (QA), the text."""
    if "question" in record:
        return f"{record['context']} | {record['question']}"
    return record["source"] if "source" in record else record["text"]


def examples(result: dict, records: list, k: int = EXAMPLES) -> tuple:
    """The first k records an evaluation scored: each one's source (found by its id in `records`, the split's), its
    reference and the prediction."""
    by_id = {r["id"]: r for r in records}
    missing = [i for i in result["ids"][:k] if i not in by_id]
    if missing:
        raise ValueError(f"record {missing[0]!r} of the {result['task']} evaluation is not in its {result['split']} "
                         f"split: was it scored on other records? Evaluate it again with minigpt eval --task "
                         f"{result['task']}")
    return tuple(Example(source_of(by_id[i]), reference, prediction) for i, reference, prediction
                 in zip(result["ids"][:k], result["references"][:k], result["predictions"][:k]))


def table(evaluations: list, records: list | None = None) -> Table:
    """One task's table from its evaluations (all of one task and split), in their order; the examples are the
    fine-tuned model's (else the LoRA one's), their sources from `records`, the split's (default: the shipped split,
    tasks.read_split)."""
    results = [e.result for e in evaluations]
    task, split = results[0]["task"], results[0]["split"]
    for e in evaluations:
        if (e.result["task"], e.result["split"]) != (task, split):
            raise ValueError(f"`{e.command}` scored the {e.result['task']} task's {e.result['split']} split, and the "
                             f"table's first row the {task} task's {split} split: one table, one task and split")
    tuned = [e.result for model in ("fine-tuned", "LoRA") for e in evaluations
             if e.model == model and e.result["baseline"] is None]
    shown = ()
    if tuned:
        shown = examples(tuned[0], read_split(task, split) if records is None else records)
    return Table(task, results[0]["main_metric"], tuple(row(e) for e in evaluations), signatures(results), shown)


def figure(key: str, value: float) -> str:
    return f"{value:.{DIGITS.get(key, 1)}f}"


def best(table: Table, key: str) -> float:
    return max(row.scores[key] for row in table.rows if key in row.scores)


def hours(seconds: float) -> str:
    """A wall time as a reader reads it: 42 s, 3 min 05 s, 1 h 02 min."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


# Markdown ------------------------------------------------------------------------------------------------------------

def cell(text: str) -> str:
    """Untrusted text as one Markdown table cell: HTML-escaped (Markdown renders raw HTML), pipes escaped, one line."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")  # (quotes are text here)


def markdown(card: ReportCard) -> str:
    m = card.machine
    total = sum(step.seconds for step in card.steps)
    lines = [f"# {cell(card.title)}", "", f"Machine: {cell(m.cpu)}, {m.cores} cores; run on {m.date}; "
             f"the whole pipeline took {hours(total)}.", "", *([cell(card.note), ""] if card.note else []),
             "## The pipeline", "",
             "| step | command | wall time |", "|---|---|---:|"]
    lines += [f"| {cell(s.name)} | `{cell(s.command)}` | {hours(s.seconds)} |" for s in card.steps]
    for t in card.tables:
        lines += ["", f"## {cell(t.task)}", "", f"Main metric: {METRICS[t.main]}.", "",
                  "| setting | " + " | ".join(METRICS[k] for k in t.metrics) + " | command |",
                  "|---|" + "---:|" * len(t.metrics) + "---|"]
        for r in t.rows:
            values = [("**{}**" if k in r.scores and r.scores[k] == best(t, k) else "{}").format(figure(k, r.scores[k]))
                      if k in r.scores else "" for k in t.metrics]
            lines.append(f"| {cell(r.setting)} | " + " | ".join(values) + f" | `{cell(r.command)}` |")
        # (outside a table a pipe is text: a signature's pipes stay as sacreBLEU prints them)
        lines += [""] + [f"sacreBLEU's {column} signature: `{html.escape(s, quote=False)}`  " for column, s in t.signatures]
        if t.examples:
            lines += ["", f"The first {len(t.examples)} records scored, with the fine-tuned model's outputs:", "",
                      "| source | reference | fine-tuned |", "|---|---|---|"]
            lines += [f"| {cell(e.source)} | {cell(e.reference)} | {cell(e.prediction)} |" for e in t.examples]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


# HTML ----------------------------------------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2328; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 0.6rem 0; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; vertical-align: top; text-align: left; }
th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; } code { font: 0.85em ui-monospace, monospace; overflow-wrap: anywhere; }
.note { color: #57606a; } table.examples td { width: 33%; overflow-wrap: anywhere; }
"""


def e(text) -> str:
    return html.escape(str(text))


def page(card: ReportCard) -> str:
    m = card.machine
    total = sum(step.seconds for step in card.steps)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           # nothing may be fetched, not even by a stray URL in a text: no script, no connection, no image
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           f"<title>{e(card.title)}</title><style>{STYLE}</style></head><body>", f"<h1>{e(card.title)}</h1>",
           f'<p id="machine">Machine: {e(m.cpu)}, {m.cores} cores; run on {e(m.date)}; the whole pipeline took '
           f"{hours(total)}.</p>", *([f'<p class="note">{e(card.note)}</p>'] if card.note else []),
           '<h2>The pipeline</h2><table id="pipeline">',
           "<tr><th>step</th><th>command</th><th>wall time</th></tr>"]
    out += [f'<tr><td>{e(s.name)}</td><td><code>{e(s.command)}</code></td><td class="n">{hours(s.seconds)}</td></tr>'
            for s in card.steps]
    out.append("</table>")
    for t in card.tables:
        out += [f'<h2 id="{e(t.task)}">{e(t.task)}</h2>', f'<p class="note">Main metric: {METRICS[t.main]}.</p>',
                f'<table class="scores"><tr><th>setting</th>'
                + "".join(f"<th>{METRICS[k]}</th>" for k in t.metrics) + "<th>command</th></tr>"]
        for r in t.rows:
            cells = "".join((f'<td class="n{" best" if r.scores[k] == best(t, k) else ""}">'
                             f"{figure(k, r.scores[k])}</td>" if k in r.scores else '<td class="n"></td>')
                            for k in t.metrics)
            out.append(f"<tr><td>{e(r.setting)}</td>{cells}<td><code>{e(r.command)}</code></td></tr>")
        out.append("</table>")
        out += [f'<p class="note">sacreBLEU\'s {column} signature: <code>{e(s)}</code></p>'
                for column, s in t.signatures]
        if t.examples:
            out.append(f'<p class="note">The first {len(t.examples)} records scored, with the fine-tuned model\'s '
                       f"outputs:</p>")
            out.append('<table class="examples"><tr><th>source</th><th>reference</th><th>fine-tuned</th></tr>')
            out += [f"<tr><td>{e(x.source)}</td><td>{e(x.reference)}</td><td>{e(x.prediction)}</td></tr>"
                    for x in t.examples]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(card: ReportCard, out_dir) -> tuple:
    """report.md and report.html in out_dir (made if missing), each written whole or not at all."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, htm = out_dir / "report.md", out_dir / "report.html"
    with atomic_write(md) as f:
        f.write(markdown(card))
    with atomic_write(htm) as f:
        f.write(page(card))
    return md, htm
