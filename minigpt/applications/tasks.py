"""The four applications as tasks: what a record holds, how it is put to a model, and how the answer is scored.

    task                application          record                                   prompt -> answer
    docstring-summary   summarisation        {"id", "source", "target"}               "{source}\\nTL;DR:" -> " {target}"
    bible-translation   translation          {"id", "source", "target"}               "Spanish: {source}\\nEnglish:"
    wordnet-qa          question answering   {"id", "context", "question", "answer"}  "{context}\\nQ: {question}\\nA:"
    wordnet-category    classification       {"id", "text", "label"}                  "{text}\\nCategory:" -> " artifact"

The prompts are those the GPT-2 paper gave its base model zero-shot ("TL;DR:" after an article, "english sentence =
french sentence" pairs, a document and "Q: ... A:"): a model pretrained on English text has seen such endings, and
continues them; the answer follows a space. Few-shot puts the first K of a fixed, seeded draw of training records, each
its prompt and answer, before the prompt, blocks joined by a blank line; as many of the K as fit the context with room
for the answer. Fine-tuning trains on the same prompt and answer (a {"prompt", "completion"} record, which minigpt's
plain template ends with <|endoftext|>), so that the fine-tuned model answers the zero-shot prompt; the category task
fine-tunes a classifier's head on {"text", "label"} records instead, and asks a base model a multiple choice between
the labels' words.

The records are shipped in minigpt/applications/data/<task>/{train,val,test}.jsonl (extracted by
minigpt/applications/extract.py); `minigpt train --task NAME` writes the task's training file once into the cache
(build), the validation records held out last. Scoring: minigpt/applications/evaluate.py. Docs: docs/applications.md.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigpt.data.record_tasks import write_records
from minigpt.data.records import read_jsonl

DATA = Path(__file__).resolve().parent / "data"  # the shipped records: DATA / task / f"{split}.jsonl"
SPLITS = ("train", "val", "test")
FEW_SHOT_SEED = 0  # the draw of training records that few-shot prompts show, the same for every record scored
SEPARATOR = "\n\n"  # between the blocks of a few-shot prompt, as between the GPT-2 paper's examples


@dataclass(frozen=True)
class Task:
    """One application: its records' keys, its prompt, its answer, and how it is scored."""
    name: str
    application: str  # "summarisation", "translation", "question answering" or "classification"
    fields: tuple[str, ...]  # the keys of a record, besides "id": each a non-empty string
    template: str  # the prompt, from the record's fields (str.format: a field's braces stay as they are)
    answer_field: str  # the field the model answers with
    metrics: tuple[str, ...]  # minigpt.metrics.score's names; () for classification, scored by accuracy and F1
    main: str  # the metric a table is ranked by
    max_new_tokens: int  # the most tokens an answer is given (the targets are at most 200 characters)

    def prompt(self, record: dict) -> str:
        return self.template.format(**record)

    def answer(self, record: dict) -> str:
        """What follows the prompt: a space and the answer (a label as its word: label_word)."""
        if self.application == "classification":
            return label_word(record["label"])
        return " " + record[self.answer_field]


TASKS = {task.name: task for task in (
    Task("docstring-summary", "summarisation", ("source", "target"), "{source}\nTL;DR:", "target",
         ("rouge",), "rougeL", 64),
    Task("bible-translation", "translation", ("source", "target"), "Spanish: {source}\nEnglish:", "target",
         ("bleu", "chrf"), "bleu", 96),
    Task("wordnet-qa", "question answering", ("context", "question", "answer"), "{context}\nQ: {question}\nA:",
         "answer", ("squad",), "f1", 64),
    Task("wordnet-category", "classification", ("text", "label"), "{text}\nCategory:", "label", (), "accuracy", 8),
)}


