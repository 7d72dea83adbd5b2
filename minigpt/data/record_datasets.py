"""Records as datasets (minigpt/data/dataset.py): a JSONL file's records (minigpt/data/records.py) tokenized into
examples, split (the last VAL_FRACTION held out), fitted to the context and batched, padded on the right.

    Instructions     prompt and completion records, or chats: the loss counts the assistant's tokens only
    Classification   text and label records: a classifier's head reads each text's <|extract|> token
    Preferences      prompt, chosen and rejected records: pairs of completions for DPO (minigpt/objectives.py)

    records = open_records("train.jsonl", tokenizer)   # Instructions, Classification or Preferences, by the records

Causal attention never looks right, so a record's logits, and its loss, do not depend on what it is batched with
(tested: tests/test_records.py). Docs: docs/finetuning.md.
"""

from abc import abstractmethod
from typing import NamedTuple

import numpy as np

from minigpt import interrupt
from minigpt.data.dataset import Batch, Dataset
from minigpt.data.records import (EXTRACT, MAX_LABELS, PLAIN, PREFERENCE_KINDS, VAL_FRACTION, RecordFile,
                                  characters_of, chat_tokenizer, check_string, conversation, preference_conversations,
                                  read_records, role_tokens, special_tokens_of, stop_tokens, template_for,
                                  tokenize_conversation)
from minigpt.data.text import encode_text
from minigpt.ops.cross_entropy import IGNORE_INDEX


class Example(NamedTuple):
    """A record, tokenized."""
    ids: np.ndarray  # (n,) int64 the tokens
    trained: np.ndarray | None  # (n,) bool, which tokens the loss counts (instruction); None for classification
    label: int | None  # the class (classification)
    line: int  # where the record is in its file

    @property
    def length(self) -> int:
        return len(self.ids)


def open_records(path, tokenizer=None, labels=None, n_val: int | None = None) -> "Records":
    """The dataset of a JSONL file of instruction, classification or preference records: see dataset_of."""
    return dataset_of(read_records(path), tokenizer, labels, n_val)


def dataset_of(file: RecordFile, tokenizer=None, labels=None, n_val: int | None = None) -> "Records":
    """The records of a file as a dataset, Instructions, Classification or Preferences by their kind. tokenizer: the
    model's (a fine-tune's), or one to build from the records' characters (None). labels: a classification run's
    label names, in order (a fine-tuned classifier keeps its own); None: the sorted labels of the file. n_val: how many
    of the last records are held out (None: VAL_FRACTION of them). Multiple-choice records, which minigpt eval scores, are no
    dataset to train on."""
    if file.kind == "choice":
        raise ValueError(f"{file.path} holds multiple-choice records, which minigpt eval scores; train on prompt and "
                         f"completion, chat, or text and label records")
    if tokenizer is None:
        tokenizer = characters_of(file)
    if file.kind == "classification":
        return Classification(file, tokenizer, labels, n_val)
    if file.kind in PREFERENCE_KINDS:
        return Preferences(file, tokenizer, n_val)
    return Instructions(file, tokenizer, n_val)


BATCH = 64  # records a batch when a whole set of them is scored


def batches(items: list, size: int = BATCH):
    """The items, `size` at a time; a stop (Ctrl-C, SIGTERM, SIGHUP) is acted on between two (interrupt.check)."""
    for i in range(0, len(items), size):
        interrupt.check()
        yield items[i:i + size]


