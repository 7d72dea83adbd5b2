"""Character-level tokenizer: the vocabulary is the sorted set of characters of a text, as in nanoGPT's
shakespeare_char; token id i is the i-th character of that sorted string."""

import hashlib
import json

import numpy as np

from minigpt.validate import check_object


class CharTokenizer:
    """
    >>> tok = CharTokenizer.from_text("hello world")
    >>> tok.chars
    ' dehlorw'
    >>> tok.encode("hold").tolist()
    [4, 5, 3, 2]
    >>> tok.decode([4, 5, 3, 2])
    'hold'
    """

    def __init__(self, chars: str):
        if len(chars) == 0 or sorted(set(chars)) != list(chars):
            raise ValueError("a character vocabulary must be a non-empty string of sorted, distinct characters")
        self.chars = chars
        # code points in sorted order, for a vectorised lookup with searchsorted
        self._codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)  # (V,)

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """text -> (len(text),) int64 token ids. A character outside the vocabulary is an error."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (n,) one code point per character
        ids = np.searchsorted(self._codes, codes)  # (n,) where each code point would sit in the sorted vocabulary
        unknown = (ids == self.vocab_size) | (self._codes[np.minimum(ids, self.vocab_size - 1)] != codes)  # (n,)
        if unknown.any():
            i = int(np.argmax(unknown))
            c = text[i]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at position {i} is not in the vocabulary of "
                f"{self.vocab_size} characters; remove it, or train on text that contains it"
            )
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise ValueError(f"token id {bad} is outside the vocabulary (size {self.vocab_size})")
        return "".join(self.chars[i] for i in ids)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.chars.encode("utf-8")).hexdigest()

    def decode_bytes(self, ids) -> bytes:
        return self.decode(ids).encode("utf-8")

    def to_json(self) -> str:
        return json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict, where: str = "tokenizer.json") -> "CharTokenizer":
        """From to_json's object, checked (minigpt.data.load_tokenizer reads it from a file)."""
        check_object(d, where, {"type": str, "chars": str})
        try:
            return cls(d["chars"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def __eq__(self, other):
        return isinstance(other, CharTokenizer) and other.chars == self.chars
