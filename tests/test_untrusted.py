"""Files from someone else's directory are bounded, and valid input works: chat templates rendered within limits of
time and size (minigpt/data/chat_template.py, minigpt/data/sandbox.py), tokenizer.json checked where it is read
(minigpt/data/hf_tokenizer.py, minigpt/data/bpe.py), JSON and safetensors headers whose errors name the file and the
place (minigpt/validate.py, minigpt/weights.py), and JSONL split at its line ends only (minigpt/data/records.py)."""

import io
import json
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, cli, error_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigpt import weights
from minigpt.data import load_tokenizer, tokenizer_from_dict
from minigpt.data.bpe import BYTE_TO_CHAR, BPETokenizer
from minigpt.data.chat_template import ChatTemplate, Limits, render
from minigpt.data.hf_tokenizer import HFTokenizer
from minigpt.data.records import read_jsonl
from minigpt.validate import read_json

SOURCE = "the chat_template of hub/tokenizer_config.json"
SMALL = Limits(seconds=0.3, chars=10_000, total=100_000)  # (the defaults, scaled down: every test stays fast)
SLACK = 10.0  # seconds a rendering may run past its limit on a busy machine before the bound counts as broken
MEMORY = 64 << 20  # bytes: a rendering within SMALL holds far less; a bomb left unchecked holds gigabytes
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\tthere"},
            {"role": "assistant", "content": "Hello"}]


def one_line(e: BaseException, *fragments) -> str:
    text = str(e)
    assert "\n" not in text and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


def rendered(template: str, limits: Limits = SMALL):
    """(the text or the ValueError, seconds, peak bytes) of rendering template over MESSAGES within limits."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        result = render(ChatTemplate(template, SOURCE), MESSAGES, True, "<s>", "</s>", limits)
    except ValueError as e:
        result = e
    finally:
        seconds, peak = time.monotonic() - start, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def plain_jinja(template: str) -> str:
    """The template rendered as transformers renders it, without bounds: what a bounded rendering must equal."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    return env.from_string(template).render(messages=MESSAGES, add_generation_prompt=True, bos_token="<s>",
                                            eos_token="</s>")


# --- chat templates: bombs stop within their bounds, in one line naming the file and line ------------------------

BOMBS = {  # each would run for minutes, or allocate gigabytes, or end in a traceback, unbounded
    "string repeated": "{{ 'x' * 10**10 }}",
    "a list repeated": "{{ [messages] * 10**9 }}",
    "a power": "{{ 7 ** (10 ** 9) }}",
    "squaring": "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "doubling by ~": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling by +": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "nested ranges": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested lists": "{% set x = range(100000)|list %}{% for i in x %}{% for j in x %}{% endfor %}{% endfor %}",
    "output in a loop": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "text in a loop": "{% for i in range(100000) %}" + "y" * 1000 + "{% endfor %}",
    "center": "{{ 'x'|center(10**10) }}",
    "ljust": "{{ 'x'.ljust(10**10) }}",
    "zfill": "{{ 'x'.zfill(10**10) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(10**8) }}",
    "format width": "{{ '{:>9999999999}'.format(1) }}",
    "format nested width": "{{ '{:>{w}}'.format(1, w=10**10) }}",
    "percent width": "{{ '%9999999999d' % 1 }}",
    "percent star": "{{ '%*d' % (10**10, 1) }}",
    "format filter": "{{ '%.9999999999f'|format(1.0) }}",
    "replace": "{% set s = 'x' * 5000 %}{{ s|replace('x', s) }}",
    "replace method": "{% set s = 'x' * 5000 %}{{ s.replace('', s) }}",
    "join": "{% set s = 'x' * 5000 %}{{ [s, s, s, s]|join(s) }}",
    "join method": "{% set s = 'x' * 5000 %}{{ s.join([s, s, s]) }}",
    "join of a map": "{% set s = 'x' * 5000 %}{{ range(100000)|map('replace', '', s)|join }}",
    "translate": "{{ ('x' * 5000).translate({120: 'y' * 5000}) }}",
    "indent": "{{ ('a\\n' * 5000)|indent(5000) }}",
    "wordwrap": "{{ ('a ' * 5000)|wordwrap(1, wrapstring='x' * 5000) }}",
    "batch fill": "{{ [1]|batch(10**10, 'x')|list }}",
    "sum of lists": "{{ ([[1] * 100] * 100)|sum(start=[])|length }}",
    "a dict's text": "{% set d = dict.fromkeys(range(100000), 'x' * 5000) %}{{ d|string|length }}",
    "tojson indent": "{{ messages|tojson(indent=10**8) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "range too long": "{% for i in range(10**100) %}{% endfor %}",
    "undefined": "{{ foo.bar.baz }}",
    "type error": "{{ 1 + 'a' }}",
    "division by zero": "{{ 1 // 0 }}",
    "raise_exception": "{{ raise_exception('roles must alternate') }}",
    "syntax": "{% for %}",
    "nested brackets": "{{ " + "(" * 10000 + "1" + ")" * 10000 + " }}",
}


