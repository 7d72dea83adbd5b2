"""The field's metrics for generated text, computed as papers compute them:

    rouge   ROUGE-1, ROUGE-2, ROUGE-L (summarisation): Google's rouge-score, Porter stemmer on, mean F-measure x 100
    bleu    corpus BLEU (translation): sacreBLEU with its default 13a tokenisation, and the signature it prints
    chrf    corpus chrF (translation): sacreBLEU's chrF, character 6-grams, beta 2, and its signature
    squad   exact match and token F1 (question answering), max over the gold answers, mean x 100, with the answer
            normalisation of the official SQuAD v1.1 evaluation script (written here: it is a dozen lines)

ROUGE, BLEU and chrF call the reference libraries rather than re-implementing them, so that a number here is the
number a paper reports for the same outputs (sacreBLEU exists because BLEU's tokenisation differed from paper to
paper). Every function takes the predictions and the references in the same order, one per example, and refuses
empty or mismatched lists with one line. Docs: docs/applications.md. Tests: tests/test_metrics.py.
"""

import importlib
import re
import string
from collections import Counter
from collections.abc import Callable

# the import name of each reference library -> its name on PyPI (what `pip install` wants)
PACKAGES = {"sacrebleu": "sacrebleu", "rouge_score": "rouge-score", "sklearn": "scikit-learn"}


def require(module: str):
    """The reference library `module`, imported on first use: `import minigpt` stays free of them, and a user who
    never scores a task never needs them."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = PACKAGES[module.split(".")[0]]
        raise ValueError(f"the {package} package is not installed (minigpt's task metrics and baselines use it): "
                         f"pip install -e '.[tasks]'") from None


def check_pairs(predictions: list, references: list, what: str) -> None:
    """One line for what every metric refuses: no examples (a mean of nothing), or unequal lists (a prediction
    scored against another example's reference)."""
    if len(predictions) == 0:
        raise ValueError(f"{what}: no predictions to score (expected one prediction per example, at least one)")
    if len(predictions) != len(references):
        raise ValueError(f"{what}: {len(predictions)} predictions but {len(references)} references "
                         f"(expected one reference per prediction, in the same order)")


def rouge(predictions: list[str], references: list[str]) -> dict:
    """ROUGE-1, ROUGE-2 and ROUGE-L: each the mean over the examples of its F-measure, x 100. The Porter stemmer is
    on, as in the summarisation papers that report ROUGE with rouge-score (and as Hugging Face's `evaluate` does)."""
    check_pairs(predictions, references, "ROUGE")
    rouge_scorer = require("rouge_score.rouge_scorer")  # (the package's __init__ does not import it)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # (target, prediction): the reference comes first
        for name in totals:
            totals[name] += scores[name].fmeasure
    return {name: 100.0 * total / len(predictions) for name, total in totals.items()}


def bleu(predictions: list[str], references: list[str]) -> dict:
    """sacreBLEU's corpus BLEU (one reference per example, 13a tokenisation, exponential smoothing) and its
    signature, which names everything that changes the number (sacreBLEU's version included)."""
    check_pairs(predictions, references, "BLEU")
    metric = require("sacrebleu").BLEU()
    result = metric.corpus_score(predictions, [references])  # a list of reference streams: one here
    return {"bleu": result.score, "signature": str(metric.get_signature())}


def chrf(predictions: list[str], references: list[str]) -> dict:
    """sacreBLEU's corpus chrF (character n-grams up to 6, beta 2) and its signature."""
    check_pairs(predictions, references, "chrF")
    metric = require("sacrebleu").CHRF()
    result = metric.corpus_score(predictions, [references])
    return {"chrf": result.score, "signature": str(metric.get_signature())}


# SQuAD v1.1's official evaluation script (evaluate-v1.1.py): normalize_answer, f1_score, exact_match_score and
# metric_max_over_ground_truths, rule for rule. v1.1, not v2.0: an answer that normalises to nothing scores F1 0 even
# against a gold answer that normalises to nothing too (v2.0 gives it 1, for its unanswerable questions).
ARTICLES = re.compile(r"\b(a|an|the)\b")
PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as in the script: "é" and "—" are kept


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, drop the articles a, an, the (whole words), collapse whitespace: in the
    script's order, which matters ("the-end" loses its hyphen first, then is "theend", not "end")."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in PUNCTUATION)
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """The harmonic mean of precision and recall of the normalised tokens, as bags (a token counts as often as it
    is in both); 0 when they share none."""
    predicted, truth = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad(predictions: list[str], answers: list[list[str]]) -> dict:
    """SQuAD v1.1's exact match and F1: each prediction scored against each of its gold answers, the best kept,
    then the mean over the examples, x 100."""
    check_pairs(predictions, answers, "SQuAD")
    for i, golds in enumerate(answers):
        if len(golds) == 0:
            raise ValueError(f"SQuAD: example {i} has no gold answer (expected a list of at least one)")
    em = sum(max(exact_match(p, g) for g in golds) for p, golds in zip(predictions, answers))
    f1 = sum(max(token_f1(p, g) for g in golds) for p, golds in zip(predictions, answers))
    return {"exact_match": 100.0 * em / len(predictions), "f1": 100.0 * f1 / len(predictions)}


# score's metrics: each takes one reference string per example (SQuAD: that reference as the one gold answer)
METRICS: dict[str, Callable[[list[str], list[str]], dict]] = {
    "rouge": rouge,
    "bleu": bleu,
    "chrf": chrf,
    "squad": lambda predictions, references: squad(predictions, [[r] for r in references]),
}


def score(names: tuple[str, ...], predictions: list[str], references: list[str]) -> dict:
    """The metrics `names` (of METRICS) on the same outputs, merged into one dict: rouge1, rouge2, rougeL, bleu,
    chrf, exact_match, f1. BLEU's and chrF's signatures are kept apart as bleu_signature and chrf_signature."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}: expected some of {', '.join(METRICS)}")
    merged = {}
    for name in names:
        for key, value in METRICS[name](predictions, references).items():
            merged[f"{name}_signature" if key == "signature" else key] = value
    return merged
