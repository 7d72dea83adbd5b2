"""`minigpt data build [NAME]`: build a named corpus of real English from pinned Debian packages into the cache
(minigpt/corpus/, docs/pretraining.md); `minigpt data tokenize [NAME] --tokenizer DIR`: encode it once into the token
files training maps (minigpt/corpus/tokenize.py, minigpt/data/tokens.py); `minigpt data tasks`: extract the
applications' records again from pinned Debian packages (minigpt/applications/extract.py); `minigpt data pairs`:
preference pairs from a task's records and a model's answers (minigpt/applications/pairs.py)."""

HELP = "build a corpus of real English from pinned Debian packages, and tokenize it"
DESCRIPTION = None


def add_arguments(p) -> None:
    from minigpt.commands import Parser
    from minigpt.corpus.sources import CORPORA, DEFAULT

    data = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    b = data.add_parser("build", help="build a corpus into the cache (once: a second build finds it)",
                        description="Build a named corpus: train.txt, val.txt (held out), NOTICE and manifest.json, "
                                    "from Debian packages pinned by version and SHA-256.")
    b.add_argument("name", nargs="?", default=DEFAULT, choices=tuple(CORPORA), metavar="NAME",
                   help=f"which corpus: {', '.join(f'{n} ({c.about})' for n, c in CORPORA.items())} "
                        f"(default: {DEFAULT})")
    b.add_argument("--debs", metavar="DIR", help="a directory holding the .deb files (where `apt-get download` put "
                                                 "them); without it they are downloaded from Debian's archive into "
                                                 "the cache")
    b.add_argument("--out", metavar="DIR", help="build into DIR rather than the cache's corpora/NAME")
    a = data.add_parser("tasks", help="extract the applications' records again from pinned Debian packages",
                        description="Extract the records of the four applications (summarisation, translation, "
                                    "question answering, classification) from Debian packages pinned by version and "
                                    "SHA-256, into a directory of its own, and compare them with those minigpt "
                                    "ships (minigpt/applications/data/): the same packages give the same bytes.")
    a.add_argument("--debs", metavar="DIR", help="a directory holding the .deb files; without it they are downloaded "
                                                 "from Debian's archive into the cache")
    a.add_argument("--out", metavar="DIR", help="extract into DIR (new or empty) rather than the cache's "
                                                "applications/")
    r = data.add_parser("pairs", help="preference pairs: a task's references preferred to a model's answers",
                        description="Write {prompt, chosen, rejected} records for minigpt train --method dpo: for each "
                                    "record of a task's split a model answered otherwise than its reference (minigpt "
                                    "eval --task NAME --split SPLIT --json FILE), the reference chosen and the "
                                    "model's answer rejected. Docs: docs/preference.md.")
    r.add_argument("--answers", required=True, metavar="FILE.json", help="the JSON file of minigpt eval --task NAME "
                                                                         "--json FILE")
    r.add_argument("--out", required=True, metavar="FILE.jsonl", help="where to write the pairs")
    t = data.add_parser("tokenize", help="encode a built corpus once into token files (train.bin, val.bin)",
                        description="Encode a built corpus's train.txt and val.txt with a tokenizer into uint16 token "
                                    "files, CORPUS/tokens/{train.bin,val.bin}, with the tokenizer and a header "
                                    "(tokens.json): what `minigpt train --corpus NAME` reads.")
    t.add_argument("name", nargs="?", default=DEFAULT, metavar="NAME",
                   help=f"the corpus, built by minigpt data build NAME (default: {DEFAULT})")
    t.add_argument("--tokenizer", required=True, metavar="DIR",
                   help="a directory written by minigpt tokenizer train (a byte-level BPE); it becomes the model's")
    t.add_argument("--dir", metavar="DIR", help="the built corpus's directory, rather than the cache's corpora/NAME")


def run(args) -> int:
    return {"tokenize": tokenize_corpus, "tasks": extract_tasks, "pairs": write_pairs}.get(args.action, build)(args)


def write_pairs(args) -> int:
    from minigpt.applications import pairs
    from minigpt.files import atomic_write
    from minigpt.outputs import check

    check(args.out, "--out")  # (before anything is read)
    answers = pairs.read_answers(args.answers)
    records = pairs.pairs(answers)
    if not records:
        raise ValueError(f"every answer in {args.answers} is its reference (or empty): there is no pair to prefer")
    with atomic_write(args.out) as f:
        f.write(pairs.to_jsonl(records))
    print(f"{len(records)} pairs of {len(answers['ids'])} records ({answers['task']}, {answers['split']} split) in "
          f"{args.out}: the reference chosen, the model's answer rejected")
    return 0


