"""Conversations with a fine-tuned model, as `minigpt chat` and `minigpt sample --chat` hold them: the messages so far
rendered by the model's chat template with the generation prompt (minigpt/data/records.py), then the reply sampled
token by token until a stop token (<|im_end|>, <|endoftext|>, the tokenizer's eos) or max_new_tokens.

    messages = [{"role": "user", "content": "201102="}]
    for piece in reply(model, tokenizer, messages, 50, do_sample=False):
        print(piece, end="")

A conversation longer than the context loses its oldest turns (a system message stays). Docs: docs/finetuning.md.
"""

import codecs

import numpy as np

from minigpt.data.records import render, stop_tokens
from minigpt.data.text import encode_text
from minigpt.generate import stream


def template_of(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        raise ValueError("this model has no chat template: it was not fine-tuned on records; fine-tune it first "
                         "(minigpt train --data F.jsonl --init-from DIR), or use minigpt sample --prompt")
    return template


def prompt_ids(tokenizer, messages: list, room: int) -> np.ndarray:
    """(1, T) ids of the conversation with the generation prompt, T <= room, the oldest turns dropped to fit."""
    template = template_of(tokenizer)
    messages = list(messages)
    while True:
        ids = encode_text(tokenizer, render(template, messages, True, tokenizer))
        if len(ids) <= room:
            return ids[None, :]
        first = 1 if messages[0]["role"] == "system" else 0
        if len(messages) - first <= 1:
            raise ValueError(f"the message is {len(ids)} tokens with its template, and the model's context leaves "
                             f"room for {room}; shorten it, or lower --max-new-tokens")
        del messages[first]


def reply(model, tokenizer, messages: list, max_new_tokens: int, **sampling):
    """Yield the reply's text, piece by piece, up to a stop token (not shown) or max_new_tokens tokens."""
    room = model.config.block_size - min(max_new_tokens, model.config.block_size // 2)
    idx = prompt_ids(tokenizer, messages, max(1, room))
    stops = stop_tokens(tokenizer)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for next_id in stream(model, idx, max_new_tokens, **sampling):
        if int(next_id[0]) in stops:
            break
        yield decoder.decode(tokenizer.decode_bytes(next_id))
    yield decoder.decode(b"", final=True)
