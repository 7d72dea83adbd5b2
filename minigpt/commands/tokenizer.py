"""`minigpt tokenizer`: train a byte-level BPE vocabulary on a text (minigpt/data/bpe.py), or encode text with one."""

HELP = "train a byte-level BPE tokenizer, or encode text with one"
DESCRIPTION = None


def add_arguments(p) -> None:
    from minigpt.commands import Parser

    tok = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    t = tok.add_parser("train", help="learn a BPE vocabulary from a text file")
    t.add_argument("--data", help="a UTF-8 text file (default: Tiny Shakespeare)")
    t.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="tokens to learn: the 256 bytes, <|endoftext|>, and N - 257 merges (a text too small for "
                        "them all gives fewer, and says so)")
    t.add_argument("--pattern", choices=("r50k", "cl100k"), default="r50k",
                   help="the regex pre-split: r50k, GPT-2's; cl100k, GPT-4's (default: r50k)")
    t.add_argument("--out", required=True, metavar="DIR", help="the new directory to write the tokenizer's files to")
    t.add_argument("--force", action="store_true", help="write into a directory that is not empty, replacing its "
                                                        "tokenizer files")
    t = tok.add_parser("encode", help="print the token ids of a text")
    t.add_argument("--tokenizer", required=True, metavar="DIR", help="a directory written by minigpt tokenizer train")
    t.add_argument("text")


def run(args) -> int:
    from pathlib import Path

    from minigpt.commands import report
    from minigpt.data import load_tokenizer
    from minigpt.data.bpe import BPETokenizer
    from minigpt.data.text import find_text, read_text_file
    from minigpt.files import directory_write
    from minigpt.outputs import DIRECTORY, check

    if args.action == "train":
        check(args.out, "--out", DIRECTORY, force=args.force)  # before the training, not after it
        _, text = read_text_file(find_text(args.data))
        tokenizer = BPETokenizer.train(text, args.vocab_size, args.pattern, progress=True)
        if tokenizer.shortfall(args.vocab_size) is not None:
            report(tokenizer.shortfall(args.vocab_size))
        out = Path(args.out)
        with directory_write(out) as tmp:  # (in place whole, or not at all)
            (tmp / "tokenizer.json").write_text(tokenizer.to_json())
            tokenizer.save_gpt2_files(tmp)
            tokenizer.save_tiktoken(tmp / "tokenizer.tiktoken")
        print(f"wrote {out}: tokenizer.json (minigpt), vocab.json + merges.txt (GPT-2), tokenizer.tiktoken (tiktoken)")
    else:
        tokenizer = load_tokenizer(args.tokenizer)
        if tokenizer is None:
            raise FileNotFoundError(f"{args.tokenizer} holds no tokenizer (tokenizer.json, or vocab.json and "
                                    f"merges.txt); make one with minigpt tokenizer train")
        print(" ".join(str(i) for i in tokenizer.encode(args.text)))
    return 0
