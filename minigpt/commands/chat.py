"""`minigpt chat`: a conversation with a fine-tuned model at the terminal (minigpt/chat.py). Each line you type is a
user turn; the reply streams as it is generated; the whole conversation is the next prompt. A line the model cannot
read (a character outside its vocabulary, too many tokens) is not sent: what is wrong with it is said, and the
conversation goes on. Ctrl-D ends it; so does Ctrl-C (exit status 130)."""

HELP = "talk with a model fine-tuned on records (its chat template); Ctrl-D ends"
DESCRIPTION = ("Talk with a fine-tuned model: each line is a user turn, the model's reply streams back, and the "
               "conversation so far is the prompt of the next reply (its oldest turns dropped when it outgrows the "
               "context). Ctrl-D or Ctrl-C ends it. Docs: docs/finetuning.md.")


def add_arguments(p) -> None:
    from minigpt.commands import model_arguments, quantize_argument, sampling_arguments

    model_arguments(p)
    quantize_argument(p)
    p.add_argument("--system", help="a system message that opens the conversation (default: none)")
    sampling_arguments(p, 200, "the longest reply")


def sampling(args) -> dict:
    """The sampling flags, checked by name, as generate's arguments; and beam search's (None: sampling)."""
    from minigpt.commands import beam_flags
    from minigpt.generate import check_sampling_args

    check_sampling_args(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed, flags=True)
    return dict(do_sample=not args.greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                beams=beam_flags(args))


def run(args) -> int:
    import sys

    import numpy as np

    from minigpt import load
    from minigpt.chat import Refused, check_message, reply, template_of
    from minigpt.commands import report, use_threads

    options = sampling(args)
    use_threads(args.threads)
    pretrained = load.read(args.out_dir, args.checkpoint)  # (its tokenizer first: the command needs one)
    tokenizer = load.text_tokenizer(pretrained)
    model = load.build_model(pretrained, backend=args.backend, quantize=args.quantize)
    template_of(tokenizer)  # no template: say so before the first prompt
    if args.system:
        try:
            check_message(tokenizer, args.system)
        except Refused as e:
            raise ValueError(f"--system: {e}") from None
    messages = [{"role": "system", "content": args.system}] if args.system else []
    rng = np.random.default_rng(args.seed)
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:  # Ctrl-D, or the end of piped input
            if interactive:
                print()
            return 0
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        try:
            answer = reply(model, tokenizer, messages, args.max_new_tokens, seed=int(rng.integers(2**31)), **options)
        except Refused as e:  # the line's fault, not the conversation's: say what is wrong with it, and go on
            messages.pop()
            report(f"this line was not sent: {e}; the conversation goes on without it")
            continue
        text = ""
        for piece in answer:
            text += piece
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": text})
