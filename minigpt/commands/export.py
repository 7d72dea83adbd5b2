"""`minigpt export`: a checkpoint as a Hugging Face directory (minigpt/hf.py; a LoRA run's with its adapters merged,
a classifier's as *ForSequenceClassification), its LoRA adapters alone as PEFT saves them (minigpt/lora.py), or an
llm.c model file (minigpt/llmc.py), read back and compared before the command says it is done."""

HELP = "write a checkpoint as a Hugging Face directory, PEFT adapters or an llm.c model file"
DESCRIPTION = None


def add_arguments(p) -> None:
    p.add_argument("--out-dir", default="out", metavar="DIR", help="the run or checkpoint to export (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    p.add_argument("--hf", metavar="DIR", help="write config.json, model.safetensors and the tokenizer's files here")
    p.add_argument("--peft", metavar="DIR", help="a LoRA run's adapters: adapter_config.json and "
                                                 "adapter_model.safetensors, as PEFT's save_pretrained writes them")
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

    from minigpt import hf, llmc, load, lora
    from minigpt.files import directory_write
    from minigpt.model import HEAD

    if sum(x is not None for x in (args.hf, args.peft, args.llmc)) != 1:
        raise ValueError("give one of --hf DIR (a Hugging Face directory), --peft DIR (LoRA adapters) or --llmc FILE "
                         "(llm.c's model file)")
    check_target(args.hf or args.peft or args.llmc, args.force, directory=args.llmc is None)
    model, tokenizer, _, _ = load.open_model(args.out_dir, args.checkpoint)
    config, params = model.config, model.params
    if args.peft is not None:
        if config.lora_rank is None:
            raise ValueError(f"{args.out_dir} trained no LoRA adapters (train with --lora-rank R); export it with --hf")
        with directory_write(args.peft) as tmp:  # (in place whole, or not at all)
            lora.save_peft(config, params, tmp)
        back_config, adapters = lora.read_peft(args.peft, lora.without_adapters(config))
        same = sorted(lora.modules(back_config)) == sorted(lora.modules(config)) and all(
            getattr(back_config, key) == getattr(config, key) for key in ("lora_rank", "lora_alpha", "lora_dropout"))
        same = same and all(np.array_equal(a, params[name].astype(np.float32)) for name, a in adapters.items())
        if not same:
            raise RuntimeError(f"{args.peft} does not read back as the adapters it was written from")
        print(f"wrote {args.peft}: peft.PeftModel.from_pretrained(the base model, {args.peft!r}) reads it")
        return 0
    if args.hf is not None:
        hf.save_pretrained(model, args.hf, tokenizer)
        config, back, back_tokenizer = hf.read(args.hf)  # it reads back as what was written (merged, for LoRA)
        merged_config, params = lora.merged(model.config, params) if model.config.lora_rank else (model.config, params)
        same = config == merged_config and back_tokenizer == tokenizer
        if config.labels is not None and not config.tie_word_embeddings:  # (no LM head in a classifier's directory)
            params = {name: p for name, p in params.items() if name != HEAD}
    else:
        llmc.save(model, args.llmc)
        back = llmc.load(args.llmc).params
        same = True
    same = same and all(np.array_equal(back[name], p.astype(np.float32)) for name, p in params.items())
    if not same:
        raise RuntimeError(f"{args.hf or args.llmc} does not read back as the checkpoint it was written from")
    if args.hf is not None:
        kind = hf.MODEL_TYPES if model.config.labels is None else hf.CLASSIFIERS
        print(f"wrote {args.hf}: {kind[model.config.arch]}.from_pretrained, AutoTokenizer.from_pretrained "
              f"and minigpt sample --init-from read it")
    else:
        print(f"wrote {args.llmc} (llm.c model file, version {llmc.VERSION})")
    return 0
