"""The baselines each task's model must beat: the honest floor, scored on the same test split by the same metrics.

    docstring-summary   lead          the source's first sentence
                        lead-k        the source's first k words, k the median summary length (in words) in training
    bible-translation   copy          the Spanish source itself (names and numbers already match)
                        dictionary    word for word: each Spanish word -> the English word it co-occurs with most
                                      (Dice coefficient over the training pairs); unknown words copied
    wordnet-qa          frequent      the training split's most frequent answer, for every question
                        retrieval     the answer of the training record whose question and context are nearest
                                      (TF-IDF cosine, scikit-learn)
    wordnet-category    majority      the training split's most frequent label
                        tfidf-logreg  TF-IDF features and a logistic regression (scikit-learn)

Each is f(train_records, test_records) -> one prediction per test record (text, or a label's name), learning only from
the training records. Ties are broken deterministically (first in the training split's order, or in the
vocabulary's sorted order), so a baseline's score is a fixed number. Docs: docs/applications.md. Tests:
tests/test_baselines.py.
"""

import re
import statistics
from collections import Counter
from collections.abc import Callable

import numpy as np

from minigpt.metrics import require

RANDOM_STATE = 0  # the logistic regression's solver seed: the same predictions on every run
WORD = re.compile(r"\w+")  # a word of either language: letters (accented ones too), digits, underscore
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")  # a full stop, ! or ? followed by a space or the end of the text


def fields(records: list[dict], key: str, what: str) -> list[str]:
    """Each record's `key`, checked: one line naming the record and the field when one lacks it."""
    if len(records) == 0:
        raise ValueError(f"no {what} records (a baseline needs at least one)")
    for i, record in enumerate(records):
        if key not in record:
            raise ValueError(f"{what} record {i} (id {record.get('id')!r}) has no {key!r} field: expected keys "
                             f"{sorted(record)} to include it")
    return [record[key] for record in records]


# docstring-summary


def first_sentence(text: str) -> str:
    """The text up to its first full stop, ! or ? that ends a sentence (followed by a space or the end); all of it
    when there is none. "e.g. " ends a sentence here too: a baseline is a rule, not a parser."""
    end = SENTENCE_END.search(text)
    return text if end is None else text[:end.end()]


def lead(train: list[dict], test: list[dict]) -> list[str]:
    return [first_sentence(source) for source in fields(test, "source", "test")]


def lead_k(train: list[dict], test: list[dict]) -> list[str]:
    # median_low: a length that occurs in the training split, an integer even for an even count
    k = max(1, statistics.median_low(len(target.split()) for target in fields(train, "target", "training")))
    return [" ".join(source.split()[:k]) for source in fields(test, "source", "test")]


# bible-translation


def copy(train: list[dict], test: list[dict]) -> list[str]:
    return fields(test, "source", "test")


def casefolded_words(text: str) -> list[str]:
    return [word.casefold() for word in WORD.findall(text)]


def dice_dictionary(sources: list[str], targets: list[str]) -> dict[str, str]:
    """Each source word (case-folded) -> the target word of highest Dice coefficient, 2 c(s, t) / (c(s) + c(t)),
    where c counts the training pairs that hold the word (c(s, t): both, s in the source and t in the target).
    Dice, rather than the raw count c(s, t), keeps "the" and "and", in nearly every English verse, from being every
    Spanish word's translation. Ties go to the target word first in sorted order."""
    count_vectorizer = require("sklearn.feature_extraction.text").CountVectorizer
    source_words = count_vectorizer(analyzer=casefolded_words, binary=True)
    target_words = count_vectorizer(analyzer=casefolded_words, binary=True)
    xs = source_words.fit_transform(sources).tocsc()  # (N, Vs) 1 where a pair's source holds the word
    xt = target_words.fit_transform(targets).tocsc()  # (N, Vt)
    both = (xs.T @ xt).tocoo()  # (Vs, Vt) c(s, t), stored where nonzero
    cs = np.asarray(xs.sum(axis=0)).ravel()  # (Vs,) c(s)
    ct = np.asarray(xt.sum(axis=0)).ravel()  # (Vt,) c(t)
    dice = 2.0 * both.data / (cs[both.row] + ct[both.col])  # (nnz,)
    # per source word, the best entry: sort by (source word, -dice, target word) and keep each word's first
    order = np.lexsort((both.col, -dice, both.row))  # (nnz,) the last key is the primary one
    rows, cols = both.row[order], both.col[order]  # (nnz,) (nnz,)
    first = np.r_[True, rows[1:] != rows[:-1]]  # (nnz,) the first entry of each source word
    source_vocabulary = source_words.get_feature_names_out()  # (Vs,) sorted
    target_vocabulary = target_words.get_feature_names_out()  # (Vt,) sorted
    return {str(source_vocabulary[s]): str(target_vocabulary[t]) for s, t in zip(rows[first], cols[first])}


