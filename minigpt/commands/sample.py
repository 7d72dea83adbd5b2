"""`minigpt sample`: text from a trained model, streamed as it is generated (minigpt/generate.py)."""

HELP = "generate text from a trained model"
DESCRIPTION = None


def add_arguments(p) -> None:
    from minigpt.commands import model_arguments, quantize_argument, sampling_arguments

    model_arguments(p)
    quantize_argument(p)
    p.add_argument("--prompt", help="text to continue (default: a newline)")
    sampling_arguments(p, 500, "tokens to generate")
    p.add_argument("--num-samples", type=int, default=1, metavar="N",
                   help="samples to draw, printed one after another (default: 1)")
    p.add_argument("--stop", help="stop a sample once it contains this text (default: none, --max-new-tokens ends it)")
    p.add_argument("--chat", action="store_true", help="--prompt is a user's message: print the reply of a model "
                                                        "fine-tuned on records, formatted by its chat template")


def check_flags(args) -> None:
    """The flags, checked by name before anything is loaded: the sampling ones by generate's own check."""
    from minigpt.commands import beam_flags
    from minigpt.generate import check_sampling_args

    check_sampling_args(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed, flags=True)
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, got {args.num_samples}")
    if beam_flags(args) is not None and args.num_samples > 1:
        raise ValueError(f"--num-samples {args.num_samples} and --num-beams {args.num_beams} conflict: beam search is "
                         f"deterministic, every sample would be the same; drop one of them")
    if args.prompt is not None and "\0" in args.prompt:
        raise ValueError("--prompt contains a NUL character")


def run(args) -> int:
    import codecs
    import sys

    from minigpt import load
    from minigpt.commands import beam_flags, use_threads
    from minigpt.data.chars import CharTokenizer
    from minigpt.data.text import encode_text
    from minigpt.generate import check_memory, stream

    check_flags(args)
    use_threads(args.threads)
    pretrained = load.read(args.out_dir, args.checkpoint)  # (its tokenizer first: the command needs one)
    tokenizer = load.text_tokenizer(pretrained)
    model = load.build_model(pretrained, backend=args.backend, quantize=args.quantize)
    if args.chat:
        return chat_reply(args, model, tokenizer)
    prompt = args.prompt
    if prompt is None:
        prompt = "\n"
        if isinstance(tokenizer, CharTokenizer) and "\n" not in tokenizer.chars:
            raise ValueError("this model's vocabulary has no newline to start from; give a --prompt")
    idx = encode_text(tokenizer, prompt)[None, :]  # (1, T)
    beams = beam_flags(args)
    if beams is not None:
        return searched(args, model, tokenizer, prompt, idx, beams)
    check_memory(model, args.num_samples, idx.shape[1], args.max_new_tokens)  # (before the prompt is repeated)
    steps = stream(model, idx.repeat(args.num_samples, axis=0), args.max_new_tokens, do_sample=not args.greedy,
                   temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    # tokens are decoded to bytes and the bytes to text incrementally: a BPE token can end inside a character
    decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(args.num_samples)]
    if args.num_samples == 1:  # one sample: print each token as it comes
        out = prompt
        sys.stdout.write(prompt)
        for next_id in steps:
            piece = decoders[0].decode(tokenizer.decode_bytes(next_id))
            out += piece
            if args.stop and args.stop in out[len(prompt):]:
                end = out.index(args.stop, len(prompt)) + len(args.stop)
                sys.stdout.write(piece[: len(piece) - (len(out) - end)])
                break
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write(decoders[0].decode(b"", final=True) + "\n")
        return 0
    pieces = [[prompt] for _ in range(args.num_samples)]  # several: generated together, printed one after another
    for next_id in steps:
        for piece, decoder, i in zip(pieces, decoders, next_id):
            piece.append(decoder.decode(tokenizer.decode_bytes([i])))
    for i, piece in enumerate(pieces):
        text = "".join(piece) + decoders[i].decode(b"", final=True)
        if args.stop and args.stop in text[len(prompt):]:
            text = text[: text.index(args.stop, len(prompt)) + len(args.stop)]
        print(text)
        if i < len(pieces) - 1:
            print("-" * 40)
    return 0


def searched(args, model, tokenizer, prompt: str, idx, beams) -> int:
    """The prompt and beam search's continuation (minigpt/beam.py), printed once found, up to the model's end token
    (not shown) or --stop."""
    from minigpt.beam import beam_search
    from minigpt.data.records import stop_tokens

    room = model.config.block_size - idx.shape[1]
    if args.max_new_tokens > room:
        raise ValueError(f"--num-beams keeps the prompt ({idx.shape[1]} tokens) and its continuation within the "
                         f"model's context ({model.config.block_size}); lower --max-new-tokens to at most {room}")
    stops = stop_tokens(tokenizer)
    tokens = beam_search(model, idx, args.max_new_tokens, beams.num_beams, beams.length_penalty, beams.early_stopping,
                         eos_token_ids=frozenset(stops))  # (n,)
    if tokens.size and int(tokens[-1]) in stops:
        tokens = tokens[:-1]
    text = tokenizer.decode_bytes(tokens).decode("utf-8", errors="replace")
    if args.stop and args.stop in text:
        text = text[: text.index(args.stop) + len(args.stop)]
    print(prompt + text)
    return 0


def chat_reply(args, model, tokenizer) -> int:
    """One turn: --prompt as the user's message, the reply (each of --num-samples) on stdout, streamed."""
    import sys

    from minigpt.chat import Refused, reply
    from minigpt.commands import beam_flags

    if args.prompt is None:
        raise ValueError("--chat needs the user's message in --prompt")
    for i in range(args.num_samples):
        try:
            answer = reply(model, tokenizer, [{"role": "user", "content": args.prompt}], args.max_new_tokens,
                           beams=beam_flags(args), do_sample=not args.greedy, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, seed=args.seed + i)
        except Refused as e:
            raise ValueError(f"--prompt: {e}") from None
        for piece in answer:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n" + ("-" * 40 + "\n" if i < args.num_samples - 1 else ""))
    return 0