class Records(Dataset):
    """A file's records as a dataset (minigpt/data/dataset.py): tokenized into examples by a subclass, Instructions or
    Classification, split (the last VAL_FRACTION held out), fitted to the context and batched, padded on the right."""

    only_target: int  # the tokens at a record's end that are only targets, never read: T is its length less these

    def __init__(self, file: RecordFile, tokenizer, examples: list, n_val: int | None):
        self.source, self.identity, self.tokenizer, self.examples = file.path, file.identity, tokenizer, examples
        self.kind = file.kind
        if n_val is None:
            n_val = max(1, int(len(examples) * VAL_FRACTION)) if len(examples) > 1 else 0
        self.splits = {"train": examples[:len(examples) - n_val] or examples,
                       "val": examples[len(examples) - n_val:] or examples}
        # too few records to hold any out: both splits are all of them, and the held-out scores measure memory
        self.val_is_train = not 0 < len(examples) - n_val < len(examples)

    @property
    def pad_token(self) -> int:
        """The eos token, which pads (a classification record ends with EXTRACT, the last token that is not padding:
        what Hugging Face's *ForSequenceClassification reads)."""
        return self.tokenizer.special_tokens[role_tokens(self.tokenizer)["eos_token"]]

    @property
    def sequence_length(self) -> int:
        """The longest batch's T: a record's tokens, less those only targets."""
        return max(e.length for e in self.examples) - self.only_target

    def fit(self, block_size: int, truncate: bool = False) -> list:
        """Every record within the context (fit_examples), and both splits left with records; the lines returned say
        what --truncate did, and that too few records were given to hold any out."""
        said = self.fit_examples(block_size, truncate)
        for split, name in (("train", "training"), ("val", "held-out")):
            if not self.splits[split]:
                raise ValueError(f"--truncate dropped every {name} record of {self.source}: their prompts alone "
                                 f"fill the context of {block_size} tokens; shorten them, or raise --block-size")
        notices = [] if said is None else [said]
        if self.val_is_train:
            notices.append(f"{self.source} holds {len(self.examples)} record{'s' * (len(self.examples) != 1)}, too few "
                           f"to hold any out: the held-out loss and accuracy are measured on the training records "
                           f"themselves")
        return notices

    def fit_examples(self, block_size: int, truncate: bool = False) -> str | None:
        """Every record within a context of block_size tokens. A longer record is an error naming its line; with
        truncate, it is cut to fit (cut) or, when nothing to learn is left, dropped, and the line returned says
        how many were (None: every record fits as it is)."""
        limit = block_size + self.only_target
        long = [e for e in self.examples if e.length > limit]
        if not long:
            return None
        if not truncate:
            others = f" (and {len(long) - 1} more record{'s' * (len(long) > 2)})" if len(long) > 1 else ""
            raise ValueError(f"{self.source} line {long[0].line} has {long[0].length} tokens, more than the model's "
                             f"context of {block_size} takes{others}; shorten it, train with a larger --block-size, "
                             f"or give --truncate to cut such records to fit")
        total = len(self.examples)
        fitted = {e.line: self.cut(e, limit) for e in long}  # line -> the record cut to fit, or None: dropped
        def kept(examples: list) -> list:
            return [fitted.get(e.line, e) for e in examples if fitted.get(e.line, e) is not None]

        self.examples, self.splits = kept(self.examples), {name: kept(split) for name, split in self.splits.items()}
        dropped = sum(e is None for e in fitted.values())
        if not self.examples:
            raise ValueError(f"every record of {self.source} is longer than the model's context of {block_size} tokens "
                             f"with its prompt alone, so --truncate leaves nothing; shorten the prompts, or train with "
                             f"a larger --block-size")
        said = f"--truncate: {len(long) - dropped} of the {total} records of {self.source} cut to the context of " \
               f"{block_size} tokens"
        return said + (f", {dropped} dropped (no token of their completion fits)" if dropped else "")

    @abstractmethod
    def cut(self, example: Example, limit: int) -> Example | None:
        """A record cut to `limit` tokens, as TRL's SFTTrainer and Hugging Face's tokenizers truncate; None: dropped."""

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        """B random records of the split: see batch."""
        examples = self.splits[split]
        return self.batch([examples[i] for i in rng.integers(0, len(examples), size=batch_size)])

    @abstractmethod
    def batch(self, examples: list) -> Batch:
        """Records padded on the right to the longest."""

    def split_size(self, split: str) -> tuple[int, str, int]:
        """The split's records; a row reads one."""
        return len(self.splits[split]), f"records of {self.source}", 1