@pytest.mark.parametrize("name", BOMBS)
def test_a_template_that_would_pass_its_bounds_is_stopped_in_one_line_naming_its_file(name):
    result, seconds, peak = rendered("\n\n" + BOMBS[name])  # (on line 3)
    assert isinstance(result, ValueError), f"{name} rendered {str(result)[:80]!r}"
    text = one_line(result, SOURCE)
    if "compiled" not in text:  # (a syntax error names its line too, in Jinja's own words)
        assert ", line 3," in text, text
    assert seconds < SMALL.seconds + SLACK and peak < MEMORY, (name, seconds, peak)


def test_the_default_bounds_stop_a_bomb_in_seconds_and_name_what_passed_them():
    result, seconds, peak = rendered(BOMBS["nested ranges"], Limits())
    assert seconds < Limits().seconds + SLACK
    one_line(result, SOURCE, "ran for more than 2 s")
    result, seconds, peak = rendered(BOMBS["string repeated"], Limits())
    one_line(result, SOURCE, "more than 1,000,000 characters")
    assert peak < MEMORY


TEMPLATES = {  # the shapes of real chat templates: what the bounds must leave alone
    "chatml": "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
              "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "llama3": "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
              "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
              "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}",
    "qwen3-like": "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
                  "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
                  "{%- if ns.multi_step_tool and message.role == 'user' %}{%- set ns.multi_step_tool = false %}"
                  "{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
                  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' + message.content }}"
                  "{%- if loop.index0 > ns.last_query_index %}{{ ' (after)' }}{% endif %}{{- '<|im_end|>\n' }}"
                  "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}",
    "tools": "{{ messages|tojson(indent=2) }}{{ '%-8s|%5.2f' % ('x', 1.5) }}{{ '{:>6}'.format('y') }}"
             "{{ messages|map(attribute='content')|join(', ') }}{{ 'a\tb'.expandtabs(4) }}{{ 'ab'|center(9) }}",
    "macros": "{% macro turn(m) %}[{{ m.role|upper }}] {{ m.content|replace('\t', ' ') }}{% endmacro %}"
              "{% for m in messages %}{{ turn(m) }}{{ '\n' if not loop.last }}{% endfor %}"
              "{{ (messages|map(attribute='content')|map('length')|list)|sum }}",
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_real_templates_render_within_the_bounds_exactly_as_jinja_renders_them(name):
    result, seconds, peak = rendered(TEMPLATES[name], Limits())
    assert result == plain_jinja(TEMPLATES[name])


# random Jinja: expressions of the operators, filters and methods that make values, in loops, conditions, macros
ATOMS = st.sampled_from(["0", "1", "3", "64", "10**3", "10**6", "10**9", "-1", "1.5", "''", "'x'", "'ab\\n'", "'%d'",
                         "'%05d'", "'{}'", "'{:>9}'", "'\\t'", "messages", "messages[0]['content']", "m", "ns.s",
                         "range(5)", "range(100000)", "[1, 2, 3]", "(1, 'a')", "{'a': 'b'}", "loop.index", "bos_token",
                         "add_generation_prompt", "none", "undefined_name"])
FILTERS = ["center(1000000)", "center(10)", "replace('x', 'xxxxxxxxxx')", "join", "join(', ')", "format(1)",
           "indent(100)", "batch(3)|list", "batch(10000000, 'x')|list", "wordwrap(5)", "list", "string", "tojson",
           "tojson(indent=2)", "sum(start=[])", "sum", "length", "upper", "reverse|list", "first", "map('string')|list",
           "int", "e", "trim", "default('d')", "unique|list", "sort", "dictsort", "items|list", "slice(3)|list",
           "truncate(5)", "map('center', 100000)|join", "selectattr('role')|list", "count", "pprint", "urlencode"]
METHODS = ["ljust(1000000)", "ljust(5)", "replace('', 'yy')", "join(['a', 'b'])", "format(1, 2)",
           "expandtabs(100000)", "split()", "upper()", "zfill(10**9)", "center(3)", "format_map({})",
           "translate({120: 'yyyyyyyy'})", "count('x')", "splitlines()", "items()", "keys()", "index(1)"]
EXPRESSIONS = st.recursive(ATOMS, lambda e: st.one_of(
    st.tuples(e, st.sampled_from(["*", "+", "**", "%", "~", "//", "-", "==", "and", "in", "if"]), e).map(
        lambda t: f"({t[0]} {t[1]} {t[2]}{' else 0' if t[1] == 'if' else ''})"),
    st.tuples(e, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]}|{t[1]})"),
    st.tuples(e, st.sampled_from(METHODS)).map(lambda t: f"{t[0]}.{t[1]}"),
    e.map(lambda x: f"f({x})"),
    e.map(lambda x: f"[{x}, {x}]"),
), max_leaves=6)
STATEMENTS = st.recursive(
    EXPRESSIONS.map(lambda e: "{{ %s }}" % e)
    | st.sampled_from(["text ", "\n", "{# note #}", "{% set ns.s = ns.s ~ 'x' %}"]),
    lambda s: st.one_of(
        st.tuples(EXPRESSIONS, st.lists(s, max_size=3)).map(lambda t: "{% for m in " + t[0] + " %}" + "".join(t[1])
                                                            + "{% endfor %}"),
        st.tuples(EXPRESSIONS, st.lists(s, max_size=3)).map(lambda t: "{% if " + t[0] + " %}" + "".join(t[1])
                                                            + "{% endif %}"),
        EXPRESSIONS.map(lambda e: "{% set ns.s = " + e + " %}"),
        st.lists(s, max_size=3).map("".join)),
    max_leaves=8)
