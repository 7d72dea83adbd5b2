"""`minigpt data build [NAME]`: build a named corpus of real English from pinned Debian packages into the cache
(minigpt/corpus/, docs/pretraining.md)."""

HELP = "build a corpus of real English from pinned Debian packages"
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


def run(args) -> int:
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
