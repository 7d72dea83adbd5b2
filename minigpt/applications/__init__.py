"""The applications: summarisation, translation, question answering and classification on real text.

Reading from the bottom up:
    docstrings.py  Python's standard library docstrings: first paragraphs -> summary sentence (summarisation)
    bibles.py      the Reina-Valera 1909 and the King James Version aligned verse by verse (translation)
    wordnet.py     WordNet 3.0: a word's meaning in an example sentence (question answering), a definition's
                   lexicographer file (classification)
    extract.py     the records extracted once from pinned Debian packages into data/, with NOTICE and manifest.json
                   (`minigpt data tasks`)
    tasks.py       the task definitions: prompts, metrics, the shipped splits read (read_split)
    baselines.py   the baselines each task is measured against
    evaluate.py    generation, metrics and baselines on a task's test split (`minigpt eval --task NAME`)
    report.py      the report card of every task
"""