# a namespace to grow, and a macro that calls itself (until Python's recursion limit, or its argument is long)
PRELUDE = ("{% set ns = namespace(s='x') %}{% macro f(x) %}{{ f(x ~ x) if x|string|length < 10**7 else x }}"
           "{% endmacro %}")
JINJA_WORDS = ["{{", "}}", "{%", "%}", "for", "x", "in", "endfor", "if", "(", ")", "'"]
TEMPLATE_TEXT = st.one_of(STATEMENTS.map(lambda s: PRELUDE + s), st.sampled_from(list(BOMBS.values())),
                          st.text(max_size=60), st.lists(st.sampled_from(JINJA_WORDS)).map(" ".join))


@settings(max_examples=80, deadline=None)
@given(template=TEMPLATE_TEXT)
def test_every_template_renders_within_its_bounds_as_jinja_does_or_fails_in_one_line(template):
    result, seconds, peak = rendered(template)
    assert seconds < SMALL.seconds + SLACK and peak < MEMORY, (seconds, peak)
    if isinstance(result, ValueError):
        one_line(result, SOURCE)
    else:
        assert len(result) <= SMALL.total
        assert result == plain_jinja(template)  # (bounded: it rendered within SMALL above)


# --- chat templates in a run: read from a directory, checked before the run's directory is made ------------------