def task_named(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[name]


# the lexicographer files whose name after the part of speech is no word a text would end with: WordNet's own
# descriptions of them (lexnames(5WN): "all adjective clusters", "relational adjectives (pertainyms)", "all adverbs")
LABEL_WORDS = {"adj.all": "adjective", "adj.pert": "relational", "adv.all": "adverb"}


def label_word(label: str) -> str:
    """A label as the word a base model is asked to continue with: a lexicographer file's name after its part of
    speech, "noun.artifact" -> " artifact", or its LABEL_WORDS word."""
    return " " + LABEL_WORDS.get(label, label.rsplit(".", 1)[-1])


def label_words(labels) -> list:
    """Each label's word (label_word), in order; two labels of one word could not be told apart: refused."""
    words = [label_word(label) for label in labels]
    for i, word in enumerate(words):
        if words.index(word) != i:
            raise ValueError(f"the labels {labels[words.index(word)]!r} and {labels[i]!r} are both the word "
                             f"{word.strip()!r} to a base model, which cannot tell them apart; score a fine-tuned "
                             f"classifier instead")
    return words


def read_split(task: str, split: str, data_dir: Path | None = None) -> list[dict]:
    """The records of a task's split, each checked: exactly "id" and the task's fields, every one a non-empty string;
    ids unique. data_dir: where the tasks' directories are (None: the shipped data)."""
    definition = task_named(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; the splits are {', '.join(SPLITS)}")
    path = (DATA if data_dir is None else Path(data_dir)) / task / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"the {task} task's {split} split is not at {path}: reinstall minigpt, whose package "
                                f"ships them, or extract them again (minigpt data tasks)")
    keys = {"id", *definition.fields}
    records, seen = [], set()
    for n, record in read_jsonl(path):
        if set(record) != keys:
            raise ValueError(f"{path} line {n} has the keys {sorted(record)}; a {task} record has exactly "
                             f"{sorted(keys)}")
        bad = next((k for k in sorted(keys) if not isinstance(record[k], str) or not record[k].strip()
                    or "\0" in record[k]), None)
        if bad is not None:
            raise ValueError(f"{path} line {n}: {bad} must be a non-empty string without NUL characters, got "
                             f"{record[bad]!r:.40}")
        if record["id"] in seen:
            raise ValueError(f"{path} line {n}: the id {record['id']!r} is there twice; ids are unique")
        seen.add(record["id"])
        records.append(record)
    return records


def training_records(task: str, data_dir: Path | None = None) -> tuple[list, int]:
    """The records `minigpt train --task NAME` fine-tunes on, the training split's then the validation split's, and
    how many are held out (the last: the validation split, which the run's evaluation scores)."""
    definition = task_named(task)
    train, val = (read_split(task, split, data_dir) for split in ("train", "val"))
    if definition.application == "classification":  # (the classifier's head: minigpt/data/record_datasets.py)
        return [{"text": r["text"], "label": r["label"]} for r in train + val], len(val)
    return [{"prompt": definition.prompt(r), "completion": definition.answer(r)} for r in train + val], len(val)


def build(task: str, data_dir: Path | None = None) -> tuple[Path, int]:
    """The task's training file (written once into the cache directory, again only if its records changed) and its
    number of held-out records, the last: as minigpt/data/record_tasks.py builds its tasks'."""
    records, n_val = training_records(task, data_dir)
    return write_records(task, records), n_val


def shot_order(n: int) -> np.ndarray:
    """The order in which few-shot prompts take training records: a fixed draw (FEW_SHOT_SEED), (n,)."""
    return np.random.default_rng(FEW_SHOT_SEED).permutation(n)


def few_shot(task: Task, train: list, record: dict, shots: int, count, room: int) -> tuple[str, int]:
    """The prompt for `record` with up to `shots` training examples before it, (text, examples used): the first of
    shot_order's that fit, with the prompt, in `room` tokens as count(text) counts them. A prompt that does not fit
    alone is returned alone (the caller cuts it)."""
    prompt = task.prompt(record)
    blocks = [task.prompt(train[i]) + task.answer(train[i]) for i in shot_order(len(train))[:shots]]
    # an estimate from the blocks' own lengths first (a BPE may merge across a boundary: the whole is counted after)
    sizes = np.cumsum([count(block + SEPARATOR) for block in blocks]) if blocks else np.zeros(0, dtype=np.int64)
    k = int(np.searchsorted(sizes, room - count(prompt), side="right"))
    while k > 0 and count(SEPARATOR.join(blocks[:k] + [prompt])) > room:
        k -= 1
    return SEPARATOR.join(blocks[:k] + [prompt]), k
