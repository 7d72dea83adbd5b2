"""The tasks' baselines (minigpt/applications/baselines.py) on synthetic records whose right output is known by
construction: sentences and lengths chosen so the lead is known, a bilingual text translated word for word by a made-up
lexicon, a question whose nearest neighbour is obvious, classes that separate."""

import numpy as np
import pytest
from helpers import require

from minigpt.applications import baselines
from minigpt.applications.baselines import BASELINES

TASKS = ("docstring-summary", "bible-translation", "wordnet-qa", "wordnet-category")

# a made-up Spanish -> English lexicon, one to one
LEXICON = {"perro": "dog", "gato": "cat", "come": "eats", "bebe": "drinks", "agua": "water", "pan": "bread",
           "grande": "big", "rojo": "red", "duerme": "sleeps", "casa": "house", "sol": "sun", "luna": "moon"}


@pytest.fixture(scope="module")
def sklearn():
    return require("sklearn")


def test_every_task_has_its_two_baselines():
    assert {task: tuple(names) for task, names in BASELINES.items()} == {
        "docstring-summary": ("lead", "lead-k"), "bible-translation": ("copy", "dictionary"),
        "wordnet-qa": ("frequent", "retrieval"), "wordnet-category": ("majority", "tfidf-logreg")}


def test_lead_is_the_first_sentence():
    sources = ["Return the sum. Raise ValueError when empty.", "Why? Because it is.", "Compare 3.14 to pi! Then stop",
               "No sentence end here", "Ends at the end."]
    predicted = BASELINES["docstring-summary"]["lead"]([], [{"source": s} for s in sources])
    assert predicted == ["Return the sum.", "Why?", "Compare 3.14 to pi!", "No sentence end here", "Ends at the end."]


@pytest.mark.parametrize("target_lengths, k", [([2, 3, 5], 3), ([2, 4], 2), ([7], 7), ([0, 0, 1], 1)])
def test_lead_k_takes_the_median_training_summary_length_in_words(target_lengths, k):
    train = [{"source": "x", "target": " ".join(["w"] * n)} for n in target_lengths]
    source = "one two\tthree  four five six seven eight nine"
    assert BASELINES["docstring-summary"]["lead-k"](train, [{"source": source}]) == [" ".join(source.split()[:k])]


def test_copy_is_the_source():
    test = [{"source": "En el principio", "target": "In the beginning"}, {"source": "", "target": "x"}]
    assert BASELINES["bible-translation"]["copy"]([], test) == ["En el principio", ""]


def bilingual(rng, n: int) -> list[dict]:
    """n pairs: a random sentence over the lexicon and its word-for-word translation, in another word order, with
    "the" added to every English sentence (a word that co-occurs with every Spanish word)."""
    spanish = list(LEXICON)
    records = []
    for _ in range(n):
        words = list(rng.choice(spanish, size=rng.integers(2, 6), replace=False))
        english = ["the"] + [LEXICON[w] for w in reversed(words)]
        records.append({"source": " ".join(words).capitalize() + ".", "target": " ".join(english) + "."})
    return records


def test_the_dictionary_learns_a_word_for_word_lexicon(sklearn):
    train = bilingual(np.random.default_rng(0), 300)
    # each word and its translation occur in exactly the same pairs: Dice 1, the most any word can have; "the",
    # in every English sentence, co-occurs with every Spanish word as often but is not any of their translations
    learnt = baselines.dice_dictionary([r["source"] for r in train], [r["target"] for r in train])
    assert learnt == LEXICON
    test = [{"source": "El perro come pan, y el Gato bebe agua."}, {"source": "Sol!"}]
    # unknown words copied; punctuation and spacing kept; a capital kept on the translation
    assert BASELINES["bible-translation"]["dictionary"](train, test) == ["El dog eats bread, y el Cat drinks water.",
                                                                         "Sun!"]


def test_the_dictionary_folds_case_and_breaks_ties_by_sorted_order(sklearn):
    # "ÁRBOL" and "árbol" are one word; "hoja" co-occurs with "leaf" and "green" in the same pairs: a tie, "green"
    train = [{"source": "ÁRBOL", "target": "Tree"}, {"source": "árbol hoja", "target": "tree leaf green"}]
    assert baselines.dice_dictionary([r["source"] for r in train], [r["target"] for r in train]) == {
        "árbol": "tree", "hoja": "green"}