CHARS = "".join(sorted("\n !<>_|abdeimnorstuy"))  # every character of the records and of ChatML's markers
CHAT = [{"messages": [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "ba"}]}] * 12


def char_directory(path: Path, template: str, jinja_file: bool = False) -> Path:
    """A Hugging Face directory of a character vocabulary (vocab.json of single bytes, no merges) and a chat
    template, in tokenizer_config.json or in chat_template.jinja."""
    path.mkdir()
    (path / "vocab.json").write_text(json.dumps({BYTE_TO_CHAR[ord(c)]: i for i, c in enumerate(CHARS)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    (path / "tokenizer_config.json").write_text(json.dumps({} if jinja_file else {"chat_template": template}))
    if jinja_file:
        (path / "chat_template.jinja").write_text(template)
    return path


def write_jsonl(path: Path, records: list, **dumps) -> Path:
    path.write_text("".join(json.dumps(r, **dumps) + "\n" for r in records), encoding="utf-8")
    return path


def train_on(capsys, tmp_path, data: Path, tokenizer: Path, *flags):
    return cli(capsys, "train", "--data", str(data), "--tokenizer", str(tokenizer), "--out-dir", str(tmp_path / "run"),
               "--max-iters", "1", *TINY, "--block-size", "64", "--warmup-iters", "0", *flags)


@pytest.mark.parametrize("jinja_file", [False, True])
@pytest.mark.parametrize("body, fragment", [
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
    ("{% for i in range(10**100) %}{% endfor %}", "OverflowError"),
    ("{{ raise_exception('no system message') }}", "refuses the conversation: no system message"),
    ("{{ messages[0].content.center(10**10) }}", "more than 1,000,000 characters"),
], ids=["recursive macro", "overflow", "raise_exception", "center"])
def test_a_directorys_bad_template_is_one_line_naming_its_file_and_line_and_no_run_is_made(
        tmp_path, capsys, jinja_file, body, fragment):
    hub = char_directory(tmp_path / "hub", "ok\n" + body, jinja_file)
    data = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    code, err = train_on(capsys, tmp_path, data, hub)
    assert code == 1
    file = hub / ("chat_template.jinja" if jinja_file else "tokenizer_config.json")
    error_line(err, f"{data} line 1: the chat", str(file), "line 2", fragment)
    assert not (tmp_path / "run").exists()


def test_a_templates_own_special_tokens_are_added_to_a_character_vocabulary(tmp_path, capsys):
    # a ChatML template of the directory's own (not minigpt's text of it): its markers and the eos that pads
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    data = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    code, err = train_on(capsys, tmp_path, data, char_directory(tmp_path / "hub", template))
    assert code == 0, err
    latest = json.loads((tmp_path / "run" / "checkpoints.json").read_text())["latest"]
    tokenizer = load_tokenizer(tmp_path / "run" / latest)
    assert {"<|endoftext|>", "<|im_start|>", "<|im_end|>"} <= set(tokenizer.special_tokens)
    assert tokenizer.encode("<|im_start|>ab<|im_end|>").tolist() == [tokenizer.special_tokens["<|im_start|>"],
                                                                    CHARS.index("a"), CHARS.index("b"),
                                                                    tokenizer.special_tokens["<|im_end|>"]]


@pytest.mark.parametrize("command, bomb, fragment", [("sample", "nested ranges", "ran for more than 2 s"),
                                                     ("chat", "string repeated", "more than 1,000,000 characters")])
def test_chat_and_sample_stop_a_bomb_in_a_models_template_in_one_line(tmp_path, capsys, monkeypatch, command, bomb,
                                                                      fragment):
    data = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    code, err = train_on(capsys, tmp_path, data, char_directory(tmp_path / "hub", TEMPLATES["chatml"]))
    assert code == 0, err
    assert cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--hf", str(tmp_path / "hf"))[0] == 0
    (tmp_path / "hf" / "chat_template.jinja").write_text("{{ bos_token }}\n" + BOMBS[bomb])
    monkeypatch.setattr("sys.stdin", io.StringIO("ab\n"))
    start = time.monotonic()
    code, err = cli(capsys, command, "--out-dir", str(tmp_path / "hf"),
                    *(["--chat", "--prompt", "ab"] if command == "sample" else []))
    assert code == 1 and time.monotonic() - start < Limits().seconds + SLACK
    error_line(err, str(tmp_path / "hf" / "chat_template.jinja"), "line 2", fragment)


def test_a_run_whose_data_cannot_make_a_batch_is_refused_before_its_directory_is_made(tmp_path, capsys):
    text = tmp_path / "short.txt"
    text.write_text("".join(np.random.default_rng(0).choice(list("abc \n"), size=400)))  # 40 held-out tokens
    code, err = cli(capsys, "train", "--data", str(text), "--out-dir", str(tmp_path / "run"), "--max-iters", "2",
                    *TINY, "--block-size", "64", "--warmup-iters", "0")
    assert code == 1
    error_line(err, "the val split has 40 tokens, too few for block_size 64")
    assert not (tmp_path / "run").exists()


# --- tokenizer.json: checked where it is read ---------------------------------------------------------------------

def spec() -> dict:
    """A small byte-level BPE tokenizer.json with every part minigpt reads."""
    vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
    vocab.update({"ab": 256, "abc": 257, "Ġa": 258})
    return {"model": {"type": "BPE", "vocab": vocab, "merges": ["a b", "ab c", "Ġ a"], "ignore_merges": False},
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": " ?[a-z]+|[0-9]"}, "behavior": "Isolated", "invert": False},
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}},
                                                                        {"Sequence": {"id": "A"}}],
                               "special_tokens": {"<s>": {"ids": [259]}}},
            "added_tokens": [{"id": 259, "content": "<s>"}, {"id": 260, "content": "<|im_end|>"}]}


