"""Character-level tokenizer: the vocabulary is the sorted set of characters of a text, as in nanoGPT's
shakespeare_char; token id i is the i-th character of that sorted string. Fine-tuning on records may add special
tokens after the characters (<|endoftext|>, <|im_start|>, ...: minigpt/data/records.py) and a chat template, which
are saved with the vocabulary."""

import hashlib
import json

import numpy as np
import regex

from minigpt.data.chat_template import from_file
from minigpt.validate import check_object


class UnknownCharacter(ValueError):
    """A character outside the vocabulary, at `position` (from 0) of the text encoded: what `minigpt chat` names in
    the line that was typed."""

    def __init__(self, character: str, position: int, vocabulary: int):
        super().__init__(f"character {character!r} (U+{ord(character):04X}) at position {position} is not in the "
                         f"vocabulary of {vocabulary} characters; remove it, or train on text that contains it")
        self.character, self.position = character, position


class CharTokenizer:
    """
    >>> tok = CharTokenizer.from_text("hello world")
    >>> tok.chars
    ' dehlorw'
    >>> tok.encode("hold").tolist()
    [4, 5, 3, 2]
    >>> tok.decode([4, 5, 3, 2])
    'hold'
    >>> tok = tok.with_chat(["<|endoftext|>"], None)
    >>> tok.encode("he<|endoftext|>").tolist(), tok.vocab_size
    ([3, 2, 8], 9)
    """

    def __init__(self, chars: str, special_tokens=(), chat_template: str | None = None):
        if len(chars) == 0 or sorted(set(chars)) != list(chars):
            raise ValueError("a character vocabulary must be a non-empty string of sorted, distinct characters")
        special_tokens = list(special_tokens)
        if len(set(special_tokens)) != len(special_tokens) or not all(isinstance(s, str) and len(s) > 1 for s in special_tokens):
            raise ValueError("special tokens must be distinct strings of more than one character")
        self.chars = chars
        # code points in sorted order, for a vectorised lookup with searchsorted
        self._codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)  # (V,)
        # special token -> id, after the characters; split out of a text before its characters are looked up
        self.special_tokens = {s: len(chars) + k for k, s in enumerate(special_tokens)}
        self.special_regex = regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True))) \
            if special_tokens else None
        self.chat_template = chat_template  # a Jinja template, as a Hugging Face tokenizer_config.json has one

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.special_tokens)

    @property
    def eot_token(self) -> int | None:
        return self.special_tokens.get("<|endoftext|>")

    def with_chat(self, special_tokens, chat_template: str | None) -> "CharTokenizer":
        """This vocabulary with the special tokens it lacks added at the end, and the chat template set."""
        added = [s for s in special_tokens if s not in self.special_tokens]
        return CharTokenizer(self.chars, [*self.special_tokens, *added], chat_template)

    def encode(self, text: str) -> np.ndarray:
        """text -> (n,) int64 token ids: one per character, one per special token. A character outside the
        vocabulary is an error."""
        if self.special_regex is None:
            return self.encode_chars(text)
        ids, position = [], 0
        for m in self.special_regex.finditer(text):
            ids.append(self.encode_chars(text[position:m.start()], position))
            ids.append(np.array([self.special_tokens[m.group()]], dtype=np.int64))
            position = m.end()
        ids.append(self.encode_chars(text[position:], position))
        return np.concatenate(ids)

    def encode_chars(self, text: str, offset: int = 0) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (n,) one code point per character
        n = len(self.chars)
        ids = np.searchsorted(self._codes, codes)  # (n,) where each code point would sit in the sorted vocabulary
        unknown = (ids == n) | (self._codes[np.minimum(ids, n - 1)] != codes)  # (n,)
        if unknown.any():
            i = int(np.argmax(unknown))
            raise UnknownCharacter(text[i], offset + i, n)
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise ValueError(f"token id {bad} is outside the vocabulary (size {self.vocab_size})")
        special = list(self.special_tokens)
        n = len(self.chars)
        return "".join(self.chars[i] if i < n else special[i - n] for i in ids)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.chars.encode("utf-8"))
        if self.special_tokens or self.chat_template is not None:  # (a plain vocabulary keeps its old fingerprint)
            digest.update(json.dumps([list(self.special_tokens), self.chat_template]).encode())
        return digest.hexdigest()

    def decode_bytes(self, ids) -> bytes:
        return self.decode(ids).encode("utf-8")

    def to_json(self) -> str:
        d = {"type": "char", "chars": self.chars}
        if self.special_tokens:
            d["special_tokens"] = list(self.special_tokens)
        if self.chat_template is not None:
            d["chat_template"] = self.chat_template
        return json.dumps(d, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict, where: str = "tokenizer.json") -> "CharTokenizer":
        """From to_json's object, checked (minigpt.data.load_tokenizer reads it from a file)."""
        check_object(d, where, {"type": str, "chars": str, "special_tokens": (list, None), "chat_template": (str, None)})
        try:
            return cls(d["chars"], d.get("special_tokens") or (), from_file(d.get("chat_template"), where))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def __eq__(self, other):
        return isinstance(other, CharTokenizer) and other.fingerprint() == self.fingerprint()
