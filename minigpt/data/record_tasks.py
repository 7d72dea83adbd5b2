"""Fine-tuning tasks that ship with minigpt: JSONL records made here, from the synthetic tasks and from Tiny
Shakespeare, so that every mode of `minigpt train --data F.jsonl` can be tried without a download.

    sort-instruct         {"prompt": "201102=", "completion": "001122"}: the sort task as instructions
    add-instruct          {"prompt": "85+50=", "completion": "135"}: two-digit addition as instructions
    shakespeare-speakers  {"text": "a line", "label": "PETRUCHIO"}: who says the line (classification)
    shakespeare-instruct  {"prompt": "PETRUCHIO:\n", "completion": "a line"}: a line in a speaker's voice

Each task's records are written once into the cache directory (minigpt.files.cache_dir), held-out records last, and
read as any JSONL file is (minigpt/data/records.py). The Shakespeare tasks take the lines of the four speakers with
the most lines (Gloucester, Duke Vincentio, Menenius, Romeo: four plays), all in the text's training split, and split
them by position: the last HELD_OUT of each speaker's lines are held out, so no held-out line, nor any line after it
in that speaker's part, is trained on with its label. (A model pretrained by `minigpt train` has read every one of
them as plain text, without its speaker: what pretraining on unlabeled text gives the fine-tune.) Docs:
docs/finetuning.md.
"""

import json
from pathlib import Path

from minigpt.data.tasks import AddTask, SortTask
from minigpt.data.text import TRAIN_FRACTION, find_text
from minigpt.files import atomic_write, cache_dir

SPEAKERS = ("GLOUCESTER", "DUKE VINCENTIO", "MENENIUS", "ROMEO")
HELD_OUT = 0.2
MAX_LINE = 63  # characters: a line and its end fit the default model's context of 64


def sort_records() -> tuple[list, int]:
    task = SortTask()
    digits = lambda q: "".join(str(d) for d in q)  # noqa: E731
    records = [{"prompt": digits(q) + "=", "completion": digits(a)}
               for split in ("train", "val") for q, a in zip(task.problems[split], task.answer(task.problems[split]))]
    return records, len(task.problems["val"])


def add_records() -> tuple[list, int]:
    task = AddTask()
    records = []
    for split in ("train", "val"):
        for q in task.problems[split]:
            a, b = int("".join(map(str, q[:2]))), int("".join(map(str, q[2:])))
            records.append({"prompt": f"{a}+{b}=", "completion": str(a + b)})
    return records, len(task.problems["val"])


def speeches(text: str):
    """(offset, speaker, lines) of every speech of the text: a block after a blank line whose first line is a name
    and a colon."""
    offset = 0
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":"):
            yield offset, lines[0][:-1], lines[1:]
        offset += len(block) + 2


def shakespeare_lines(text: str) -> tuple[list, list]:
    """(speaker, line) of SPEAKERS in the text's training split: each speaker's first lines, and the last HELD_OUT."""
    cut = int(len(text) * TRAIN_FRACTION)
    parts = {speaker: [] for speaker in SPEAKERS}
    for offset, speaker, lines in speeches(text):
        if speaker in parts and offset < cut:
            parts[speaker].extend((speaker, line) for line in lines if 0 < len(line) <= MAX_LINE)
    train, val = [], []
    for part in parts.values():
        n = int(len(part) * (1 - HELD_OUT))
        train, val = train + part[:n], val + part[n:]
    return train, val


def speaker_records(text: str) -> tuple[list, int]:
    train, val = shakespeare_lines(text)
    return [{"text": line, "label": speaker} for speaker, line in train + val], len(val)


def speaker_instruct_records(text: str) -> tuple[list, int]:
    """The lines that fit the default context with their prompt and end token: "NAME:\n", the line and the end
    token, at most 65 tokens, are the model's 64 inputs and their targets."""
    fits = lambda pair: len(pair[0]) + 2 + len(pair[1]) + 1 <= MAX_LINE + 2  # noqa: E731
    train, val = (list(filter(fits, part)) for part in shakespeare_lines(text))
    return [{"prompt": f"{speaker}:\n", "completion": line} for speaker, line in train + val], len(val)


RECORD_TASKS = {"sort-instruct": sort_records, "add-instruct": add_records,
                "shakespeare-speakers": speaker_records, "shakespeare-instruct": speaker_instruct_records}


def build(name: str, data: str | None = None) -> tuple[Path, int]:
    """The task's JSONL file (written once into the cache directory) and its number of held-out records, the last."""
    make = RECORD_TASKS[name]
    if name.startswith("shakespeare"):
        source = find_text(data)
        records, n_val = make(source.read_text(encoding="utf-8"))
    else:
        records, n_val = make()
    return write_records(name, records), n_val


def write_records(name: str, records: list) -> Path:
    """The records, one JSON object a line, in the cache directory's tasks/NAME.jsonl: written once, and again only if
    they changed (atomically: a run reading the file never sees half of it)."""
    path = cache_dir() / "tasks" / f"{name}.jsonl"
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not path.is_file() or path.read_text(encoding="utf-8") != lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(lines)
    return path