def changed(change) -> dict:
    s = spec()
    change(s)
    return s


@pytest.mark.parametrize("change, place", [
    (lambda s: s["model"]["merges"].append("c d"), "model.merges[3] ('c d') makes 'cd'"),
    (lambda s: s["model"]["merges"].append("zz q"), "model.merges[3] ('zz q') merges 'zz'"),
    (lambda s: s["model"]["merges"].append(["a", "b", "c"]), "model.merges[3]"),
    (lambda s: s["model"]["merges"].append(7), "model.merges[3]"),
    (lambda s: s["normalizer"].update(normalizers=5), "normalizer.normalizers must be a list"),
    (lambda s: s["normalizer"].update(normalizers=[{"type": "NFC"}, "NFD"]), "normalizer.normalizers[1]"),
    (lambda s: s["pre_tokenizer"].update(pretokenizers={"type": "ByteLevel"}), "pre_tokenizer.pretokenizers must"),
    (lambda s: s["pre_tokenizer"]["pretokenizers"][0].update(pattern="x"), "pre_tokenizer.pretokenizers[0].pattern"),
    (lambda s: s["pre_tokenizer"]["pretokenizers"][0].update(pattern={"Regex": "("}), "pretokenizers[0].pattern does"),
    (lambda s: s["pre_tokenizer"]["pretokenizers"][1].update(individual_digits="yes"), "individual_digits must be"),
    (lambda s: s["model"].update(ignore_merges=1), "model.ignore_merges must be true or false"),
    (lambda s: s["added_tokens"].append({"id": 261, "content": ""}), "added_tokens[2]"),
    (lambda s: s["added_tokens"].append({"id": 97, "content": "<x>"}), "added_tokens[2] gives '<x>' the id 97"),
    (lambda s: s.update(added_tokens={"<s>": 259}), "added_tokens must be a list"),
    (lambda s: s["post_processor"]["special_tokens"]["<s>"].update(ids=[9999]), "post_processor adds the id 9999"),
    (lambda s: s["model"]["vocab"].update({"a€": 300}), "model.vocab['a€'] holds '€'"),
])
def test_a_damaged_tokenizer_json_is_refused_when_read_naming_the_place(change, place):
    s = changed(change)
    with pytest.raises(ValueError) as e:
        HFTokenizer(s, where="hub/tokenizer.json")
    one_line(e.value, "hub/tokenizer.json: ", place)


