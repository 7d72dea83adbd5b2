"""minigpt's byte-level BPE against tiktoken (and Hugging Face's GPT2TokenizerFast) on the same vocabulary:

    python benchmarks/bench_tokenizer.py [--data PATH] [--vocab-sizes 1024 4096]

Trains a vocabulary on the text (Tiny Shakespeare by default), checks that all three encode the text to
the same ids, and times encoding the whole text: each tokenizer fresh (minigpt's chunk cache empty),
best of 3, in alternation. Prints a Markdown table; docs/tokenization.md shows one.
"""

import argparse
import tempfile
import time

from minigpt import BPETokenizer
from minigpt.data.bpe import PATTERNS
from minigpt.data.text import find_text


def best_of(fn, n=3):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[1024, 4096])
    args = parser.parse_args()
    import tiktoken
    import transformers

    transformers.logging.set_verbosity_error()
    text = find_text(args.data).read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    print(f"text: {mb:.2f} MB\n")
    print("| vocabulary | training (s) | minigpt (MB/s) | tiktoken (MB/s) | GPT2TokenizerFast (MB/s) | minigpt / tiktoken time |")
    print("|---|---|---|---|---|---|")
    for vocab_size in args.vocab_sizes:
        t0 = time.perf_counter()
        ours = BPETokenizer.train(text, vocab_size)
        training = time.perf_counter() - t0
        theirs = tiktoken.Encoding(f"bench{vocab_size}", pat_str=PATTERNS["r50k"], mergeable_ranks=ours.ranks,
                                   special_tokens=ours.special_tokens)
        with tempfile.TemporaryDirectory() as d:
            ours.save_gpt2_files(d)
            hf = transformers.GPT2TokenizerFast.from_pretrained(d)
        ids = ours.encode_ordinary(text)
        assert ids == theirs.encode_ordinary(text) == hf.encode(text), "the encodings differ"

        def fresh_ours():
            ours.cache.clear()  # every chunk through the merge loop again
            ours.encode_ordinary(text)

        t_ours = best_of(fresh_ours)
        t_tiktoken = best_of(lambda: theirs.encode_ordinary(text))
        t_hf = best_of(lambda: hf.encode(text))
        print(f"| {vocab_size} ({len(ids):,} tokens) | {training:.1f} | {mb / t_ours:.1f} | {mb / t_tiktoken:.1f} | "
              f"{mb / t_hf:.1f} | {t_ours / t_tiktoken:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
