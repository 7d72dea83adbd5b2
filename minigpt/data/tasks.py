"""Two synthetic tasks that need no data file, after minGPT's demos. Each has a fixed held-out set and
reports exact-match accuracy on it: the fraction of held-out problems the model answers exactly right
with greedy decoding.

Only the answer is trained on: the targets of the question positions are ignore_index.
"""

import itertools
from abc import abstractmethod

import numpy as np

from minigpt.data.chars import CharTokenizer
from minigpt.data.dataset import Batch, Dataset, refuse_truncate
from minigpt.ops.cross_entropy import IGNORE_INDEX

SPLIT_SEED = 0  # the held-out set is the same whatever the training seed


class Task(Dataset):
    """A synthetic task as a dataset (minigpt/data/dataset.py). Subclasses fill `problems` and define `answer`."""

    name: str
    problems: dict  # split -> (N, question_length) int64 questions
    question_length: int
    answer_length: int

    @property
    def source(self) -> str:
        return f"the {self.name} task"

    @property
    def sequence_length(self) -> int:
        """Tokens the model sees: question + answer, minus the last answer token (which is only a target)."""
        return self.question_length + self.answer_length - 1

    @abstractmethod
    def answer(self, questions: np.ndarray) -> np.ndarray:  # (N, question_length) -> (N, answer_length)
        """Each question's answer."""

    def fit(self, block_size: int, truncate: bool = False) -> list:
        """A task's problems have one length, which the context must hold; there is nothing to cut."""
        refuse_truncate(truncate)
        if block_size < self.sequence_length:
            raise ValueError(f"the {self.name} task needs block_size >= {self.sequence_length}, got {block_size}")
        return []

    def get_batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        """x, y (B, sequence_length): a question and its answer, with only the answer as targets."""
        problems = self.problems[split]
        q = problems[rng.integers(0, len(problems), size=batch_size)]  # (B, question_length)
        seq = np.concatenate([q, self.answer(q)], axis=1)  # (B, question_length + answer_length)
        x = seq[:, :-1]  # (B, sequence_length)
        y = seq[:, 1:].copy()  # (B, sequence_length)
        y[:, : self.question_length - 1] = IGNORE_INDEX  # no loss on predicting the question itself
        return Batch(x, y)

    def split_size(self, split: str) -> tuple[int, str, int]:
        """The split's problems; a row reads one."""
        return len(self.problems[split]), f"problems of the {self.name} task", 1

    def accuracy(self, model, split: str = "val", batch_size: int = 512) -> float:
        """Exact-match accuracy of greedy decoding over every problem of `split`."""
        problems = self.problems[split]
        correct = 0
        for i in range(0, len(problems), batch_size):
            q = problems[i:i + batch_size]  # (b, question_length)
            out = model.generate(q, self.answer_length, do_sample=False)[:, self.question_length:]  # (b, answer_length)
            correct += int(np.all(out == self.answer(q), axis=1).sum())
        return correct / len(problems)

    def what_next(self, out_dir: str) -> str:
        """A question of the held-out set, and room for the answer alone."""
        question = self.tokenizer.decode(self.problems["val"][0])
        return (f"try it with: minigpt sample --out-dir {out_dir} --prompt {question} --max-new-tokens "
                f"{self.answer_length} --greedy")


def split_problems(problems: np.ndarray, n_val: int) -> dict:
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(problems))
    return {"val": problems[perm[:n_val]], "train": problems[perm[n_val:]]}


class SortTask(Task):
    """Sort `length` digits in [0, num_digits): question 2 0 1 1 0 2, answer 0 0 1 1 2 2.
    All num_digits ** length questions exist (729 by default); a fixed quarter of them is held out."""

    name = "sort"

    def __init__(self, length: int = 6, num_digits: int = 3):
        self.tokenizer = CharTokenizer("".join(str(d) for d in range(num_digits)))
        self.question_length = self.answer_length = length
        questions = np.array(list(itertools.product(range(num_digits), repeat=length)), dtype=np.int64)
        self.problems = split_problems(questions, len(questions) // 4)

    def answer(self, questions):
        return np.sort(questions, axis=1)


class AddTask(Task):
    """Add two n-digit numbers: question a b (2n digits), answer the n + 1 digits of a + b, least
    significant first (the order in which carries are computed, as minGPT's adder writes it).
    For n = 2: 85 + 50 = 135 is the question 8 5 5 0 with answer 5 3 1. 1,000 of the 10,000 pairs are held out."""

    name = "add"

    def __init__(self, n_digits: int = 2):
        self.n_digits = n_digits
        self.tokenizer = CharTokenizer("0123456789")
        self.question_length, self.answer_length = 2 * n_digits, n_digits + 1
        pairs = np.array(list(itertools.product(range(10**n_digits), repeat=2)), dtype=np.int64)  # (N, 2)
        questions = np.concatenate([self.digits(pairs[:, 0], n_digits), self.digits(pairs[:, 1], n_digits)], axis=1)
        self.problems = split_problems(questions, len(questions) // 10)

    @staticmethod
    def digits(numbers, n):
        """(N,) -> (N, n) decimal digits, most significant first."""
        return (numbers[:, None] // 10 ** np.arange(n - 1, -1, -1)) % 10

    def answer(self, questions):
        n = self.n_digits
        weights = 10 ** np.arange(n - 1, -1, -1)  # (n,)
        total = questions[:, :n] @ weights + questions[:, n:] @ weights  # (N,) a + b
        return self.digits(total, n + 1)[:, ::-1]  # (N, n + 1) least significant digit first


TASKS = {"sort": SortTask, "add": AddTask}
