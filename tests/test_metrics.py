"""The task metrics (minigpt/metrics.py) against the reference libraries called another way, over random texts;
ROUGE also against its definition, counted by hand on rouge-score's own tokens; SQuAD's normalisation, exact match
and F1 on cases that follow the rules of the official v1.1 evaluation script, and their properties."""

import math
import sys
from collections import Counter

import pytest
from helpers import require
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import metrics

# Words that share stems (run, runs, running), articles, punctuation glued to words or alone, capitals, digits,
# and a non-ASCII letter and dash (which SQuAD's normalisation keeps): n-gram overlaps are likely, not rare.
WORDS = ["the", "The", "a", "an", "cat", "cats", "run", "runs", "running", "dog", "Dog.", "sat", "on", "mat,",
         "café", "—", "(x)", "!", "it's", "3", "well-known", "THE"]
texts = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)  # the empty string included
pairs = st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(texts, min_size=n, max_size=n),
                                                      st.lists(texts, min_size=n, max_size=n)))
LIBRARY_EXAMPLES = 60  # each example scores a few sentences through a library: a fraction of a second in all


@pytest.fixture(scope="module")
def sacrebleu():
    return require("sacrebleu")


@pytest.fixture(scope="module")
def rouge_score():
    require("rouge_score")
    from rouge_score import rouge_scorer, tokenize
    from nltk.stem import porter  # rouge-score's own stemmer (it depends on nltk)
    return rouge_scorer, tokenize, porter


@settings(max_examples=LIBRARY_EXAMPLES)
@given(pairs)
def test_bleu_is_sacrebleus_corpus_bleu(sacrebleu, pair):
    predictions, references = pair
    result = metrics.bleu(predictions, references)
    assert result["bleu"] == sacrebleu.corpus_bleu(predictions, [references]).score


@settings(max_examples=LIBRARY_EXAMPLES)
@given(pairs)
def test_chrf_is_sacrebleus_corpus_chrf(sacrebleu, pair):
    predictions, references = pair
    assert metrics.chrf(predictions, references)["chrf"] == sacrebleu.corpus_chrf(predictions, [references]).score


def test_the_signatures_name_sacrebleus_version_and_settings(sacrebleu):
    bleu_signature = metrics.bleu(["a cat"], ["the cat"])["signature"]
    chrf_signature = metrics.chrf(["a cat"], ["the cat"])["signature"]
    assert f"version:{sacrebleu.__version__}" in bleu_signature and f"version:{sacrebleu.__version__}" in chrf_signature
    assert "tok:13a" in bleu_signature and "nrefs:1" in bleu_signature  # the default tokenisation, one reference
    assert "nc:6" in chrf_signature and "nw:0" in chrf_signature  # chrF, not chrF++


def test_bleu_and_chrf_of_a_perfect_corpus_are_100_and_of_a_disjoint_one_0():
    references = ["the cat sat on the mat today", "a dog ran in the park at noon"]
    assert metrics.bleu(references, references)["bleu"] == pytest.approx(100.0)
    assert metrics.chrf(references, references)["chrf"] == pytest.approx(100.0)
    assert metrics.bleu(["xyz qqq"] * 2, references)["bleu"] == 0.0