def instruction_rows(examples: list, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Examples of instructions (ids and trained) padded on the right: x (B, T), and y (B, T) the next tokens where
    the loss counts them, ignore_index elsewhere (padding, prompts)."""
    B = len(examples)
    T = max(len(ids) for ids, _ in examples) - 1
    x = np.full((B, T), pad, dtype=np.int64)  # (B, T)
    y = np.full((B, T), IGNORE_INDEX, dtype=np.int64)  # (B, T)
    for b, (ids, trained) in enumerate(examples):
        n = len(ids) - 1
        x[b, :n] = ids[:-1]
        y[b, :n] = np.where(trained[1:], ids[1:], IGNORE_INDEX)
    return x, y


def tokenized(tokenizer, template: str, messages: list, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A conversation's (ids, trained) (records.tokenize_conversation), or a ValueError naming where it is; one whose
    assistant's turn is empty, nothing to learn, refused."""
    try:
        ids, trained = tokenize_conversation(tokenizer, template, messages)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if not trained[1:].any():
        raise ValueError(f"{where}: the assistant's turn is empty, so there is nothing to learn")
    return ids, trained


class Instructions(Records):
    """Prompt and completion records, or chats: each a conversation rendered into text by a chat template and
    tokenized, whose loss counts the assistant's tokens only."""

    only_target = 1  # a record's last token is only a target, never read
    EXACT_MATCH_LIMIT = 256  # held-out records a run's evaluation decodes, for their exact match

    def __init__(self, file: RecordFile, tokenizer, n_val: int | None = None):
        self.template = template_for(tokenizer, file.kind)
        tokenizer = chat_tokenizer(tokenizer, self.template)
        examples = []
        for n, record in file.records:
            where = f"{file.path} line {n}"
            ids, trained = tokenized(tokenizer, self.template, conversation(record, file.kind, where), where)
            examples.append(Example(ids, trained, None, n))
        super().__init__(file, tokenizer, examples, n_val)

    def cut(self, example: Example, limit: int) -> Example | None:
        """Cut on the right: its prompt kept, its completion cut short; None if no token of the completion is left."""
        trained = example.trained[:limit]
        if not trained[1:].any():
            return None
        return example._replace(ids=example.ids[:limit], trained=trained)

    def batch(self, examples: list) -> Batch:
        """x (B, T) and y (B, T), the next tokens where the loss counts them and ignore_index elsewhere (padding,
        prompts)."""
        return Batch(*instruction_rows([(e.ids, e.trained) for e in examples], self.pad_token))

    def exact_match(self, model, examples: list) -> float:
        """The fraction of examples whose greedy completion is exactly the expected one, stop token included: prompts
        of one length are decoded together."""
        stops = stop_tokens(self.tokenizer)
        by_length = {}
        for e in examples:
            prompt, expected = split_last_turn(e, stops)
            by_length.setdefault(len(prompt), []).append((prompt, expected))
        correct = 0
        for pairs in by_length.values():
            for group in batches(pairs, 256):
                prompts = np.stack([p for p, _ in group])  # (b, P)
                n = max(len(e) for _, e in group)
                n = min(n, model.config.block_size - prompts.shape[1])
                out = model.generate(prompts, n, do_sample=False)[:, prompts.shape[1]:]  # (b, n)
                correct += sum(len(e) <= n and np.array_equal(o[:len(e)], e) for o, (_, e) in zip(out, group))
        return correct / len(examples)

    def accuracy(self, model, split: str = "val") -> float:
        """The exact match of greedy completions on the split's first EXACT_MATCH_LIMIT records."""
        return self.exact_match(model, self.splits[split][:self.EXACT_MATCH_LIMIT])

    @property
    def stops(self) -> set:
        """The tokens that end a completion (an assistant's turn)."""
        return stop_tokens(self.tokenizer)

    def what_next(self, out_dir: str) -> str:
        """A model of instructions talks."""
        return (f"talk with it: minigpt chat --out-dir {out_dir} (one reply: minigpt sample --out-dir {out_dir} --chat "
                f"--prompt TEXT)")


def split_last_turn(example: Example, stops: set) -> tuple:
    """(prompt ids, expected ids) of an instruction example: everything before its last trained run of tokens, and
    that run up to and including its first stop token (what greedy decoding must produce before it stops)."""
    trained = example.trained
    end = len(trained) - int(np.argmax(trained[::-1]))  # one past the last trained token
    start = end
    while start > 0 and trained[start - 1]:
        start -= 1
    expected = example.ids[start:end]
    for i, t in enumerate(expected):
        if int(t) in stops:
            expected = expected[:i + 1]
            break
    return example.ids[:start], expected


class Classification(Records):
    """Text and label records: each text's tokens and <|extract|>, where the classifier's head reads its label."""

    only_target = 0  # the head reads every token, <|extract|> last

    def __init__(self, file: RecordFile, tokenizer, labels=None, n_val: int | None = None):
        # eos pads; EXTRACT ends each text, a position of its own for the head to read (its row starts as the mean)
        tokenizer = tokenizer.with_chat([*special_tokens_of(PLAIN, tokenizer), EXTRACT], tokenizer.chat_template)
        extract = np.array([tokenizer.special_tokens[EXTRACT]])
        path, records = file.path, file.records
        for n, r in records:
            check_string(r["text"], "text", f"{path} line {n}")
            if not isinstance(r["label"], (str, int)) or isinstance(r["label"], bool):
                raise ValueError(f"{path} line {n}: label must be a string or an integer, got {r['label']!r:.40}")
        found = sorted({str(r["label"]) for _, r in records})
        self.labels = tuple(labels) if labels is not None else tuple(found)
        if len(self.labels) < 2 or len(self.labels) > MAX_LABELS:
            raise ValueError(f"{path} has {len(self.labels)} labels; classification needs 2 to {MAX_LABELS}")
        index = {name: i for i, name in enumerate(self.labels)}
        examples = []
        for n, r in records:
            if str(r["label"]) not in index:
                raise ValueError(f"{path} line {n}: label {r['label']!r} is not one of the model's "
                                 f"{', '.join(self.labels)}")
            try:
                ids = encode_text(tokenizer, r["text"])
            except ValueError as e:
                raise ValueError(f"{path} line {n}: {e}") from None
            if len(ids) == 0:
                raise ValueError(f"{path} line {n}: the text is empty")
            examples.append(Example(np.concatenate([ids, extract]), None, index[str(r["label"])], n))
        super().__init__(file, tokenizer, examples, n_val)

    def cut(self, example: Example, limit: int) -> Example | None:
        """The text cut before its <|extract|>, which the head reads and which therefore stays last (a tokenizer
        truncates a text before it adds its special tokens)."""
        if limit < 2:  # (no room for a token of the text beside <|extract|>)
            return None
        return example._replace(ids=np.concatenate([example.ids[:limit - 1], example.ids[-1:]]))

    def batch(self, examples: list) -> Batch:
        """x (B, T), y (B, T) its language-modelling targets (the text's next tokens, ignore_index elsewhere), last
        (B,) the position of each record's last token, and labels (B,)."""
        B = len(examples)
        T = max(len(e.ids) for e in examples)
        x = np.full((B, T), self.pad_token, dtype=np.int64)  # (B, T)
        y = np.full((B, T), IGNORE_INDEX, dtype=np.int64)  # (B, T)
        for b, e in enumerate(examples):
            x[b, :len(e.ids)] = e.ids
            y[b, :len(e.ids) - 2] = e.ids[1:-1]  # the text's next tokens (not EXTRACT, which is no text)
        last = np.array([len(e.ids) - 1 for e in examples], dtype=np.int64)  # (B,) EXTRACT's position
        labels = np.array([e.label for e in examples], dtype=np.int64)  # (B,)
        return Batch(x, y, last, labels)

    def predict(self, model, examples: list) -> np.ndarray:
        """The classifier's label for each example, (N,): the argmax of its scores."""
        out = []
        for group in batches(examples):
            batch = self.batch(group)
            scores, _ = model.forward(batch.x, keep_cache=False, last=batch.last)  # (b, K)
            out.append(np.argmax(scores, axis=1))
        return np.concatenate(out)

    def accuracy(self, model, split: str = "val") -> float:
        """The fraction of the split's records whose label the classifier predicts."""
        examples = self.splits[split]
        truth = np.array([e.label for e in examples])  # (N,)
        return float(np.mean(self.predict(model, examples) == truth))

    def what_next(self, out_dir: str) -> str:
        """A classifier is scored."""
        return f"score it with: minigpt eval --out-dir {out_dir} --data HELD-OUT.jsonl"


class Pair(NamedTuple):
    """A preference record, tokenized: the prompt with each completion, as an instruction example's ids and trained."""
    chosen: tuple  # (ids (n,) int64, trained (n,) bool)
    rejected: tuple
    index: int  # the record's place in the file: its row of the reference's log-probabilities
    line: int

    @property
    def length(self) -> int:
        return max(len(self.chosen[0]), len(self.rejected[0]))


class Preferences(Records):
    """Prompt, chosen and rejected records (or TRL's conversational form): the prompt with each completion, rendered
    and tokenized as instructions are, the loss counting the completions' tokens. A batch of B pairs is the chosen
    rows, then the rejected ones (2B, T), with the reference's log-probability of each row's completion (the model
    the run started from: computed once, keep_reference)."""

    only_target = 1
    SCORE_LIMIT = 1024  # held-out pairs a run's evaluation scores, for its preference accuracy

    def __init__(self, file: RecordFile, tokenizer, n_val: int | None = None):
        self.template = template_for(tokenizer, file.kind)
        tokenizer = chat_tokenizer(tokenizer, self.template)
        examples = []
        for i, (n, record) in enumerate(file.records):
            where = f"{file.path} line {n}"
            examples.append(Pair(*(tokenized(tokenizer, self.template, messages, where)
                                   for messages in preference_conversations(record, file.kind, where)), i, n))
        super().__init__(file, tokenizer, examples, n_val)
        self.n_records = len(examples)
        self.reference = None  # (records, 2) float64 log pi_ref of each record's chosen and rejected completions

    def cut(self, pair: Pair, limit: int) -> Pair | None:
        """Both completions cut on the right; None if either loses every token."""
        cut = [(ids[:limit], trained[:limit]) for ids, trained in (pair.chosen, pair.rejected)]
        if not all(trained[1:].any() for _, trained in cut):
            return None
        return pair._replace(chosen=cut[0], rejected=cut[1])

    def rows(self, pairs: list) -> tuple[np.ndarray, np.ndarray]:
        """x, y (2B, T): the chosen completions' rows, then the rejected ones'."""
        return instruction_rows([p.chosen for p in pairs] + [p.rejected for p in pairs], self.pad_token)

    def batch(self, pairs: list) -> Batch:
        if self.reference is None:
            raise ValueError("a batch of preference pairs needs the reference's log-probabilities: keep_reference "
                             "first")
        reference = np.concatenate([self.reference[[p.index for p in pairs], k] for k in (0, 1)])  # (2B,)
        return Batch(*self.rows(pairs), reference=reference)

    def scores(self, model, pairs: list) -> np.ndarray:
        """log pi(chosen), log pi(rejected) of each pair under the model, (N, 2) float64, in evaluation mode."""
        was_training = model.training
        model.eval()
        try:
            out = []
            for group in batches(pairs, BATCH // 2):
                logp, _ = model.completion_logprobs(*self.rows(group), keep_cache=False)  # (2b,)
                out.append(logp.reshape(2, -1).T)  # (b, 2)
            return np.concatenate(out)
        finally:
            model.train(was_training)

    def keep_reference(self, model, saved: list | None, resumed: bool) -> None:
        """The reference's log-probabilities: a fresh run's from the model it starts from (before its first step);
        a resumed run's as its checkpoint saved them (saved, a list of [chosen, rejected] a record)."""
        if not resumed:
            self.reference = np.zeros((self.n_records, 2))  # (a record --truncate dropped keeps a row of zeros)
            self.reference[[p.index for p in self.examples]] = self.scores(model, self.examples)
            return
        try:
            reference = np.asarray(saved if saved is not None else [], dtype=np.float64)
        except (ValueError, TypeError):  # (a state.json whose list holds other than numbers)
            reference = np.zeros(0)
        if reference.shape != (self.n_records, 2) or not np.isfinite(reference).all():
            raise ValueError(f"the checkpoint has no reference log-probabilities for the {self.n_records} preference "
                             f"records of {self.source}: it was not saved by a --method dpo run on them")
        self.reference = reference

    def accuracy(self, model, split: str = "val") -> float:
        """The fraction of the split's first SCORE_LIMIT pairs whose chosen completion the model gives a higher
        log-probability than the rejected one: its own preference, with no reference (the log shows DPO's reward
        accuracy, measured against the reference, on the training batches)."""
        logp = self.scores(model, self.splits[split][:self.SCORE_LIMIT])  # (N, 2)
        return float(np.mean(logp[:, 0] > logp[:, 1]))

    def what_next(self, out_dir: str) -> str:
        return (f"score its preferences: minigpt eval --out-dir {out_dir} --data PAIRS.jsonl; talk with it: minigpt "
                f"chat --out-dir {out_dir}")