def test_frequent_answers_the_most_frequent_training_answer():
    train = [{"question": "q", "context": "c", "answer": a} for a in ["b", "a", "a", "b", "c", "a"]]
    assert BASELINES["wordnet-qa"]["frequent"](train, train[:2]) == ["a", "a"]
    tied = [{"question": "q", "context": "c", "answer": a} for a in ["y", "x", "x", "y"]]
    assert BASELINES["wordnet-qa"]["frequent"](tied, tied[:1]) == ["y"]  # among equals, the first seen


def qa(word: str, context: str, answer: str) -> dict:
    return {"id": word, "context": context, "question": f'What does "{word}" mean in "{context}"?', "answer": answer}


def test_retrieval_answers_with_the_nearest_training_question(sklearn):
    train = [qa("crock", "that's a crock", "nonsense; foolish talk"),
             qa("bank", "he sat on the bank of the river", "sloping land beside a body of water"),
             qa("bank", "she cashed a cheque at the bank", "a financial institution"),
             qa("lantern", "light the lantern", "light in a transparent protective case")]
    test = [qa("bank", "he fished from the river bank", "?"), qa("crock", "what a crock", "?"),
            qa("bank", "the bank cashed my cheque", "?")]
    # the same word in a context that shares its rarer words (river, crock, cheque) with one training record only
    predicted = BASELINES["wordnet-qa"]["retrieval"](train, test)
    assert predicted == [train[1]["answer"], train[0]["answer"], train[2]["answer"]]


def test_majority_is_the_most_frequent_training_label():
    train = [{"text": "t", "label": label} for label in ["noun.act", "noun.person", "noun.person", "verb.motion"]]
    assert BASELINES["wordnet-category"]["majority"](train, train) == ["noun.person"] * 4


def test_tfidf_logreg_separates_separable_classes(sklearn):
    rng = np.random.default_rng(0)
    vocabularies = {"noun.animal": ["fur", "paws", "tail", "mammal", "feathers", "wings"],
                    "noun.artifact": ["metal", "tool", "device", "handle", "machine", "engine"],
                    "verb.motion": ["move", "walk", "travel", "run", "fast", "slowly"]}
    common = ["a", "of", "the", "with", "or"]

    def records(n):
        return [{"text": " ".join(rng.choice(vocabularies[label] + common, size=6)), "label": label}
                for label in vocabularies for _ in range(n)]

    train, test = records(20), records(10)
    test = [r for r in test if set(r["text"].split()) - set(common)]  # a text with a word of its class
    assert BASELINES["wordnet-category"]["tfidf-logreg"](train, test) == [r["label"] for r in test]


RECORDS = {  # one tiny record set per task, with every field of its schema
    "docstring-summary": [{"id": "f", "source": "Does this. Then that.", "target": "Do it."},
                          {"id": "g", "source": "Reads a file.", "target": "Read the file in full."}],
    "bible-translation": [{"id": "Gen 1:1", "source": "En el principio", "target": "In the beginning"},
                          {"id": "Gen 1:2", "source": "Y la tierra", "target": "And the earth"}],
    "wordnet-qa": [qa("crock", "that's a crock", "nonsense"), qa("bank", "the river bank", "sloping land")],
    "wordnet-category": [{"id": "a", "text": "a furry animal", "label": "noun.animal"},
                         {"id": "b", "text": "a metal tool", "label": "noun.artifact"}],
}


@pytest.mark.parametrize("task, name", [(task, name) for task in TASKS for name in BASELINES[task]])
def test_each_baseline_gives_one_string_per_test_record(sklearn, task, name):
    train, test = RECORDS[task], RECORDS[task][::-1] * 2
    predicted = BASELINES[task][name](train, test)
    assert len(predicted) == len(test) and all(type(p) is str for p in predicted)


@pytest.mark.parametrize("task, name, train, test, message", [
    ("docstring-summary", "lead-k", [], RECORDS["docstring-summary"], "no training records"),
    ("wordnet-qa", "frequent", RECORDS["wordnet-qa"], [], "no test records"),
    ("bible-translation", "dictionary", [{"id": "Gen 1:1", "source": "x"}], RECORDS["bible-translation"],
     "training record 0 \\(id 'Gen 1:1'\\) has no 'target' field"),
    ("wordnet-category", "majority", RECORDS["wordnet-category"], [{"label": "x"}], "test record 0 .* no 'text' field"),
])
def test_bad_records_are_one_clear_line(sklearn, task, name, train, test, message):
    with pytest.raises(ValueError, match=message) as error:
        BASELINES[task][name](train, test)
    assert "\n" not in str(error.value)
