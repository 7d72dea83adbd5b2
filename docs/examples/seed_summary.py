"""GPT-2 summarising a text as the GPT-2 paper prompted it ("TL;DR:" after the text), with beam search: first with
Hugging Face transformers, as the classic example does, then the same with minigpt's own API on the same Hugging Face
directory. Both pick the same tokens (tests/test_seed_example.py checks it, on a small GPT-2 directory made locally).

On your machine `name` is "gpt2", the released model (both read it from the Hugging Face Hub once, then from its
cache), or any directory holding a GPT-2 in Hugging Face's layout. docs/applications.md shows the two blocks.
"""

# The generation settings of the classic example: 4 beams, a length penalty that favours longer summaries (the
# score of a finished beam is its summed log-probability divided by length ** 2.0), stop when 4 beams have ended.
NUM_BEAMS = 4
LENGTH_PENALTY = 2.0
MAX_NEW_TOKENS = 60
MIN_NEW_TOKENS = 10  # (no end token before this many: a summary of a few words at least)


def with_transformers(text: str, name: str = "gpt2") -> tuple[list[int], str]:
    """The summary's new token ids and its text, by transformers' generate."""
    # --8<-- [start:transformers]
    from transformers import GPT2LMHeadModel, GPT2Tokenizer

    tokenizer = GPT2Tokenizer.from_pretrained(name)
    model = GPT2LMHeadModel.from_pretrained(name)
    inputs = tokenizer.encode(text + "\nTL;DR:", return_tensors="pt")  # (1, T)
    summary_ids = model.generate(inputs, max_new_tokens=MAX_NEW_TOKENS, num_beams=NUM_BEAMS,
                                 length_penalty=LENGTH_PENALTY, early_stopping=True, min_new_tokens=MIN_NEW_TOKENS,
                                 attention_mask=inputs.new_ones(inputs.shape), pad_token_id=tokenizer.eos_token_id)
    new = summary_ids[0, inputs.shape[1]:]  # (n,) the summary: what follows the prompt
    summary = tokenizer.decode(new, skip_special_tokens=True)
    # --8<-- [end:transformers]
    return new.tolist(), summary


def with_minigpt(text: str, name: str = "gpt2") -> tuple[list[int], str]:
    """The summary's new token ids and its text, by minigpt's beam search on the same weights."""
    # --8<-- [start:minigpt]
    import numpy as np

    from minigpt import load
    from minigpt.beam import beam_search

    pretrained = load.read(name)  # config.json, model.safetensors and the tokenizer's files, read and checked
    model = load.build_model(pretrained)
    tokenizer = load.text_tokenizer(pretrained)
    inputs = np.array([tokenizer.encode(text + "\nTL;DR:")], dtype=np.int64)  # (1, T)
    end = frozenset({tokenizer.eot_token})  # <|endoftext|>, GPT-2's end token (generate's eos_token_id)
    new = beam_search(model, inputs, max_new_tokens=MAX_NEW_TOKENS, num_beams=NUM_BEAMS,
                      length_penalty=LENGTH_PENALTY, early_stopping=True, eos_token_ids=end,
                      min_new_tokens=MIN_NEW_TOKENS)  # (n,) the summary, its end token included if it ended on one
    summary = tokenizer.decode([t for t in new.tolist() if t not in end])  # (skip_special_tokens)
    # --8<-- [end:minigpt]
    return new.tolist(), summary
