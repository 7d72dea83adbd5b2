"""A Hugging Face fast tokenizer's tokenizer.json, read and encoded as the `tokenizers` library does: the byte-level
BPE of GPT-2, Llama 3, Qwen 2/3 and SmolLM 2, each with its own pre-tokenizer.

The file is a pipeline, and encode runs its steps in its order:

    added tokens   split out of the text first (leftmost, longest): <|im_start|>, <|begin_of_text|>, ...
    normalizer     null, or Unicode normalisation (Qwen: NFC), or a Sequence of those
    pre_tokenizer  cuts the text into pieces: Split (a regex; its matches are pieces, as are the gaps between
                   them), Digits (each digit, or each run of digits, a piece of its own), ByteLevel (GPT-2's regex,
                   optionally, and the switch to bytes), or a Sequence of those, each applied to every piece
    model          BPE on each piece's UTF-8 bytes: merge, again and again, the adjacent pair listed earliest in
                   `merges` (minigpt.data.bpe.bpe_merge with pair_ranks); with ignore_merges (Llama 3), a piece that
                   is a token is taken whole first
    post_processor TemplateProcessing's special tokens around the text (Llama 3's <|begin_of_text|>), with
                   add_special_tokens=True

What minigpt cannot compute as `tokenizers` does (SentencePiece-style Metaspace, byte_fallback, WordPiece, an added
token that strips its neighbours' spaces) is refused in one line naming the field; so is a damaged file, when it is
read rather than when a text first meets the damage, naming the place (model.merges[12], normalizer.normalizers[1]):
a merge of tokens the vocabulary lacks, a list that is not one, a switch that is not true or false, an added token
with no content or another token's id, a post-processor's id that no token has. Docs: docs/tokenization.md;
tests: tests/test_hf_tokenizer.py (against `tokenizers` on generated text, and on directories shaped like
SmolLM2-135M's, Qwen3-0.6B's and Llama 3's).
"""

import hashlib
import json
import unicodedata
from pathlib import Path

import regex

from minigpt.data.bpe import BYTE_TO_CHAR, CHAR_TO_BYTE, ENDOFTEXT, ByteDecoding, bpe_merge, check_vocab
from minigpt.data.chat_template import from_file

# ByteLevel's own split (use_regex: true), as tokenizers writes it: GPT-2's, without tiktoken's \s++$
BYTE_LEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
NORMALIZERS = ("NFC", "NFD", "NFKC", "NFKD")


def refuse(where, what: str) -> ValueError:
    return ValueError(f"{where}: {what}; minigpt reads byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM) only")


def damaged(where, place: str, what: str) -> ValueError:
    return ValueError(f"{where}: {place} {what}; the file is damaged")