def extract_tasks(args) -> int:
    from pathlib import Path

    from minigpt.applications import extract
    from minigpt.commands import report
    from minigpt.files import cache_dir
    from minigpt.outputs import DIRECTORY, check

    out = cache_dir() / "applications" if args.out is None else Path(args.out).expanduser()
    if args.out is not None and not (out / extract.MANIFEST).is_file():  # (data extracted there before is only read)
        check(out, "--out", DIRECTORY)  # (never into a run directory or a checkpoint)
    if out.resolve() == extract.SHIPPED.resolve():
        raise ValueError(f"--out {args.out} is the data minigpt ships; extract elsewhere and compare")
    debs = None if args.debs is None else Path(args.debs).expanduser()
    if debs is not None and not debs.is_dir():
        raise FileNotFoundError(f"--debs {args.debs} is not a directory; give the directory the .deb files are in")
    done = extract.extract(out, debs, report)
    manifest = done.manifest
    changed = extract.differences(manifest, extract.check(extract.SHIPPED))
    print(f"{'extracted' if done.fresh else 'already extracted'}: {out} "
          f"({sum(f['bytes'] for f in manifest['files'].values()) / 1e6:.2f} MB); "
          + (f"identical to the shipped data ({extract.SHIPPED})" if not changed else
             f"differs from the shipped data in {', '.join(changed)}"))
    return 0 if not changed else 1


def build(args) -> int:
    from pathlib import Path

    from minigpt.commands import report
    from minigpt.corpus.build import MANIFEST, build, corpus_dir, existing
    from minigpt.corpus.sources import CORPORA
    from minigpt.outputs import DIRECTORY, check

    corpus = CORPORA[args.name]
    out = corpus_dir(args.name) if args.out is None else Path(args.out).expanduser()
    if args.out is not None and existing(corpus, out) is None:  # (a corpus built there before is only read)
        check(out, "--out", DIRECTORY)  # where a new one may go: never into a run directory or a checkpoint
    debs = None if args.debs is None else Path(args.debs).expanduser()
    if debs is not None and not debs.is_dir():
        raise FileNotFoundError(f"--debs {args.debs} is not a directory; give the directory the .deb files are in")
    built = build(corpus, out, debs, report)
    files = built.manifest["files"]
    sizes = ", ".join(f"{name} {files[name]['bytes'] / 1e6:.2f} MB ({files[name]['words']:,} words)"
                      for name in ("train.txt", "val.txt"))
    print(f"{'built' if built.fresh else 'already built'}: {built.path} ({sizes}; SHA-256s in {MANIFEST})")
    return 0


def tokenize_corpus(args) -> int:
    from pathlib import Path

    from minigpt.corpus import tokenize
    from minigpt.corpus.build import corpus_dir
    from minigpt.data import load_tokenizer
    from minigpt.data.bpe import BPETokenizer

    corpus = corpus_dir(args.name) if args.dir is None else Path(args.dir).expanduser()
    tokenize.check_built(corpus)  # (before the tokenizer is read: the first thing to make)
    tokenizer = load_tokenizer(args.tokenizer) if Path(args.tokenizer).is_dir() else None
    if type(tokenizer) is not BPETokenizer:  # (a character vocabulary or a Hugging Face tokenizer: not this format)
        raise ValueError(f"--tokenizer {args.tokenizer} holds no byte-level BPE tokenizer; make one with minigpt "
                         f"tokenizer train --data {corpus / 'train.txt'} --vocab-size 4096 --out DIR")
    done = tokenize.tokenize(corpus, tokenizer, progress=True)
    splits = done.header["splits"]
    sizes = ", ".join(f"{split} {counts['tokens']:,} tokens ({counts['bytes'] / counts['tokens']:.2f} bytes a token)"
                      for split, counts in splits.items())
    print(f"{'tokenized' if done.fresh else 'already tokenized'}: {done.path} ({sizes}); train on it with "
          f"minigpt train --corpus {args.name if args.dir is None else done.path.parent.resolve()}")
    return 0
