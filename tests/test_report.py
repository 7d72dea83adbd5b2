"""The applications' report card (minigpt/applications/report.py): its tables read from the JSON files of
`minigpt eval --task NAME --json`, written as Markdown and as an HTML page that a browser shows whole, offline, with
every untrusted text shown as text."""

import json
import re

import pytest
from helpers import OUTPUT, chromium, offline_page

from minigpt.applications import report

HOSTILE = '<script>document.title = "ran"</script></table><img src="https://example.com/x.png"> | **bold**'


def evaluation(tmp_path, name: str, **fields) -> dict:
    """An evaluation's JSON as minigpt eval --task writes it, in tmp_path/name.json: the settings, then fields."""
    result = {"task": "bible-translation", "application": "translation", "split": "test", "shots": 0,
              "num_beams": 1, "baseline": None, "model": "runs/base", "records": 4, "main_metric": "bleu",
              "ids": [f"John 3:{i}" for i in range(1, 5)], "references": [f"verse {i}" for i in range(1, 5)],
              "predictions": ["a", "b", "c", "d"], **fields}
    (tmp_path / f"{name}.json").write_text(json.dumps(result))
    return report.read_result(tmp_path / f"{name}.json")


@pytest.fixture
def card(tmp_path):
    records = [{"id": f"John 3:{i}", "source": f"verso {i} & más", "target": f"verse {i}"} for i in range(1, 5)]
    runs = [  # (the model scored, command, the JSON's fields)
        ("base", "minigpt eval --task bible-translation --baseline copy",
         {"baseline": "copy", "bleu": 1.25, "chrf": 20.5, "bleu_signature": "nrefs:1|bs:1000|tok:13a|v:2.6.0"}),
        ("base", "minigpt eval --task bible-translation --out-dir runs/base",
         {"bleu": 0.75, "chrf": 14.25, "bleu_signature": "nrefs:1|bs:1000|tok:13a|v:2.6.0",
          "chrf_signature": "nrefs:1|nc:6|nw:0|v:2.6.0"}),
        ("base", "minigpt eval --task bible-translation --out-dir runs/base --shots 3", {"shots": 3, "bleu": 4.5,
                                                                                          "chrf": 25.75}),
        ("LoRA", "minigpt eval --task bible-translation --out-dir runs/bt-lora", {"bleu": 9.5, "chrf": 33.0}),
        ("fine-tuned", "minigpt eval --task bible-translation --out-dir runs/bt --num-beams 4",
         {"num_beams": 4, "bleu": 12.5, "chrf": 38.25, "predictions": [HOSTILE, "verse 2", "v3", "v4"]}),
    ]
    translation = report.table([report.Evaluation(evaluation(tmp_path, f"r{i}", **fields), command, model)
                                for i, (model, command, fields) in enumerate(runs)], records)
    category = dict(task="wordnet-category", application="classification", main_metric="accuracy",
                    ids=["a.n.01"], references=["noun.artifact"], predictions=["noun.act"])
    texts = [{"id": "a.n.01", "text": "a thing", "label": "noun.artifact"}]
    category = report.table([
        report.Evaluation(evaluation(tmp_path, "c0", baseline="majority", accuracy=0.208, macro_f1=0.0344,
                                     per_class={"noun.act": {"f1": 0.5}}, **category),
                          "minigpt eval --task wordnet-category --baseline majority"),
        report.Evaluation(evaluation(tmp_path, "c1", accuracy=0.8125, macro_f1=0.79, **category),
                          "minigpt eval --task wordnet-category --out-dir runs/wc", "fine-tuned")], texts)
    steps = (report.Step("base model", "minigpt train --preset base --out-dir runs/base", 3725.0),
             report.Step("fine-tune bible-translation", "minigpt train --task bible-translation --init-from runs/base",
                         185.4))
    return report.ReportCard(report.Machine("Intel(R) Xeon(R) <CPU> @ 2.20GHz", 2, "2026-12-06"), steps,
                             (translation, category))


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table after `## heading`, header first (the separator line left out)."""
    section = markdown.split(f"## {heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    end = next((i for i in range(start, len(section)) if not section[i].startswith("|")), len(section))
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in section[start:end] if not re.fullmatch(r"[|\-: ]+", line)]
    return [[c.strip() for c in row] for row in cells]


def test_the_markdown_tables_hold_every_row_with_its_scores_and_command(card):
    text = report.markdown(card)
    rows = table_rows(text, "bible-translation")
    assert rows[0] == ["setting", "BLEU", "chrF", "command"]
    assert [r[0] for r in rows[1:]] == ["copy", "zero-shot", "few-shot (3)", "LoRA", "fine-tuned, 4 beams"]
    assert [r[1:3] for r in rows[1:]] == [["1.2", "20.5"], ["0.8", "14.2"], ["4.5", "25.8"], ["9.5", "33.0"],
                                          ["**12.5**", "**38.2**"]]
    assert rows[5][3] == "`minigpt eval --task bible-translation --out-dir runs/bt --num-beams 4`"
    category = table_rows(text, "wordnet-category")
    assert category == [["setting", "accuracy", "macro F1", "command"],
                        ["majority", "0.208", "0.034", "`minigpt eval --task wordnet-category --baseline majority`"],
                        ["fine-tuned", "**0.812**", "**0.790**",
                         "`minigpt eval --task wordnet-category --out-dir runs/wc`"]]
    # each signature once, the machine, the total time, the steps
    assert text.count("nrefs:1|bs:1000") == 1 and text.count("nc:6") == 1
    assert "sacreBLEU's BLEU signature: `nrefs:1|bs:1000|" in text and "sacreBLEU's chrF signature: `nrefs:1|nc:6|" in text
    assert "Intel(R) Xeon(R) &lt;CPU&gt; @ 2.20GHz, 2 cores; run on 2026-12-06" in text
    assert "the whole pipeline took 1 h 05 min" in text and "| 1 h 02 min |" in text and "| 3 min 05 s |" in text


def test_the_examples_are_escaped_in_markdown_each_on_one_row(card):
    text = report.markdown(card)
    assert "<script>" not in text and "<img" not in text and "</table>" not in text
    assert "| verso 1 &amp; más | verse 1 | &lt;script&gt;document.title = \"ran\"&lt;/script&gt;" in text
    assert "\\| **bold**" in text  # a pipe in a text does not split its cell
    assert "| verso 2 &amp; más | verse 2 | verse 2 |" in text


GONE = object()  # a key taken out


@pytest.mark.parametrize("change, message", [
    ({"predictions": GONE}, "no 'predictions' of type list"),
    ({"shots": "3"}, "no 'shots' of type int"),
    ({"bleu": "high"}, "metric 'bleu' is 'high', not a number"),
    ({"main_metric": "bleurt"}, "main_metric 'bleurt' is none of rouge1"),
    ({"references": ["verse 1"]}, "4 ids, 1 references and 4 predictions"),
])
def test_a_file_that_is_not_an_evaluation_is_refused_in_one_line(tmp_path, change, message):
    evaluation(tmp_path, "eval")  # valid as written
    path = tmp_path / "eval.json"
    result = {**json.loads(path.read_text()), **change}
    path.write_text(json.dumps({k: v for k, v in result.items() if v is not GONE}))
    with pytest.raises(ValueError) as raised:
        report.read_result(path)
    assert message in str(raised.value) and str(path) in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("text, message", [("[1, 2]", "expected a JSON object"),
                                           ('{"task": "t",\n "split": }', "line 2: not JSON")])
def test_a_file_that_is_no_json_object_is_refused_in_one_line(tmp_path, text, message):
    (tmp_path / "eval.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        report.read_result(tmp_path / "eval.json")


def test_a_table_is_one_task_and_split_and_its_examples_are_the_split_s_records(tmp_path):
    test = report.Evaluation(evaluation(tmp_path, "a"), "minigpt eval --task bible-translation", "fine-tuned")
    val = report.Evaluation(evaluation(tmp_path, "b", split="val"), "minigpt eval --task bible-translation --split val")
    with pytest.raises(ValueError, match="scored the bible-translation task's val split, and the table's first row "
                                         "the bible-translation task's test split"):
        report.table([test, val], [])
    with pytest.raises(ValueError, match="record 'John 3:1' of the bible-translation evaluation is not in its test"):
        report.table([test], [{"id": "John 3:17", "source": "s", "target": "t"}])


def test_a_row_is_named_by_its_baseline_shots_and_model(tmp_path):
    base = evaluation(tmp_path, "a", shots=5)
    assert report.setting(base, "base") == "few-shot (5)" and report.setting(base, "LoRA") == "LoRA"
    assert report.setting(evaluation(tmp_path, "b", baseline="lead"), "base") == "lead"
    with pytest.raises(ValueError, match="'large' is none of base, fine-tuned, LoRA"):
        report.setting(base, "large")


def test_the_machine_is_this_one():
    machine = report.this_machine()
    cpuinfo = open("/proc/cpuinfo").read()
    assert machine.cores >= 1 and re.fullmatch(r"\d{4}-\d\d-\d\d", machine.date)
    assert machine.cpu != "unknown CPU" and (machine.cpu in cpuinfo or "model name" not in cpuinfo)


def test_the_page_in_a_real_browser_offline_shows_every_figure_and_runs_no_text(card, tmp_path):
    """report.html in headless Chromium with the network off: every table and number visible, the hostile
    prediction shown as text (its script not run, its image not fetched, its </table> closing nothing), no request
    leaves the file; a screenshot for a person to look at."""
    md, html_path = report.write(card, tmp_path / "card")
    assert md.read_text() == report.markdown(card) and html_path.read_text() == report.page(card)
    with chromium() as browser:
        page, errors, requests = offline_page(browser)
        page.goto(html_path.as_uri())
        assert page.title() == card.title  # the script in a prediction did not run
        shown = page.evaluate("() => [...document.querySelectorAll('table')].map(t => [...t.rows].map("
                              "r => [...r.cells].map(c => c.innerText)))")
        # the pipeline, the translation's scores and examples, the category's scores and examples
        assert len(shown) == 1 + 2 + 2
        scores = {row[0]: row[1:] for row in shown[1]}
        assert scores["few-shot (3)"] == ["4.5", "25.8", "minigpt eval --task bible-translation --out-dir runs/base "
                                                         "--shots 3"]
        assert [row[1:3] for row in shown[3]] == [["accuracy", "macro F1"], ["0.208", "0.034"], ["0.812", "0.790"]]
        assert shown[2][1] == ["verso 1 & más", "verse 1", HOSTILE]
        assert page.locator("img, script").count() == 0
        # every table and figure is where a reader sees it: inside the page's width, not hidden
        hidden = page.evaluate("() => [...document.querySelectorAll('td, th')].filter(c => { const r = "
                               "c.getBoundingClientRect(); return r.width === 0 || r.height === 0 || "
                               "r.right > document.documentElement.clientWidth + 1 }).map(c => c.innerText)")
        assert hidden == []
        assert "Intel(R) Xeon(R) <CPU> @ 2.20GHz" in page.inner_text("#machine")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "report.png"), full_page=True)
        assert errors == []
        assert all(url.startswith("file:") for url in requests), requests
