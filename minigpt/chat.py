"""Conversations with a fine-tuned model, as `minigpt chat` and `minigpt sample --chat` hold them: the messages so far
rendered by the model's chat template with the generation prompt (minigpt/data/records.py), then the reply sampled
token by token until a stop token (<|im_end|>, <|endoftext|>, the tokenizer's eos) or max_new_tokens.

    messages = [{"role": "user", "content": "201102="}]
    for piece in reply(model, tokenizer, messages, 50, do_sample=False):
        print(piece, end="")

A conversation longer than the context loses its oldest turns (a system message stays). A message the model cannot
take (a character outside its vocabulary, or too long for its context even alone) is Refused before anything is
generated, so that `minigpt chat` can say so and go on. Docs: docs/finetuning.md.
"""

import codecs

import numpy as np

from minigpt.data.chars import UnknownCharacter
from minigpt.data.chat_template import compiled
from minigpt.data.records import render, stop_tokens
from minigpt.data.text import encode_text
from minigpt.beam import Beams, beam_search
from minigpt.generate import stream


class Refused(ValueError):
    """A message the model cannot take; the conversation it was to join is unchanged."""


def check_message(tokenizer, content: str) -> None:
    """Refused if the model cannot read the message: it is encoded alone, so that a character is named by its column
    in what was typed (from 1), not by its place in the conversation its template renders."""
    try:
        encode_text(tokenizer, content)
    except UnknownCharacter as e:
        raise Refused(f"column {e.position + 1}: the character {e.character!r} (U+{ord(e.character):04X}) is not in "
                      f"the model's vocabulary") from None
    except ValueError as e:
        raise Refused(str(e)) from None


def template_of(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        raise ValueError("this model has no chat template: it was not fine-tuned on records; fine-tune it first "
                         "(minigpt train --data F.jsonl --init-from DIR), or use minigpt sample --prompt")
    compiled(template)  # (one that does not compile is said before the first prompt)
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
            raise Refused(f"the message is {len(ids)} tokens with its template, and the model's context leaves "
                          f"room for {room}; shorten it, or lower --max-new-tokens")
        del messages[first]


def reply(model, tokenizer, messages: list, max_new_tokens: int, beams: Beams | None = None, **sampling):
    """The reply's text, piece by piece (an iterator), up to a stop token (not shown) or max_new_tokens tokens.
    The last message is checked here, at the call, before anything is generated: Refused if the model cannot take
    it. With beams, the reply is beam search's (minigpt/beam.py), ended by the stop tokens, at most to the end of the
    context."""
    check_message(tokenizer, messages[-1]["content"])
    room = model.config.block_size - min(max_new_tokens, model.config.block_size // 2)
    idx = prompt_ids(tokenizer, messages, max(1, room))
    if beams is not None:
        return searched(model, tokenizer, idx, min(max_new_tokens, model.config.block_size - idx.shape[1]), beams)
    return streamed(model, tokenizer, idx, max_new_tokens, **sampling)


def searched(model, tokenizer, idx: np.ndarray, max_new_tokens: int, beams: Beams):
    """Yield the text beam search finds after idx (1, T): all of it at once (a beam is known to be best only at the
    end), up to a stop token (not shown)."""
    stops = stop_tokens(tokenizer)
    tokens = beam_search(model, idx, max_new_tokens, beams.num_beams, beams.length_penalty, beams.early_stopping,
                         eos_token_ids=frozenset(stops))  # (n,)
    if tokens.size and int(tokens[-1]) in stops:
        tokens = tokens[:-1]
    yield tokenizer.decode_bytes(tokens).decode("utf-8", errors="replace")


def streamed(model, tokenizer, idx: np.ndarray, max_new_tokens: int, **sampling):
    """Yield the text generated after idx (1, T), piece by piece, up to a stop token (not shown)."""
    stops = stop_tokens(tokenizer)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for next_id in stream(model, idx, max_new_tokens, **sampling):
        if int(next_id[0]) in stops:
            break
        yield decoder.decode(tokenizer.decode_bytes(next_id))
    yield decoder.decode(b"", final=True)