@settings(max_examples=LIBRARY_EXAMPLES)
@given(pairs)
def test_rouge_is_the_mean_of_rouge_scores_per_pair(rouge_score, pair):
    rouge_scorer = rouge_score[0]
    predictions, references = pair
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    per_pair = [scorer.score(r, p) for p, r in zip(predictions, references)]
    expected = {name: 100.0 * math.fsum(s[name].fmeasure for s in per_pair) / len(per_pair)
                for name in ("rouge1", "rouge2", "rougeL")}
    assert metrics.rouge(predictions, references) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def lcs(a: list, b: list) -> int:
    """The length of the longest common subsequence, by the textbook table."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def f_measure(overlap: int, predicted: int, truth: int) -> float:
    return 0.0 if overlap == 0 else 2 * overlap / (predicted + truth)  # the harmonic mean of overlap/p and overlap/t


@settings(max_examples=LIBRARY_EXAMPLES)
@given(pairs)
def test_rouge_is_its_definition_on_the_libraries_stemmed_tokens(rouge_score, pair):
    # ROUGE-n: the F-measure of the n-grams shared (as bags); ROUGE-L: of the longest common subsequence
    _, tokenize, porter = rouge_score
    stemmer = porter.PorterStemmer()
    predictions, references = pair
    totals = Counter()
    for prediction, reference in zip(predictions, references):
        p, t = tokenize.tokenize(prediction, stemmer), tokenize.tokenize(reference, stemmer)
        for n in (1, 2):
            p_grams, t_grams = Counter(zip(*[p[i:] for i in range(n)])), Counter(zip(*[t[i:] for i in range(n)]))
            overlap = sum((p_grams & t_grams).values())
            totals[f"rouge{n}"] += f_measure(overlap, sum(p_grams.values()), sum(t_grams.values()))
        totals["rougeL"] += f_measure(lcs(p, t), len(p), len(t))
    expected = {name: 100.0 * totals[name] / len(predictions) for name in ("rouge1", "rouge2", "rougeL")}
    assert metrics.rouge(predictions, references) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_rouge_stems_words_and_is_100_on_identical_texts():
    assert metrics.rouge(["the cats running"], ["the cat runs"])["rouge1"] == pytest.approx(100.0)
    assert metrics.rouge(["a dog sat"], ["a dog sat"]) == pytest.approx({"rouge1": 100.0, "rouge2": 100.0,
                                                                         "rougeL": 100.0})


# SQuAD v1.1: the rules of evaluate-v1.1.py's normalize_answer, each on its own


@pytest.mark.parametrize("text, normalised", [
    ("The Cat", "cat"),  # lower case, then the article dropped
    ("  cat \t\n sat  ", "cat sat"),  # whitespace collapsed and stripped
    ("cat.", "cat"),  # ASCII punctuation dropped
    ("well-known", "wellknown"),  # dropped, not replaced by a space
    ("a-cat", "acat"),  # punctuation goes before the articles: "a" is no longer a word of its own
    ("An apple, a pear and THE plum", "apple pear and plum"),
    ("theater another", "theater another"),  # articles only as whole words
    ("café — déjà", "café — déjà"),  # non-ASCII letters and punctuation are kept
    ("the a an", ""),
    ("", ""),
])
def test_squad_normalisation_follows_the_official_rules(text, normalised):
    assert metrics.normalize_answer(text) == normalised


@pytest.mark.parametrize("prediction, golds, exact_match, f1", [
    ("the Eiffel Tower.", ["Eiffel tower"], 100.0, 100.0),
    ("big red dog", ["red dog house"], 0.0, 100.0 * 2 / 3),  # 2 shared: precision 2/3, recall 2/3
    ("dog dog", ["dog"], 0.0, 100.0 * 2 / 3),  # bags: "dog" is shared once; precision 1/2, recall 1
    ("red dog", ["a cat", "red", "the red dog"], 100.0, 100.0),  # the best gold answer counts
    ("red dog", ["red", "dog house"], 0.0, 100.0 * 2 / 3),  # max F1 over golds (each 2/3), not their mean
    ("", ["cat"], 0.0, 0.0),  # an empty prediction
    ("the", ["a"], 100.0, 0.0),  # v1.1: both normalise to nothing: equal, but no token shared
])
def test_squad_exact_match_and_f1_on_known_cases(prediction, golds, exact_match, f1):
    assert metrics.squad([prediction], [golds]) == pytest.approx({"exact_match": exact_match, "f1": f1})


def test_squad_averages_over_examples():
    result = metrics.squad(["cat", "dog", "big red dog"], [["cat"], ["mouse"], ["red dog house"]])
    assert result == pytest.approx({"exact_match": 100.0 / 3, "f1": 100.0 * (1 + 0 + 2 / 3) / 3})


@given(texts, texts)
def test_squad_f1_properties(a, b):
    f1 = metrics.squad([a], [[b]])["f1"]
    assert 0.0 <= f1 <= 100.0
    assert f1 == pytest.approx(metrics.squad([b], [[a]])["f1"])  # symmetric in the two bags of tokens
    # the Dice form of the same quantity: 2 |A & B| / (|A| + |B|), A and B the bags of normalised tokens
    x, y = metrics.normalize_answer(a).split(), metrics.normalize_answer(b).split()
    shared = sum((Counter(x) & Counter(y)).values())
    assert f1 == pytest.approx(100.0 * 2 * shared / (len(x) + len(y)) if shared else 0.0)
    assert metrics.normalize_answer(metrics.normalize_answer(a)) == metrics.normalize_answer(a)


@given(texts)
def test_squad_of_an_answer_against_itself_is_100(text):
    result = metrics.squad([text], [[text]])
    assert result["exact_match"] == 100.0
    assert result["f1"] == (100.0 if metrics.normalize_answer(text) else 0.0)  # v1.1: no tokens, no F1


def test_score_merges_the_metrics_and_keeps_both_signatures():
    predictions, references = ["the cat sat", "a dog", ""], ["the cat sat on the mat", "the dog", "cat"]
    merged = metrics.score(("rouge", "bleu", "chrf", "squad"), predictions, references)
    bleu, chrf = metrics.bleu(predictions, references), metrics.chrf(predictions, references)
    assert merged == {**metrics.rouge(predictions, references),
                      "bleu": bleu["bleu"], "bleu_signature": bleu["signature"],
                      "chrf": chrf["chrf"], "chrf_signature": chrf["signature"],
                      **metrics.squad(predictions, [[r] for r in references])}
    assert metrics.score(("squad",), predictions, references).keys() == {"exact_match", "f1"}


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.bleu([], []), "BLEU: no predictions to score"),
    (lambda: metrics.chrf(["a"], ["a", "b"]), "chrF: 1 predictions but 2 references"),
    (lambda: metrics.rouge(["a", "b"], ["a"]), "ROUGE: 2 predictions but 1 references"),
    (lambda: metrics.squad([], []), "SQuAD: no predictions to score"),
    (lambda: metrics.squad(["a", "b"], [["a"], []]), "SQuAD: example 1 has no gold answer"),
    (lambda: metrics.score(("bleu", "meteor"), ["a"], ["a"]), "unknown metric 'meteor'"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("module, call", [("sacrebleu", lambda: metrics.bleu(["a"], ["a"])),
                                          ("rouge_score.rouge_scorer", lambda: metrics.rouge(["a"], ["a"]))])
def test_a_missing_library_says_how_to_install_it(monkeypatch, module, call):
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it now raises ImportError
    with pytest.raises(ValueError, match=r"pip install -e '\.\[tasks\]'") as error:
        call()
    assert "\n" not in str(error.value)
