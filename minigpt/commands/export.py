"""`minigpt export`: a checkpoint as a Hugging Face directory (minigpt/hf.py; a LoRA run's with its adapters merged,
a classifier's as *ForSequenceClassification), its LoRA adapters as PEFT saves them (minigpt/peft.py; with the
embedding rows of the tokens the fine-tune added, and the tokenizer beside them), an llm.c model file
(minigpt/llmc.py), or a GGUF file that llama.cpp runs (minigpt/gguf.py), read back and compared before the command
says it is done."""

HELP = "write a checkpoint as a Hugging Face directory, PEFT adapters, an llm.c model file or a GGUF file"
DESCRIPTION = None


def add_arguments(p) -> None:
    p.add_argument("--out-dir", default="out", metavar="DIR", help="the run or checkpoint to export (default: out)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of a run (default: best)")
    p.add_argument("--hf", metavar="DIR", help="write config.json, model.safetensors and the tokenizer's files here")
    p.add_argument("--peft", metavar="DIR", help="a LoRA run's adapters: adapter_config.json, "
                                                 "adapter_model.safetensors and the tokenizer's files, as PEFT's "
                                                 "save_pretrained writes them")
    p.add_argument("--llmc", metavar="FILE", help="write llm.c's model file (version 3, float32) here")
    p.add_argument("--gguf", metavar="FILE", help="write a GGUF file here, with the tokenizer and chat template: "
                                                  "llama.cpp and Ollama run it")
    p.add_argument("--gguf-type", choices=("f32", "f16", "q8_0"), default="f32",
                   help="the GGUF file's weights: f32 (exact), f16, or q8_0 (8 bits, blocks of 32) (default: f32)")
    p.add_argument("--force", action="store_true", help="replace an existing file, or write into a non-empty directory")


def check_target(path, flag: str, force: bool, directory: bool) -> None:
    """Where an export goes, checked as every command's output is (minigpt/outputs.py), and more: nowhere inside a
    run directory, not only outside its own files."""
    from pathlib import Path

    from minigpt import outputs

    outputs.check(path, flag, outputs.DIRECTORY if directory else outputs.FILE, force=force)
    path = Path(path).expanduser().resolve()
    for parent in path.parents:
        if outputs.is_run_directory(parent):
            raise ValueError(f"{path} is inside the run directory {parent}; export somewhere else (e.g. {parent}-export)")


def run(args) -> int:
    import numpy as np

    from minigpt import gguf, hf, llmc, load, lora, peft
    from minigpt.data import load_tokenizer
    from minigpt.files import directory_write
    from minigpt.model import HEAD

    if sum(x is not None for x in (args.hf, args.peft, args.llmc, args.gguf)) != 1:
        raise ValueError("give one of --hf DIR (a Hugging Face directory), --peft DIR (LoRA adapters), --llmc FILE "
                         "(llm.c's model file) or --gguf FILE (llama.cpp's)")
    flag = "--hf" if args.hf is not None else "--peft" if args.peft is not None else "--llmc" if args.llmc else "--gguf"
    check_target(args.hf or args.peft or args.llmc or args.gguf, flag, args.force,
                 directory=args.hf is not None or args.peft is not None)
    pretrained = load.read(args.out_dir, args.checkpoint)  # (its tokenizer first: every export writes one)
    tokenizer, model = load.text_tokenizer(pretrained), load.build_model(pretrained)
    config, params = model.config, model.params
    if args.gguf is not None:
        written = gguf.save(model, tokenizer, args.gguf, args.gguf_type)
        if not gguf.read_back(args.gguf, written):  # gguf's own reader finds every tensor as it was written
            raise RuntimeError(f"{args.gguf} does not read back as the tensors written to it")
        print(f"wrote {args.gguf} (GGUF, {args.gguf_type}): llama.cpp runs it (llama-cli -m {args.gguf})")
        return 0
    if args.peft is not None:
        if config.lora_rank is None:
            raise ValueError(f"{args.out_dir} trained no LoRA adapters (train with --lora-rank R); export it with --hf")
        with directory_write(args.peft) as tmp:  # (in place whole, or not at all)
            peft.save_peft(config, params, tmp, hf.embedding_layers(config, params))
            hf.write_tokenizer(tokenizer, tmp, config)  # beside the adapters, as PEFT's users save theirs
        # it reads back, on the base the adapters were put on, as the adapters (and added rows) it was written from
        back_config, adapters = load.read_adapters(args.peft, peft.peft_base(config))
        same = sorted(lora.modules(back_config)) == sorted(lora.modules(config)) and all(
            getattr(back_config, key) == getattr(config, key)
            for key in ("lora_rank", "lora_alpha", "lora_dropout", "lora_added_tokens", "vocab_size", "labels"))
        same = same and all(np.array_equal(a, params[name].astype(np.float32)) for name, a in adapters.items())
        same = same and load_tokenizer(args.peft) == hf.exported_tokenizer(tokenizer, config)
        if not same:
            raise RuntimeError(f"{args.peft} does not read back as the adapters it was written from")
        resize = "" if not config.lora_added_tokens else (
            f" after base.resize_token_embeddings(len(AutoTokenizer.from_pretrained({args.peft!r}))), for the "
            f"{config.lora_added_tokens} token{'s' if config.lora_added_tokens > 1 else ''} the fine-tune added (their "
            f"rows are in the adapters)")
        print(f"wrote {args.peft}: peft.PeftModel.from_pretrained(base, {args.peft!r}) reads it{resize}")
        return 0
    if args.hf is not None:
        hf.save_pretrained(model, args.hf, tokenizer)
        exported = load.read(args.hf)  # it reads back as what was written (merged, for LoRA)
        config, back = exported.config, exported.weights
        merged_config, params = peft.merged(model.config, params) if model.config.lora_rank else (model.config, params)
        same = config == merged_config and exported.tokenizer == hf.exported_tokenizer(tokenizer, merged_config)
        if config.labels is not None and not config.tie_word_embeddings:  # (no LM head in a classifier's directory)
            params = {name: p for name, p in params.items() if name != HEAD}
    else:
        llmc.save(model, args.llmc)
        back = load.read(args.llmc).weights
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