@pytest.mark.parametrize("change, place", [
    (lambda s: s["model"]["merges"].append("c d"), "model.merges[3]"),
    (lambda s: s["normalizer"].update(normalizers=5), "normalizer.normalizers"),
])
def test_a_run_on_a_damaged_tokenizer_json_ends_in_one_line(tmp_path, capsys, change, place):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "tokenizer.json").write_text(json.dumps(changed(change)))
    text = tmp_path / "text.txt"
    text.write_text("abcd cd ab 12 " * 400)
    code, err = cli(capsys, "train", "--data", str(text), "--tokenizer", str(hub), "--out-dir", str(tmp_path / "run"),
                    "--max-iters", "1", *TINY)
    assert code == 1
    error_line(err, str(hub / "tokenizer.json"), place)
    assert not (tmp_path / "run").exists()


def json_paths(value, path=()):
    """Every place in a JSON value, as a tuple of keys and indices."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from json_paths(v, (*path, i))


SCALARS = (st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=4)
           | st.sampled_from(["", "a", "NFC", "Sequence", "a b", "Ġ", "(", "<s>"]))
JSON_VALUES = st.recursive(SCALARS, lambda v: st.lists(v, max_size=3) | st.dictionaries(
    st.sampled_from(["type", "id", "content", "ids", "Regex", "String"]), v, max_size=3), max_leaves=6)
PLACES = [p for p in json_paths(spec()) if not (len(p) == 3 and p[1] == "vocab" and p[2] not in ("ab", "abc", "Ġa"))]


@settings(max_examples=200, deadline=None)
@given(place=st.sampled_from(PLACES), action=st.sampled_from(["replace", "delete"]), value=JSON_VALUES,
       text=st.text(max_size=30))
def test_a_mutated_tokenizer_json_is_refused_in_one_line_or_encodes_and_decodes(place, action, value, text):
    s = spec()
    if place:
        parent = s
        for key in place[:-1]:
            parent = parent[key]
        if action == "delete":
            del parent[place[-1]]
        else:
            parent[place[-1]] = value
    try:
        tokenizer = HFTokenizer(s, where="hub/tokenizer.json")
    except ValueError as e:
        one_line(e, "hub/tokenizer.json")
        return
    for special in (False, True):
        ids = tokenizer.encode(text + "<s>ab<|im_end|>", add_special_tokens=special)
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
        assert isinstance(tokenizer.decode(ids), str)


@pytest.mark.parametrize("special, fragment", [
    ({"": 256}, "the empty string"),
    ({"<|endoftext|>": 97}, "the same id, 97"),
    ({"<|a|>": 256, "<|b|>": 256}, "the same id, 256"),
])
def test_a_bpe_vocabulary_whose_ids_clash_is_refused_naming_the_file(special, fragment):
    d = json.loads(BPETokenizer({bytes([b]): b for b in range(256)}).to_json())
    d["special_tokens"] = special
    with pytest.raises(ValueError) as e:
        tokenizer_from_dict(d, "tok/tokenizer.json")
    one_line(e.value, "tok/tokenizer.json: ", fragment)


# --- JSON and safetensors: Python's own errors, said with the file and the place -----------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("content, fragment", [
    ('{"n_embd":\n 1' + "0" * 5000 + "}", "an integer of more than 4,300 digits (at line 2, column 2)"),
    ('{"a": 1,\n "b": ' + DEEP + "}", "nests its JSON 100,001 levels deep (at line 2"),
    ('{"model": {"vocab": {"x": "\\ud800"}}}', "model.vocab.x holds a lone surrogate"),
    ('{"\\udc00": 1}', "a key of the JSON holds a lone surrogate"),
    ('{"a": 1,}', "is not valid JSON (Expecting property name enclosed in double quotes at column 9)"),
], ids=["digits", "deep", "surrogate", "surrogate key", "syntax"])
def test_a_json_file_python_cannot_read_is_one_line_naming_the_file_and_place(tmp_path, content, fragment):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ValueError) as e:
        read_json(path)
    one_line(e.value, str(path), fragment)


def test_a_json_file_with_a_byte_order_mark_and_escaped_pairs_is_read(tmp_path):
    path = tmp_path / "tokenizer_config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"eos_token": "\U0001f680\u2028", "n": 1}).encode())
    assert read_json(path) == {"eos_token": "\U0001f680\u2028", "n": 1}


def safetensors_file(path: Path, header: str, body: bytes = b"\0" * 4) -> Path:
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


@pytest.mark.parametrize("header, fragment", [
    ('{"a": {"dtype": "F32", "shape": [0, ' + str(2**70) + '], "data_offsets": [0, 0]}}', "larger than any array"),
    ('{"a": {"dtype": "F32", "shape": [' + ", ".join(["1"] * 65) + '], "data_offsets": [0, 4]}}', "65 axes"),
    ('{"a": {"dtype": "F32", "shape": [1' + "0" * 5000 + '], "data_offsets": [0, 4]}}', "more than 4,300 digits"),
    ('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"x": "\\ud800"}}',
     "__metadata__.x holds a lone surrogate"),
    ('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": ' + DEEP + "}", "100,001 levels deep"),
], ids=["axis 2**70", "65 axes", "digits", "surrogate", "deep"])
def test_a_safetensors_header_python_cannot_take_is_one_line_naming_the_file(tmp_path, header, fragment):
    path = safetensors_file(tmp_path / "model.safetensors", header, b"" if "[0, 0]" in header else b"\0" * 4)
    with pytest.raises(ValueError) as e:
        weights.read(path)
    one_line(e.value, str(path), "damaged", fragment)


# --- JSONL: lines end at \n (or \r\n) only -------------------------------------------------------------------------

# every character a UTF-8 file can hold (a lone surrogate is none: it is refused, test_untrusted above)
TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\u2028", "\u2029", "\x85", "\r", "\n", "\x0b", "\x0c",
                                                           "\x1c", "\x1e", "\ufeff", "\x00"]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.fixed_dictionaries({"prompt": TEXT, "completion": TEXT}), min_size=1, max_size=5),
       ensure_ascii=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(),
       blank=st.booleans())
def test_records_json_writes_read_back_equal_whatever_their_characters(tmp_path, records, ensure_ascii, newline, bom,
                                                                       blank):
    lines = [json.dumps(r, ensure_ascii=ensure_ascii) for r in records]
    text = ("\ufeff" if bom else "") + (newline * blank) + newline.join(lines) + newline
    path = tmp_path / "records.jsonl"
    path.write_bytes(text.encode("utf-8"))
    assert [r for _, r in read_jsonl(path)] == records


def test_a_record_with_a_line_separator_in_a_string_trains(tmp_path, capsys):
    records = [{"prompt": "ab\u2028", "completion": "b\u2029a\x85"}] * 12
    path = write_jsonl(tmp_path / "data.jsonl", records, ensure_ascii=False)
    assert "\u2028" in path.read_text(encoding="utf-8")  # (written as it is, not escaped)
    code, err = cli(capsys, "train", "--data", str(path), "--out-dir", str(tmp_path / "run"), "--max-iters", "1",
                    *TINY, "--block-size", "32", "--warmup-iters", "0")
    assert code == 0, err
