"""Byte-level BPE, the tokenizer of GPT-2 (and of tiktoken's r50k_base and cl100k_base encodings).

Text is split into chunks by a regex (words with their leading space, numbers, punctuation runs,
whitespace), each chunk is taken as UTF-8 bytes, and within a chunk adjacent tokens are merged, lowest
rank first, for as long as their concatenation is a token. `ranks` maps every token's bytes to its id;
the 256 single bytes are tokens, so any text can be encoded and decoding gives back every string.

>>> tok = BPETokenizer.train("the cat and the hat and the bat " * 50, vocab_size=270)
>>> tok.decode(tok.encode("the rat"))
'the rat'
>>> tok.vocab_size
270

Docs: docs/tokenization.md. Tests: tests/test_bpe.py (against tiktoken and Hugging Face's GPT2TokenizerFast).
"""

import base64
import hashlib
import heapq
import json
from collections import Counter
from pathlib import Path

import regex

from minigpt import interrupt
from minigpt.data.chat_template import from_file
from minigpt.validate import check_object, read_json

# GPT-2's pre-split, as tiktoken writes it for r50k_base, and the one of cl100k_base (GPT-3.5/4)
PATTERNS = {
    "r50k": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    "cl100k": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
}
ENDOFTEXT = "<|endoftext|>"