def flag(obj: dict, key: str, place: str, where, default: bool = False) -> bool:
    """A switch of the pipeline: true, false, or absent (null) for its default."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise damaged(where, f"{place}.{key}", f"must be true or false, got {value!r:.40}")
    return value


def items_of(value, place: str, where) -> list:
    """A list of the pipeline (a Sequence's parts, the merges, the added tokens)."""
    if not isinstance(value, list):
        raise damaged(where, place, f"must be a list, got {value!r:.40}")
    return value


def byte_string(token: str, place: str, where) -> bytes:
    """A token's bytes from GPT-2's printable form of them (vocab.json's and merges')."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError as e:
        raise refuse(where, f"{place} holds {e.args[0]!r}, which is not one of byte-level BPE's 256 characters") from None


def split(pieces: list, pattern, remove: bool = False) -> list:
    """Each piece cut at the pattern's matches: the matches and the text between them, in order ("Isolated");
    remove: drop the matches ("Removed")."""
    out = []
    for piece in pieces:
        position = 0
        for m in pattern.finditer(piece):
            if m.start() > position:
                out.append(piece[position:m.start()])
            if not remove and m.end() > m.start():
                out.append(m.group())
            position = m.end()
        if position < len(piece):
            out.append(piece[position:])
    return out


class HFTokenizer(ByteDecoding):
    """spec: a tokenizer.json's object; config: its tokenizer_config.json's (the special tokens' roles, the chat
    template), kept to be written back on export; where: the file, for error messages."""

    def __init__(self, spec: dict, config: dict | None = None, where: str = "tokenizer.json"):
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise ValueError(f"{where} is not a Hugging Face tokenizer.json (it has no \"model\" object)")
        self.spec, self.config, self.where = spec, dict(config or {}), where
        model = spec["model"]
        if model.get("type", "BPE") != "BPE":
            raise refuse(where, f"its model is {model.get('type')!r}, not BPE")
        for key, fine in (("byte_fallback", (False, None)), ("dropout", (None,)), ("continuing_subword_prefix", ("", None)),
                          ("end_of_word_suffix", ("", None))):
            if model.get(key) not in fine:
                raise refuse(where, f"model.{key} is {model.get(key)!r}")
        self.ignore_merges = flag(model, "ignore_merges", "model", where)
        self.normalizers = self.read_normalizer(spec.get("normalizer"), "normalizer")
        self.steps = self.read_pre_tokenizer(spec.get("pre_tokenizer"), "pre_tokenizer")
        if not any(step[0] == "bytes" for step in self.steps):
            raise refuse(where, "its pre_tokenizer has no ByteLevel step")

        vocab = check_vocab(model.get("vocab"), f"{where}'s model.vocab")
        self.special_tokens = self.read_added_tokens(spec.get("added_tokens"), vocab)
        self.ranks = {}  # token bytes -> id
        for token, i in vocab.items():
            if token not in self.special_tokens:
                self.ranks[byte_string(token, f"model.vocab[{token!r:.40}]", where)] = i
        missing = [b for b in range(256) if bytes([b]) not in self.ranks]
        if missing:
            raise refuse(where, f"byte {missing[0]} is not a token, so not every text can be encoded")
        self.pair_ranks = self.read_merges(model.get("merges"))
        self.decoder = {i: b for b, i in self.ranks.items()}
        self.decoder.update({i: s.encode("utf-8") for s, i in self.special_tokens.items()})
        self.added_regex = regex.compile("|".join(regex.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True))) \
            if self.special_tokens else None
        try:
            self.prefix, self.suffix = self.read_template(spec.get("post_processor"))
        except (KeyError, TypeError, AttributeError):
            raise ValueError(f"{where}: its post_processor names a special token it does not define; the file is damaged") from None
        for i in self.prefix + self.suffix:
            if type(i) is not int or i not in self.decoder:
                raise damaged(where, "post_processor", f"adds the id {i!r:.40}, which no token has")
        self.cache = {}  # piece -> its ids

    # --- reading the pipeline: each part checked as it is read, an error naming its place (normalizer.normalizers[1])

    def read_normalizer(self, n, place: str) -> list:
        if n is None:
            return []
        if isinstance(n, dict) and n.get("type") == "Sequence":
            parts = items_of(n.get("normalizers"), f"{place}.normalizers", self.where)
            return [form for i, part in enumerate(parts)
                    for form in self.read_normalizer(part, f"{place}.normalizers[{i}]")]
        if isinstance(n, dict) and n.get("type") in NORMALIZERS:
            return [n["type"]]
        raise refuse(self.where, f"its normalizer {n.get('type') if isinstance(n, dict) else n!r:.40} ({place}) is not "
                                 f"one minigpt computes (null, {', '.join(NORMALIZERS)}, or a Sequence of these)")

    def read_pre_tokenizer(self, p, place: str) -> list:
        """The pre-tokenizer as steps: ("split", regex, remove), ("bytes",) for ByteLevel's switch to bytes."""
        if p is None:
            return []
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "Sequence":
            parts = items_of(p.get("pretokenizers"), f"{place}.pretokenizers", self.where)
            return [step for i, part in enumerate(parts)
                    for step in self.read_pre_tokenizer(part, f"{place}.pretokenizers[{i}]")]
        if kind == "Split":
            pattern, behavior = p.get("pattern"), p.get("behavior")
            if flag(p, "invert", place, self.where) or behavior not in ("Isolated", "Removed"):
                raise refuse(self.where, f"a Split pre-tokenizer ({place}) with behavior {behavior!r:.40} and invert "
                                         f"{p.get('invert')!r:.40} (minigpt computes Isolated and Removed)")
            if not (isinstance(pattern, dict) and len(pattern) == 1
                    and isinstance(pattern.get("Regex", pattern.get("String")), str)):
                raise ValueError(f"{self.where}: {place}.pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}; the file "
                                 f"is damaged")
            source = pattern["Regex"] if "Regex" in pattern else regex.escape(pattern["String"])
            try:
                compiled = regex.compile(source)
            except regex.error as e:
                raise ValueError(f"{self.where}: {place}.pattern does not compile: {e}") from None
            return [("split", compiled, behavior == "Removed")]
        if kind == "Digits":
            one_by_one = flag(p, "individual_digits", place, self.where)
            return [("split", regex.compile("[0-9]" if one_by_one else "[0-9]+"), False)]
        if kind == "ByteLevel":
            steps = [("prefix_space",)] if flag(p, "add_prefix_space", place, self.where) else []
            if flag(p, "use_regex", place, self.where, default=True):
                steps.append(("split", regex.compile(BYTE_LEVEL_PATTERN), False))
            return steps + [("bytes",)]
        raise refuse(self.where, f"its pre_tokenizer {kind!r:.40} ({place}) is not one minigpt computes (Split, Digits, "
                                 f"ByteLevel, Sequence)")

    def read_added_tokens(self, added, vocab: dict) -> dict:
        """added token content -> id: split out of the text before anything else. Each a non-empty string whose id
        is its own: no other added token's, and no other vocab token's."""
        special, owner = {}, {i: token for token, i in vocab.items()}
        for n, t in enumerate(items_of([] if added is None else added, "added_tokens", self.where)):
            place = f"added_tokens[{n}]"
            if not (isinstance(t, dict) and isinstance(t.get("content"), str) and t["content"]
                    and type(t.get("id")) is int and 0 <= t["id"] < 2**32):
                raise ValueError(f"{self.where}: an added token is not an object with a content and an id ({place}: "
                                 f"a non-empty string and an integer from 0); the file is damaged")
            if t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
                raise refuse(self.where, f"the added token {t['content']!r} sets lstrip, rstrip or single_word")
            content, i = t["content"], t["id"]
            if owner.get(i, content) != content:
                raise damaged(self.where, place, f"gives {content!r:.40} the id {i}, which is the id of "
                                                 f"{owner[i]!r:.40}")
            if special.get(content, i) != i:
                raise damaged(self.where, place, f"gives {content!r:.40} the id {i}, but an added token before it "
                                                 f"gives it the id {special[content]}")
            special[content], owner[i] = i, content
        return special

    def read_merges(self, merges) -> dict:
        """(left bytes, right bytes) -> rank. Each merge is of two tokens of the vocabulary into a third: a merge
        whose parts or result are not tokens is a damaged file (as `tokenizers` refuses it)."""
        pairs = {}
        for r, m in enumerate(items_of(merges, "model.merges", self.where)):
            parts = m.split(" ") if isinstance(m, str) else m  # "a b" (older files) or ["a", "b"]
            place = f"model.merges[{r}]"
            if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) and p for p in parts)):
                raise ValueError(f"{self.where}: {place} is {m!r:.40}, not a merge of two tokens (\"a b\" or [\"a\", "
                                 f"\"b\"]); the file is damaged")
            a, b = (byte_string(part, place, self.where) for part in parts)
            for token in (a, b, a + b):
                if token not in self.ranks:
                    raise ValueError(f"{self.where}: {place} ({m!r:.40}) "
                                     f"{'makes' if token == a + b else 'merges'} "
                                     f"{''.join(BYTE_TO_CHAR[x] for x in token)!r:.40}, which model.vocab does not "
                                     f"hold; the file is damaged")
            pairs.setdefault((a, b), r)
        return pairs

    def read_template(self, p) -> tuple:
        """The special tokens TemplateProcessing puts before and after a single text (add_special_tokens=True)."""
        if p is None or p.get("type") == "ByteLevel":
            return [], []
        if p.get("type") == "Sequence":
            parts = [self.read_template(q) for q in p.get("processors", [])]
            return [i for a, _ in parts for i in a], [i for _, b in parts for i in b]
        if p.get("type") != "TemplateProcessing":
            raise refuse(self.where, f"its post_processor {p.get('type')!r} is not one minigpt computes "
                                     f"(TemplateProcessing, ByteLevel)")
        ids, where = ([], []), 0
        for item in p.get("single", []):
            if "Sequence" in item:
                where = 1
            elif "SpecialToken" in item:
                ids[where].extend(p["special_tokens"][item["SpecialToken"]["id"]]["ids"])
        return ids

    # --- encoding and decoding --------------------------------------------------------------------

    @property
    def eot_token(self) -> int | None:
        """The id of <|endoftext|>, the separator between documents, if the vocabulary has it."""
        return self.special_tokens.get(ENDOFTEXT)

    @property
    def chat_template(self) -> str | None:
        """tokenizer_config.json's chat template (a Jinja template), if it has one as a string."""
        template = self.config.get("chat_template")
        return template if isinstance(template, str) else None

    def with_chat(self, special_tokens, chat_template: str | None) -> "HFTokenizer":
        """This tokenizer with the special tokens it lacks added (added_tokens, after every id) and the chat
        template set."""
        spec = {**self.spec, "added_tokens": list(self.spec.get("added_tokens") or [])}
        for s in special_tokens:
            if s not in self.special_tokens:
                spec["added_tokens"].append({"id": self.vocab_size + len(spec["added_tokens"]) - len(self.special_tokens),
                                             "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                                             "normalized": False, "special": True})
        config = {**self.config, "chat_template": chat_template}
        return HFTokenizer(spec, config, self.where)

    def role_ids(self) -> dict:
        """bos_token_id and eos_token_id, from tokenizer_config.json's bos_token and eos_token (a string, or an
        object with its content), as a model's config.json names them; {} where the config names none."""
        ids = {}
        for role in ("bos_token", "eos_token"):
            token = self.config.get(role)
            token = token.get("content") if isinstance(token, dict) else token
            if token in self.special_tokens:
                ids[f"{role}_id"] = self.special_tokens[token]
        return ids

    def encode(self, text: str, add_special_tokens: bool = False) -> list:
        """Token ids of `text`, as tokenizers' Tokenizer.encode(text, add_special_tokens=...).ids."""
        ids, position = [], 0
        for m in (self.added_regex.finditer(text) if self.added_regex is not None else ()):
            ids.extend(self.encode_ordinary(text[position:m.start()]))
            ids.append(self.special_tokens[m.group()])
            position = m.end()
        ids.extend(self.encode_ordinary(text[position:]))
        return self.prefix + ids + self.suffix if add_special_tokens else ids

    def encode_ordinary(self, text: str) -> list:
        """Token ids of text without added tokens: normalise, pre-tokenize, BPE on each piece."""
        for form in self.normalizers:
            text = unicodedata.normalize(form, text)
        pieces = [text] if text else []
        for step in self.steps:
            if step[0] == "prefix_space":
                pieces = [p if p.startswith(" ") else " " + p for p in pieces]
            elif step[0] == "split":
                pieces = split(pieces, step[1], remove=step[2])
        ids = []
        for piece in pieces:
            cached = self.cache.get(piece)
            if cached is None:
                b = piece.encode("utf-8")
                if self.ignore_merges and b in self.ranks:
                    cached = [self.ranks[b]]
                else:
                    cached = [self.ranks[part] for part in bpe_merge(b, self.ranks, pair_ranks=self.pair_ranks)]
                self.cache[piece] = cached
            ids.extend(cached)
        return ids

    # (vocab_size, decode_bytes and decode: ByteDecoding's, minigpt/data/bpe.py)

    # --- identity and files -------------------------------------------------------------------------

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        """minigpt's tokenizer.json for a checkpoint: the Hugging Face file and its tokenizer_config, whole."""
        return json.dumps({"type": "hf", "tokenizer": self.spec, "tokenizer_config": self.config}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict, where: str = "tokenizer.json") -> "HFTokenizer":
        if not isinstance(d.get("tokenizer"), dict) or not isinstance(d.get("tokenizer_config", {}), dict):
            raise ValueError(f"{where}: a tokenizer of type \"hf\" needs a \"tokenizer\" object; the file is damaged")
        config = dict(d.get("tokenizer_config") or {})
        template = from_file(config.get("chat_template"), where)
        if template is not None:  # (named for errors; a list of named templates is kept as it is, for export)
            config["chat_template"] = template
        return cls(d["tokenizer"], config, where)

    def save(self, directory) -> None:
        """tokenizer.json and tokenizer_config.json, as transformers' PreTrainedTokenizerFast reads them."""
        directory = Path(directory)
        (directory / "tokenizer.json").write_text(json.dumps(self.spec, ensure_ascii=False), encoding="utf-8")
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **self.config}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")

    def __eq__(self, other):
        return isinstance(other, HFTokenizer) and other.fingerprint() == self.fingerprint()

