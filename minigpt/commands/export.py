"""`minigpt export`: a checkpoint as a Hugging Face directory (minigpt/hf.py) or an llm.c model file
(minigpt/llmc.py), read back and compared before the command says it is done."""

HELP = "write a checkpoint as a Hugging Face directory or an llm.c model file"
DESCRIPTION = None


def add_arguments(p) -> None:
    p.add_argument("--out-dir", default="out", metavar="DIR", help="the run or checkpoint to export (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    p.add_argument("--hf", metavar="DIR", help="write config.json, model.safetensors and the tokenizer's files here")
    p.add_argument("--llmc", metavar="FILE", help="write llm.c's model file (version 3, float32) here")
    p.add_argument("--force", action="store_true", help="replace an existing file, or write into a non-empty directory")


def check_target(path, force: bool, directory: bool) -> None:
    """An export never writes inside a run directory, and never replaces a file or fills a non-empty directory
    unless --force says so."""
    from pathlib import Path

    from minigpt import checkpoint

    path = Path(path).expanduser().resolve()
    for parent in (path, *path.parents):
        if parent.is_dir() and (checkpoint.read_pointer(parent) is not None or checkpoint.is_checkpoint(parent)):
            raise ValueError(f"{path} is inside the run directory {parent}; export somewhere else (e.g. {parent}-export)")
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file; --hf needs a directory")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise ValueError(f"{path} is not empty; choose a new directory, or give --force to write into it")
    else:
        if path.is_dir():
            raise ValueError(f"{path} is a directory; --llmc needs a file name")
        if path.exists() and not force:
            raise ValueError(f"{path} exists; choose another name, or give --force to replace it")


def run(args) -> int:
    import numpy as np

    from minigpt import hf, llmc, load

    if (args.hf is None) == (args.llmc is None):
        raise ValueError("give --hf DIR (a Hugging Face directory) or --llmc FILE (llm.c's model file)")
    check_target(args.hf or args.llmc, args.force, directory=args.hf is not None)
    model, tokenizer = load.load_model(load.resolve(args.out_dir, args.checkpoint))
    if args.hf is not None:
        hf.save_pretrained(model, args.hf, tokenizer)
        config, back, back_tokenizer = hf.read(args.hf)  # it reads back as what was written
        same = config == model.config and back_tokenizer == tokenizer
    else:
        llmc.save(model, args.llmc)
        back = llmc.load(args.llmc).params
        same = True
    same = same and all(np.array_equal(back[name], p.astype(np.float32)) for name, p in model.params.items())
    if not same:
        raise RuntimeError(f"{args.hf or args.llmc} does not read back as the checkpoint it was written from")
    if args.hf is not None:
        print(f"wrote {args.hf}: {hf.MODEL_TYPES[model.config.arch]}.from_pretrained, GPT2TokenizerFast.from_pretrained "
              f"and minigpt sample --init-from read it")
    else:
        print(f"wrote {args.llmc} (llm.c model file, version {llmc.VERSION})")
    return 0