def bytes_to_unicode() -> dict:
    """GPT-2's map from the 256 bytes to printable characters, used by vocab.json and merges.txt:
    printable bytes stand for themselves, the others for characters from 256 on."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def check_vocab(vocab, where) -> dict:
    """A vocab.json's object: token (GPT-2's printable form of its bytes) -> id, every id distinct."""
    if not isinstance(vocab, dict) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in vocab.values()):
        raise ValueError(f"{where} must map each token to a non-negative integer id; the file is damaged")
    if len(set(vocab.values())) != len(vocab):
        raise ValueError(f"{where} gives two tokens the same id; the file is damaged")
    return vocab


def check_ids(ranks: dict, special_tokens: dict) -> None:
    """Every token its own id, so that decoding gives back what was encoded: distinct ids from 0, and special tokens
    that are non-empty strings (an empty one would be found between every two characters)."""
    owner = {}
    for token, i in [*ranks.items(), *special_tokens.items()]:
        if type(i) is not int or i < 0:
            raise ValueError(f"the token {token!r:.40} has the id {i!r:.40}; ids are integers from 0")
        if token == "":
            raise ValueError("a special token is the empty string, which is found between every two characters")
        if owner.setdefault(i, token) != token:
            raise ValueError(f"the tokens {owner[i]!r:.40} and {token!r:.40} have the same id, {i}")


def read_text(path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}); the file is damaged") from None


# --8<-- [start:merge]
def bpe_merge(piece: bytes, ranks: dict, max_rank: int | None = None, pair_ranks: dict | None = None) -> list:
    """The tokens (as bytes) of one chunk: start from its bytes and merge, again and again, the adjacent
    pair whose concatenation has the lowest rank (the leftmost on a tie), while any pair is a token
    (of rank below max_rank, if given). pair_ranks: (left bytes, right bytes) -> rank, the merges of a
    Hugging Face tokenizer.json, which merge a pair only if it is listed (tiktoken's rule, above, merges
    any pair whose concatenation is a token). A heap of candidate pairs over a linked list of parts makes
    this O(n log n) rather than the textbook loop's O(n^2)."""
    n = len(piece)
    if n < 2:
        return [piece] if n else []
    start, end = list(range(n)), list(range(1, n + 1))  # part i is piece[start[i]:end[i]]
    nxt, prev, alive = list(range(1, n)) + [-1], list(range(-1, n - 1)), [True] * n

    def rank_of(i):  # rank of part i merged with the part after it, or None
        j = nxt[i]
        if j == -1:
            return None
        if pair_ranks is not None:
            return pair_ranks.get((piece[start[i]:end[i]], piece[start[j]:end[j]]))
        r = ranks.get(piece[start[i]:end[j]])
        return r if r is not None and (max_rank is None or r < max_rank) else None

    heap = [(r, i) for i in range(n - 1) if (r := rank_of(i)) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        if not alive[i] or rank_of(i) != r:
            continue  # stale: part i was merged away, or its neighbour changed since this was pushed
        j = nxt[i]
        end[i], alive[j], nxt[i] = end[j], False, nxt[j]  # part i absorbs part j
        if nxt[i] != -1:
            prev[nxt[i]] = i
        for k in (prev[i], i):  # the two pairs that changed
            if k != -1 and (rk := rank_of(k)) is not None:
                heapq.heappush(heap, (rk, k))
    return [piece[start[i]:end[i]] for i in range(n) if alive[i]]
# --8<-- [end:merge]


class ByteDecoding:
    """Decoding, one and the same for every byte-level BPE tokenizer (BPETokenizer below, HFTokenizer in
    minigpt/data/hf_tokenizer.py): each id's bytes joined, then read as UTF-8. The tokenizer sets `decoder`."""

    decoder: dict  # id -> the token's bytes (a special token's: its text in UTF-8)

    @property
    def vocab_size(self) -> int:
        return max(self.decoder) + 1

    def decode_bytes(self, ids) -> bytes:
        try:
            return b"".join(self.decoder[int(i)] for i in ids)
        except KeyError as e:
            raise ValueError(f"token id {e.args[0]} is outside the vocabulary (size {self.vocab_size})") from None

    def decode(self, ids) -> str:
        """Text of `ids` (special tokens as their text); bytes that do not form valid UTF-8 (a character cut between
        tokens) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


class BPETokenizer(ByteDecoding):
    """ranks: token bytes -> id (the single bytes included); pattern: a name in PATTERNS or a regex;
    special_tokens: string -> id, ids above every rank; chat_template: a Jinja template, as a Hugging Face
    tokenizer_config.json has one (minigpt/data/records.py), or None."""

    def __init__(self, ranks: dict, pattern: str = "r50k", special_tokens: dict | None = None,
                 chat_template: str | None = None):
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ValueError(f"a byte-level BPE vocabulary needs all 256 bytes as tokens; byte {missing[0]} is missing")
        self.ranks = dict(ranks)
        self.pattern = pattern
        self.regex = regex.compile(PATTERNS.get(pattern, pattern))
        n = max(self.ranks.values()) + 1
        self.special_tokens = {ENDOFTEXT: n} if special_tokens is None else dict(special_tokens)
        check_ids(self.ranks, self.special_tokens)
        self.decoder = {i: b for b, i in self.ranks.items()}
        self.decoder.update({i: s.encode("utf-8") for s, i in self.special_tokens.items()})
        self.special_regex = regex.compile("|".join(regex.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True)))
        self.chat_template = chat_template
        self.cache = {}  # chunk -> its token ids: text repeats its words

    def with_chat(self, special_tokens, chat_template: str | None) -> "BPETokenizer":
        """This vocabulary with the special tokens it lacks added after every id, and the chat template set."""
        special = dict(self.special_tokens)
        for s in special_tokens:
            if s not in special:
                special[s] = self.vocab_size + len(special) - len(self.special_tokens)
        return BPETokenizer(self.ranks, self.pattern, special, chat_template)

    @property
    def eot_token(self) -> int | None:
        return self.special_tokens.get(ENDOFTEXT)

    # --- encoding and decoding --------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list:
        """Token ids of `text`, with special-token strings treated as ordinary text."""
        ids = []
        for chunk in self.regex.findall(text):
            cached = self.cache.get(chunk)
            if cached is None:
                piece = chunk.encode("utf-8")
                cached = [self.ranks[piece]] if piece in self.ranks else [self.ranks[p] for p in bpe_merge(piece, self.ranks)]
                self.cache[chunk] = cached
            ids.extend(cached)
        return ids

    def encode(self, text: str, allowed_special=frozenset(), disallowed_special="all") -> list:
        """Token ids of `text`, as tiktoken's encode: a special token's string becomes its id if allowed
        ("all" or a set), and is an error if disallowed ("all" but the allowed ones, or a set); the rest
        is ordinary text."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        disallowed = set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed:
            found = regex.search("|".join(regex.escape(s) for s in disallowed), text)
            if found:
                raise ValueError(
                    f"the text contains the special token {found.group()!r} at character {found.start()}; pass "
                    f"allowed_special={{{found.group()!r}}} to encode it as a special token, or "
                    f"disallowed_special=() to encode it as ordinary text"
                )
        if not allowed:
            return self.encode_ordinary(text)
        ids, position = [], 0
        for match in self.special_regex.finditer(text):
            if match.group() in allowed:
                ids.extend(self.encode_ordinary(text[position:match.start()]))
                ids.append(self.special_tokens[match.group()])
                position = match.end()
        ids.extend(self.encode_ordinary(text[position:]))
        return ids

    # (vocab_size, decode_bytes and decode: ByteDecoding's)

    # --- training ---------------------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = "r50k", special_tokens=(ENDOFTEXT,),
              progress: bool = False) -> "BPETokenizer":
        """Learn vocab_size - 256 - len(special_tokens) merges from `text`: repeatedly merge the most
        frequent adjacent pair of tokens within the regex chunks (ties: the smallest pair of ids), as
        GPT-2's tokenizer was made. Pair counts are updated only in the chunks a merge touches."""
        interrupt.check()  # a stop that came before the training: acted on before any of its work (imports included)
        from tqdm import tqdm

        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size must be at least {256 + len(special_tokens)} (256 bytes and the special tokens), got {vocab_size}")
        compiled = regex.compile(PATTERNS.get(pattern, pattern))
        counts = Counter(compiled.findall(text))
        chunks = [list(chunk.encode("utf-8")) for chunk in counts]  # each unique chunk as token ids
        weights = list(counts.values())
        token_bytes = {i: bytes([i]) for i in range(256)}

        pair_counts, where = Counter(), {}  # pair -> occurrences (weighted), pair -> chunks holding it
        for c, ids in enumerate(chunks):
            interrupt.check()  # a stop whose KeyboardInterrupt was lost: acted on here (minigpt/interrupt.py)
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += weights[c]
                where.setdefault(pair, set()).add(c)
        heap = [(-n, pair) for pair, n in pair_counts.items()]  # most frequent first, then the smallest pair
        heapq.heapify(heap)
        existing = set(token_bytes.values())
        bar = tqdm(total=n_merges, desc="bpe", unit="merge", disable=None if progress else True)
        new_id = 256
        while new_id < 256 + n_merges and heap:
            interrupt.check()
            n, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -n or n == 0:
                continue  # stale: the pair's count changed since this entry was pushed
            merged = token_bytes[pair[0]] + token_bytes[pair[1]]
            if merged in existing:  # another pair made these bytes already: one token per byte string
                pair_counts[pair] = 0
                continue
            token_bytes[new_id] = merged
            existing.add(merged)
            changed = set()
            for c in where.pop(pair, ()):
                old = chunks[c]
                new, i = [], 0
                while i < len(old):  # replace every occurrence of the pair, left to right
                    if i + 1 < len(old) and (old[i], old[i + 1]) == pair:
                        new.append(new_id)
                        i += 2
                    else:
                        new.append(old[i])
                        i += 1
                for p in zip(old, old[1:]):
                    pair_counts[p] -= weights[c]
                    changed.add(p)
                for p in zip(new, new[1:]):
                    pair_counts[p] += weights[c]
                    where.setdefault(p, set()).add(c)
                    changed.add(p)
                chunks[c] = new
            pair_counts.pop(pair, None)
            for p in changed - {pair}:  # every pair whose count moved gets a fresh heap entry
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
            new_id += 1
            bar.update(1)
        bar.close()
        ranks = {b: i for i, b in token_bytes.items()}
        first_special = max(ranks.values()) + 1
        return cls(ranks, pattern, {s: first_special + k for k, s in enumerate(special_tokens)})

    def shortfall(self, vocab_size: int) -> str | None:
        """What train() says when the text ran out of pairs before vocab_size tokens: how many it reached, and why;
        None when it reached them all."""
        if self.vocab_size >= vocab_size:
            return None
        return (f"--vocab-size {vocab_size}: the text gave {self.vocab_size} tokens only, since every word of it (as "
                f"the pre-split cuts them) is one token by then and merges never cross words; a larger text gives more")

    # --- files ------------------------------------------------------------------------------------

    def save_tiktoken(self, path) -> None:
        """tiktoken's rank file: one `base64(token) rank` line per token, in rank order (no special tokens)."""
        lines = [f"{base64.b64encode(b).decode()} {r}" for b, r in sorted(self.ranks.items(), key=lambda kv: kv[1])]
        Path(path).write_text("\n".join(lines) + "\n")

    @classmethod
    def from_tiktoken(cls, path, pattern: str = "r50k", special_tokens: dict | None = None) -> "BPETokenizer":
        ranks = {}
        for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if line.strip():
                try:
                    token, rank = line.split()
                    ranks[base64.b64decode(token, validate=True)] = int(rank)
                except ValueError:
                    raise ValueError(f"{path} line {n} is not `base64-token rank`: {line[:60]!r}") from None
        try:
            return cls(ranks, pattern, special_tokens)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def merges(self) -> list:
        """The merge that made each token of two or more bytes, in rank order: its two parts are what BPE
        makes of its bytes with the tokens ranked below it."""
        result = []
        for b, r in sorted(self.ranks.items(), key=lambda kv: kv[1]):
            if len(b) > 1:
                parts = bpe_merge(b, self.ranks, max_rank=r)
                if len(parts) != 2:
                    raise ValueError(f"token {b!r} (rank {r}) is not the merge of two lower-ranked tokens")
                result.append((parts[0], parts[1]))
        return result

    def save_gpt2_files(self, directory) -> None:
        """vocab.json and merges.txt, the files Hugging Face's GPT2Tokenizer(Fast) reads."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        text = lambda b: "".join(BYTE_TO_CHAR[x] for x in b)  # noqa: E731
        vocab = {text(b): r for b, r in sorted(self.ranks.items(), key=lambda kv: kv[1])}
        vocab.update(self.special_tokens)
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        merges = [f"{text(a)} {text(b)}" for a, b in self.merges()]
        (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")

    @classmethod
    def from_gpt2_files(cls, vocab_json, merges_txt) -> "BPETokenizer":
        """Hugging Face / OpenAI GPT-2 files. A vocab.json entry that is neither a byte nor made by a merge of
        merges.txt (such as <|endoftext|>) is a special token. Merge order must agree with the ids: a token
        made by a later merge has a larger id, as in GPT-2's own files."""
        vocab = check_vocab(read_json(vocab_json), vocab_json)
        to_bytes = lambda s: bytes(CHAR_TO_BYTE[c] for c in s)  # noqa: E731
        made = {"".join(BYTE_TO_CHAR[b]) for b in range(256)}
        for n, line in enumerate(read_text(merges_txt).splitlines(), start=1):
            if line.startswith("#version") or not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_txt} line {n} is not a merge of two tokens: {line!r}")
            made.add(parts[0] + parts[1])
        ranks, special = {}, {}
        for token, i in vocab.items():
            if token in made:
                ranks[to_bytes(token)] = i
            else:
                special[token] = i
        try:
            return cls(ranks, "r50k", special)
        except ValueError as e:
            raise ValueError(f"{vocab_json}: {e}") from None

    # --- identity ---------------------------------------------------------------------------------

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.pattern.encode())
        for b, r in sorted(self.ranks.items(), key=lambda kv: kv[1]):
            digest.update(b + r.to_bytes(4, "little"))
        digest.update(json.dumps(self.special_tokens, sort_keys=True).encode())
        if self.chat_template is not None:
            digest.update(self.chat_template.encode())
        return digest.hexdigest()

    def to_json(self) -> str:
        ranks = [base64.b64encode(b).decode() for b, _ in sorted(self.ranks.items(), key=lambda kv: kv[1])]
        ids = sorted(self.ranks.values())
        d = {"type": "bpe", "pattern": self.pattern, "ranks": ranks, "ids": ids, "special_tokens": self.special_tokens}
        if self.chat_template is not None:
            d["chat_template"] = self.chat_template
        return json.dumps(d)

    @classmethod
    def from_dict(cls, d: dict, where: str = "tokenizer.json") -> "BPETokenizer":
        """From to_json's object, checked (minigpt.data.load_tokenizer reads it from a file)."""
        check_object(d, where, {"type": str, "pattern": str, "ranks": list, "ids": list, "special_tokens": dict,
                                "chat_template": (str, None)})
        if len(d["ranks"]) != len(d["ids"]) or not all(isinstance(t, str) for t in d["ranks"]) \
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in d["ids"]) \
                or not all(isinstance(s, str) and isinstance(i, int) and i >= 0 for s, i in d["special_tokens"].items()):
            raise ValueError(f"{where}: its ranks, ids and special tokens do not match up; the file is damaged")
        try:
            ranks = {base64.b64decode(t, validate=True): i for t, i in zip(d["ranks"], d["ids"])}
            return cls(ranks, d["pattern"], d["special_tokens"], from_file(d.get("chat_template"), where))
        except (ValueError, regex.error) as e:  # (binascii.Error is a ValueError)
            raise ValueError(f"{where}: {e}") from None

    def __eq__(self, other):
        return isinstance(other, BPETokenizer) and other.fingerprint() == self.fingerprint()
