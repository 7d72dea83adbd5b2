"""Records for supervised fine-tuning: a JSONL file, one record a line, of one of two kinds (by its keys):

    {"prompt": "201102", "completion": "001122"}                                    instruction
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}   instruction (chat)
    {"text": "To be, or not to be", "label": "HAMLET"}                              classification
    {"prompt": "2+2=", "chosen": "4", "rejected": "5"}                              preference (DPO)
    {"prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}   chat preference

An instruction record is a conversation (a prompt and its completion are a user turn and an assistant turn), rendered
into text by a chat template and tokenized; the loss counts the assistant's tokens only (the others' targets are
ignore_index). The template is a Jinja template rendered as transformers' apply_chat_template renders it:
    - a tokenizer's own (a Hugging Face directory's chat_template), so that a fine-tuned model formats its prompts as
      its original did;
    - otherwise CHATML below for chat records (special tokens <|im_start|> and <|im_end|>);
    - PLAIN below for prompt/completion records: the prompt, then the completion and <|endoftext|>.
The special tokens a template needs are added to the tokenizer (minigpt/run.py grows the embedding to match), and the
template is saved with it, so that `minigpt chat`, `sample --chat`, `eval` and an export all format prompts alike.

A file is read once (read_records) into a RecordFile; its records as a dataset, tokenized, split and batched padded
on the right: minigpt/data/record_datasets.py. Docs: docs/finetuning.md.
"""

import hashlib
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigpt.data import chat_template
from minigpt.data.chat_template import ChatTemplate
from minigpt.data.text import encode_text
from minigpt.validate import decode, parse_json, regular_file

EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
EXTRACT = "<|extract|>"  # ends every text a classifier reads, as the GPT paper's extract token: its label is read there
# ChatML, the format of Qwen's and SmolLM's chat models: every turn between <|im_start|>role and <|im_end|>
CHATML = ChatTemplate("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
                      "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                      "{% endif %}", "minigpt's built-in ChatML template")
# a prompt and its completion, as they are, the completion ended by <|endoftext|>
PLAIN = ChatTemplate("{% for message in messages %}{{ message['content'] }}{% if message['role'] == 'assistant' %}"
                     "{{ eos_token }}{% endif %}{% endfor %}", "minigpt's built-in prompt and completion template")
ROLES = ("system", "user", "assistant")
MARKER = re.compile(r"<\|[A-Za-z0-9_.:-]{1,64}\|>")  # a special token as chat templates write them: <|im_start|>
VAL_FRACTION = 0.1  # the last 10% of a file's records are held out, as the last 10% of a text is
MAX_LABELS = 1000
# the template of each kind, where the tokenizer has none of its own
BUILT_IN = {"instruction": PLAIN, "chat": CHATML, "preference": PLAIN, "chat preference": CHATML}
INSTRUCTION_KINDS = ("instruction", "chat")  # the kinds of a prompt and its completion: what --method rl samples for
PREFERENCE_KINDS = ("preference", "chat preference")  # the kinds of pairs of completions: what --method dpo trains on


def read_jsonl(path) -> list:
    """The records of a JSONL file, each a JSON object; an error names the file and line. Lines end at \\n (or
    \\r\\n), as JSON Lines says, and nowhere else: U+2028, U+2029 and U+0085, where str.splitlines also breaks,
    may stand in a JSON string as they are (json.dumps(..., ensure_ascii=False) writes them so). A byte-order mark at
    the start (a Windows editor's) is read past."""
    path = regular_file(path, "data file ", "give the path of a JSONL file with --data")
    records = []
    text = decode(path.read_bytes(), path, "data file ", "save it as UTF-8").removeprefix("\ufeff")
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip(" \t\r"):  # (JSON's whitespace)
            continue
        record = parse_json(line, f"{path} line {n}", "each line must be one JSON object")
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {n} is a JSON {type(record).__name__}, not an object")
        records.append((n, record))
    if not records:
        raise ValueError(f"data file {path} holds no records; give one JSON object a line")
    return records


def kind_of(record: dict, where: str) -> str:
    """"instruction", "chat", "classification", "choice" (multiple choice, scored by minigpt eval), or "preference"
    ("chat preference" where its prompt is a list of messages, TRL's conversational form), by the keys."""
    keys = set(record)
    for kind, need in (("instruction", {"prompt", "completion"}), ("chat", {"messages"}),
                       ("classification", {"text", "label"}), ("choice", {"prompt", "choices", "answer"}),
                       ("preference", {"prompt", "chosen", "rejected"})):
        if keys == need:
            return "chat preference" if kind == "preference" and isinstance(record["prompt"], list) else kind
    raise ValueError(f"{where} has the keys {sorted(keys)}; a record is {{\"prompt\", \"completion\"}}, "
                     f"{{\"messages\"}}, {{\"text\", \"label\"}}, {{\"prompt\", \"choices\", \"answer\"}} or "
                     f"{{\"prompt\", \"chosen\", \"rejected\"}}")


def with_article(kind: str) -> str:
    """A kind of record with its indefinite article: "an instruction", "a chat"."""
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def check_string(value, what: str, where: str) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise ValueError(f"{where}: {what} must be a string without NUL characters, got {value!r:.40}")
    return value


def conversation(record: dict, kind: str, where: str) -> list:
    """An instruction or chat record as a conversation, its messages checked: roles, strings, an assistant turn to
    learn."""
    if kind == "instruction":
        return [{"role": "user", "content": check_string(record["prompt"], "prompt", where)},
                {"role": "assistant", "content": check_string(record["completion"], "completion", where)}]
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: messages must be a non-empty list of {{\"role\", \"content\"}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValueError(f"{where}: message {i} must be an object with exactly a role and a content")
        if m["role"] not in ROLES:
            raise ValueError(f"{where}: message {i} has role {m['role']!r}; roles are {', '.join(ROLES)}")
        check_string(m["content"], f"message {i}'s content", where)
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where}: no message has the role assistant, so there is nothing to learn")
    return messages


def preference_conversations(record: dict, kind: str, where: str) -> tuple[list, list]:
    """A preference record as two conversations, the prompt then the chosen, the prompt then the rejected: strings
    (preference) are a user turn and an assistant turn; lists of messages (chat preference) are the prompt's turns
    and the completion's assistant turns, as TRL's conversational preference data."""
    if kind == "preference":
        prompt = [{"role": "user", "content": check_string(record["prompt"], "prompt", where)}]
        return tuple(prompt + [{"role": "assistant", "content": check_string(record[key], key, where)}]
                     for key in ("chosen", "rejected"))
    pairs = []
    for key in ("chosen", "rejected"):
        turns = record[key]
        if not isinstance(turns, list) or not turns or any(not isinstance(m, dict) or m.get("role") != "assistant"
                                                           for m in turns):
            raise ValueError(f"{where}: {key} must be a non-empty list of assistant messages, as the prompt is a list "
                             f"of messages")
        pairs.append(conversation({"messages": record["prompt"] + turns}, "chat", where))
    return tuple(pairs)


def special_tokens_of(template: str, tokenizer) -> list:
    """The special tokens a template writes, which the tokenizer must have: its eos (<|endoftext|> unless a Hugging
    Face tokenizer names another), which also pads and stops a reply; ChatML's two; and for a tokenizer's own
    template, the <|...|> markers in its text (<|im_start|>, <|start_header_id|>, ...), which a character vocabulary
    would otherwise spell out character by character, if it has the characters at all."""
    eos = role_tokens(tokenizer)["eos_token"]
    if template == PLAIN:
        return [eos]
    if template == CHATML:
        return [eos, IM_START, IM_END]
    return list(dict.fromkeys([eos, *MARKER.findall(template)]))  # (once each, in order of first appearance)


def render(template: str, messages: list, add_generation_prompt: bool, tokenizer) -> str:
    """A conversation as text, by a Jinja chat template, as transformers' apply_chat_template(tokenize=False) renders
    it, with the tokenizer's special tokens as bos_token and eos_token; within bounds of time and size, any failure
    one line that names the template's file (minigpt/data/chat_template.py)."""
    return chat_template.render(template, messages, add_generation_prompt, **role_tokens(tokenizer))


def role_tokens(tokenizer) -> dict:
    """bos_token and eos_token as a template reads them: a Hugging Face tokenizer's, else <|endoftext|>."""
    config = getattr(tokenizer, "config", {})
    tokens = {}
    for role in ("bos_token", "eos_token"):
        token = config.get(role)
        tokens[role] = (token.get("content") if isinstance(token, dict) else token) or EOT
    return tokens


def pieces(template: str, messages: list, tokenizer) -> list:
    """A conversation's text in pieces, (text, trained): each assistant turn is the text its conversation gains
    from the prompt for it (the messages before it, with the generation prompt) to the turn itself; the rest is
    prompt. A template must render a conversation as the prefix of its continuation (transformers' templates do)."""
    out, done = [], ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render(template, messages[:i], True, tokenizer)
        full = render(template, messages[:i + 1], False, tokenizer)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise ValueError(f"{chat_template.source_of(template)} does not render a conversation as the beginning of "
                             f"its continuation, so the assistant's turns cannot be told apart; use another template")
        out += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    rest = render(template, messages, False, tokenizer)[len(done):]
    return out + ([(rest, False)] if rest else [])


def tokenize_conversation(tokenizer, template: str, messages: list) -> tuple:
    """(ids (n,) int64, trained (n,) bool): the conversation's tokens, and which of them the loss counts."""
    ids, trained = [], []
    for text, learn in pieces(template, messages, tokenizer):
        piece = encode_text(tokenizer, text)  # (n,) its special tokens' strings read as the tokens
        ids.append(piece)
        trained.append(np.full(len(piece), learn))
    return np.concatenate(ids), np.concatenate(trained)


def template_for(tokenizer, kind: str) -> str:
    """The template a run on records of `kind` renders with: the tokenizer's own for chats, else the built-in."""
    if kind in ("chat", "chat preference") and tokenizer.chat_template is not None:
        return tokenizer.chat_template
    return BUILT_IN[kind]


def chat_tokenizer(tokenizer, template: str):
    """The tokenizer, with the special tokens of a built-in template and the template itself."""
    return tokenizer.with_chat(special_tokens_of(template, tokenizer), template)


def stop_tokens(tokenizer) -> set:
    """The ids that end an assistant's turn: <|im_end|>, <|endoftext|> and the tokenizer's eos, where it has them."""
    special = tokenizer.special_tokens
    ids = {special[s] for s in (EOT, IM_END, "<|eot_id|>", "<|end|>") if s in special}
    eos = role_tokens(tokenizer)["eos_token"]
    if eos in special:
        ids.add(special[eos])
    return ids


class RecordFile(NamedTuple):
    """A JSONL file of records, read once: one kind of record throughout."""
    path: Path
    identity: dict  # its size and SHA-256, saved with a run that trains on it
    records: list  # (line, record) of each record
    kind: str  # every record's: "instruction", "chat", "classification", "choice", "preference" or "chat preference"


def read_records(path) -> RecordFile:
    """The records of a JSONL file, each of the kind of the first; an error names the file and line."""
    path = Path(path)
    raw = path.read_bytes() if path.is_file() else b""
    records = read_jsonl(path)
    kinds = [(n, kind_of(r, f"{path} line {n}")) for n, r in records]
    first = kinds[0][1]
    for n, k in kinds:
        if k != first:
            raise ValueError(f"{path} line {n} is {with_article(k)} record but the file's first is "
                             f"{with_article(first)} record; one file holds one kind of record")
    return RecordFile(path, {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}, records, first)


def characters_of(file: RecordFile):
    """A character vocabulary for a model trained from scratch on the records: every character of their text, as
    their template renders it (its special tokens are added after the characters)."""
    from minigpt.data.chars import CharTokenizer

    plain = CharTokenizer(" ")  # (a stand-in, for role_tokens: <|endoftext|>)
    texts = []
    for n, record in file.records:
        if file.kind in INSTRUCTION_KINDS:
            texts.append(render(BUILT_IN[file.kind], conversation(record, file.kind, f"{file.path} line {n}"), False,
                                plain))
        elif file.kind in PREFERENCE_KINDS:
            texts.extend(render(BUILT_IN[file.kind], messages, False, plain)
                         for messages in preference_conversations(record, file.kind, f"{file.path} line {n}"))
        else:
            texts.extend(str(v) for k, v in record.items() if k in ("text", "prompt") and isinstance(v, str))
            texts.extend(c for c in record.get("choices", []) if isinstance(c, str))
    text = "".join(texts)
    for special in (EOT, IM_START, IM_END):
        text = text.replace(special, "")
    return CharTokenizer.from_text(text or " ")