def translate_words(text: str, dictionary: dict[str, str]) -> str:
    """Each word of the text replaced by its translation, capitalised if it was; the spaces and punctuation between
    words kept as they are; a word not in the dictionary (a name never seen) copied."""
    def replace(match: re.Match) -> str:
        word = match.group()
        translation = dictionary.get(word.casefold(), word)
        return translation[:1].upper() + translation[1:] if word[:1].isupper() else translation
    return WORD.sub(replace, text)


def dictionary(train: list[dict], test: list[dict]) -> list[str]:
    table = dice_dictionary(fields(train, "source", "training"), fields(train, "target", "training"))
    return [translate_words(source, table) for source in fields(test, "source", "test")]


# wordnet-qa


def most_frequent(values: list[str]) -> str:
    """The most frequent value; among equals, the first seen (Counter keeps the order of insertion)."""
    return Counter(values).most_common(1)[0][0]


def frequent(train: list[dict], test: list[dict]) -> list[str]:
    answer = most_frequent(fields(train, "answer", "training"))
    return [answer] * len(fields(test, "question", "test"))


def question_text(records: list[dict], what: str) -> list[str]:
    return [f"{q} {c}" for q, c in zip(fields(records, "question", what), fields(records, "context", what))]


def retrieval(train: list[dict], test: list[dict]) -> list[str]:
    """The nearest training record's answer. TfidfVectorizer's rows have unit length, so their dot products are the
    cosines; np.argmax breaks ties by the training split's order."""
    answers = fields(train, "answer", "training")
    vectorizer = require("sklearn.feature_extraction.text").TfidfVectorizer()
    known = vectorizer.fit_transform(question_text(train, "training"))  # (N, V) unit rows
    asked = vectorizer.transform(question_text(test, "test"))  # (M, V) unit rows (or zero: no known word)
    cosine = (asked @ known.T).toarray()  # (M, N)
    return [answers[i] for i in np.argmax(cosine, axis=1)]


# wordnet-category


def majority(train: list[dict], test: list[dict]) -> list[str]:
    label = most_frequent(fields(train, "label", "training"))
    return [label] * len(fields(test, "text", "test"))


def tfidf_logreg(train: list[dict], test: list[dict]) -> list[str]:
    text = require("sklearn.feature_extraction.text")
    linear = require("sklearn.linear_model")
    pipeline = require("sklearn.pipeline")
    model = pipeline.make_pipeline(text.TfidfVectorizer(),
                                   linear.LogisticRegression(max_iter=1000, random_state=RANDOM_STATE))
    model.fit(fields(train, "text", "training"), fields(train, "label", "training"))
    return [str(label) for label in model.predict(fields(test, "text", "test"))]


BASELINES: dict[str, dict[str, Callable[[list[dict], list[dict]], list[str]]]] = {
    "docstring-summary": {"lead": lead, "lead-k": lead_k},
    "bible-translation": {"copy": copy, "dictionary": dictionary},
    "wordnet-qa": {"frequent": frequent, "retrieval": retrieval},
    "wordnet-category": {"majority": majority, "tfidf-logreg": tfidf_logreg},
}
