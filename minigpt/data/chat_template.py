"""Chat templates: Jinja templates that turn a conversation into text, rendered as transformers' apply_chat_template
renders them (Jinja's sandbox, trim_blocks and lstrip_blocks, raise_exception, a tojson filter), within bounds.

    template = ChatTemplate(text, "the chat_template of DIR/tokenizer_config.json")   # what a tokenizer carries
    render(template, messages, True, bos_token="<s>", eos_token="</s>")                # "<|im_start|>user\\nHi..."

A chat template is code from someone else's directory (tokenizer_config.json's chat_template, chat_template.jinja).
Jinja's sandbox stops it from reaching Python's internals, but not from spending time or memory: nested loops,
'x' * 10**10, a macro that calls itself. A rendering here has a budget (Limits), and what would pass it stops the
rendering, before the value is made, in one line that names the template's file and line
(minigpt/data/sandbox.py):

    time      Limits.seconds, checked at every loop iteration, call, attribute or item lookup, operator and output
    a value   Limits.chars characters (a list counts its items') in any one value: checked before * + ** % ~ and
              the filters and string methods that pad, repeat or join (center, ljust, indent, replace, join, format,
              ...) make it, and for what any other call or filter returns
    in all    Limits.total characters made by one rendering: its output and every value above

Any other failure (a syntax error, an undefined name, a type error, Python's recursion limit, raise_exception) is
one ValueError too. Docs: docs/finetuning.md; tests: tests/test_untrusted.py.
"""

import functools
from typing import NamedTuple


class Limits(NamedTuple):
    seconds: float = 2.0  # a chat template renders a conversation in milliseconds
    chars: int = 1_000_000  # in any one value: more than a context of a million tokens holds
    total: int = 20_000_000  # made by one rendering, all values together
    int_bits: int = 1 << 16  # an integer's size (2**65536 has 19,729 digits)


LIMITS = Limits()


class ChatTemplate(str):
    """A chat template's text, with where it was read from (`source`, for errors): a str, so that it is saved,
    compared and hashed as the text it is."""

    source: str

    def __new__(cls, text: str, source: str):
        template = super().__new__(cls, text)
        template.source = source
        return template


def from_file(value, where) -> ChatTemplate | None:
    """A chat template read from a file (a tokenizer_config.json's "chat_template", a checkpoint's tokenizer.json),
    naming it for errors; None where the file has none as a string (absent, null, or a list of named templates,
    among which minigpt does not choose)."""
    return ChatTemplate(value, f"the chat_template of {where}") if isinstance(value, str) else None


def source_of(template: str) -> str:
    # (a template given as a plain string, from Python code, has no file to name)
    return template.source if isinstance(template, ChatTemplate) else "the chat template"


@functools.lru_cache(maxsize=8)
def compiled(template: str):
    """The template, parsed, bounded and compiled once (a file of records renders it thousands of times)."""
    import jinja2  # (here, not at the top: importing minigpt costs no Jinja until a template is rendered)

    from minigpt.data.sandbox import Bounds, BoundedEnvironment

    if len(template) > LIMITS.chars:
        raise ValueError(f"{source_of(template)} is {len(template):,} characters long, more than {LIMITS.chars:,}; "
                         f"it is not a chat template minigpt renders")
    environment = BoundedEnvironment()
    try:
        return environment.from_string(Bounds().visit(environment.parse(template)))
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"{source_of(template)} cannot be compiled: line {e.lineno}: {e.message}") from None
    except (jinja2.TemplateError, RecursionError, MemoryError) as e:  # (RecursionError: thousands of nested brackets)
        raise ValueError(f"{source_of(template)} cannot be compiled: {message(e)}") from None


def render(template: str, messages: list, add_generation_prompt: bool, bos_token: str, eos_token: str,
           limits: Limits = LIMITS) -> str:
    """A conversation as text, by a Jinja chat template, within limits; any failure is one ValueError that names the
    template's file and line."""
    from minigpt.data.sandbox import OverBudget, Refused

    t = compiled(template)
    t.environment.start(limits)
    try:
        return t.render(messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos_token,
                        eos_token=eos_token)
    except Exception as e:  # the template is someone else's code: whatever it raises is its failure, said in one line
        line = template_line(e)
        where = source_of(template) + (f", line {line}," if line is not None else "")
        if isinstance(e, Refused):
            raise ValueError(f"{where} refuses the conversation: {' '.join(str(e).split())[:200]}") from None
        if isinstance(e, OverBudget):
            raise ValueError(f"{where} was stopped: {e}; fix the template, or use another") from None
        raise ValueError(f"{where} cannot be rendered: {message(e)}") from None


def template_line(e: BaseException) -> int | None:
    """The template's line where e was raised: Jinja rewrites a rendering's traceback into the template's lines."""
    line, tb = None, e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def message(e: BaseException) -> str:
    """e's message on one line, at most 200 characters, with its kind where the message alone would not say."""
    import jinja2

    text = " ".join(str(e).split())
    if not isinstance(e, jinja2.TemplateError):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
