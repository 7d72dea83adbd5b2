"""The Jinja environment that renders chat templates within a budget (minigpt/data/chat_template.py says what the
budget is): transformers' sandbox, with a check wherever a template spends time or makes a value.

Two kinds of place are checked. The sandbox's own hooks: calls, attribute and item lookups, and the operators
* + ** % (intercepted_binops). And what no hook sees, put into each template's syntax tree before it is compiled
(Bounds): every for loop's items, every ~ and every piece of output pass through a filter of ours. The filters
that pad, repeat or join (center, indent, replace, join, format, ...) check their result's size before making it;
every other filter and call is checked after. Tests: tests/test_untrusted.py.
"""

import functools
import json
import re
import string
import time
import types

from jinja2 import nodes, pass_context, pass_environment
from jinja2.filters import do_batch, do_format, do_indent, do_slice, do_wordwrap, make_attrgetter
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer


class OverBudget(Exception):
    """A rendering that would pass its Limits. (Not a ValueError or TypeError: Jinja's filters catch those.)"""


def size(value, limit: int) -> int:
    """The characters `value` turns into as text, counted up to limit (then any number above it): a string's
    length; a list's, tuple's or dict's items' (each at least 1); an integer's digits; anything else 1."""
    if isinstance(value, str):  # (most values)
        return len(value)
    total, stack = 0, [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, (list, tuple)):
            total += 1
            stack.extend(v)
        elif isinstance(v, dict):
            total += 1
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 1
        else:
            total += 1
    return total


# a printf-style conversion's width and precision ("%-10.3f", "%*d"), and a format spec's digits ("{:>10}")
PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
DIGITS = re.compile(r"\d+")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """transformers' sandbox, with every place a template spends time or makes a value checked against a budget.
    The budget is the rendering's (render sets it): templates are not rendered concurrently."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self):
        super().__init__(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        del self.globals["lipsum"]  # (lorem ipsum of any length, made where no hook sees it)
        self.globals["raise_exception"] = raise_exception
        # the budget, set by start; before a rendering, none: so Jinja's compiler, which evaluates at compile time
        # what it can, finds our filters over budget and leaves them to the rendering
        self.seconds, self.chars, self.total, self.int_bits, self.deadline, self.left = 0.0, 0, 0, 0, 0.0, 0
        for name, f in self.filters.items():
            self.filters[name] = self.bounded_filter(f)
        self.filters.update({"center": self.filter_center, "indent": self.filter_indent, "batch": self.filter_batch,
                             "slice": self.filter_slice, "format": self.filter_format, "replace": self.filter_replace,
                             "join": self.filter_join, "sum": self.filter_sum, "wordwrap": self.filter_wordwrap,
                             "tojson": self.filter_tojson, "minigpt_loop": self.filter_loop,
                             "minigpt_concat": self.filter_concat, "minigpt_output": self.filter_output})

    def start(self, limits) -> None:
        """A rendering starts, with chat_template.Limits: its budget."""
        self.seconds, self.chars, self.total, self.int_bits = limits  # (Limits' fields, in order)
        self.deadline, self.left = time.monotonic() + limits.seconds, limits.total

    # --- the budget ------------------------------------------------------------------------------------

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise OverBudget(f"it ran for more than {self.seconds:g} s")

    def fits(self, n: int, what: str = "a value") -> None:
        """A value of n characters may be made: it fits in one value and in what is left of the rendering's."""
        self.tick()
        if n > self.chars:
            raise OverBudget(f"it would make {what} of more than {self.chars:,} characters")
        if n > self.left:
            raise OverBudget(f"it would make more than {self.total:,} characters in all")

    def made(self, value):
        """value, made: counted against the budget."""
        n = size(value, self.chars)
        self.fits(n)
        self.left -= n
        return value

    def width(self, n) -> None:
        """An integer that pads or repeats: a width, a count, a tab size."""
        if is_int(n) and n > self.chars:
            raise OverBudget(f"it would make a value of more than {self.chars:,} characters (a width of {n:,})")

    # --- the sandbox's hooks ------------------------------------------------------------------------------

    def getattr(self, obj, attribute):
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        self.tick()
        return super().getitem(obj, argument)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805  (the sandbox's own signature)
        __self.tick()
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str):
            __self.check_str_method(__obj.__self__, __obj.__name__, args)
        return __self.made(super().call(__context, __obj, *args, **kwargs))

    def check_str_method(self, s: str, name: str, args: tuple) -> None:
        """The string methods whose result can be much larger than their inputs, checked before they run."""
        if name in ("center", "ljust", "rjust", "zfill") and args:
            self.width(args[0])
        elif name == "expandtabs":
            self.fits(len(s) + s.count("\t") * (args[0] if args and is_int(args[0]) else 8))
        elif name == "replace" and len(args) >= 2:
            self.fits(replaced(s, args[0], args[1], args[2] if len(args) > 2 else -1))
        elif name == "join" and args:
            self.fits((1 + len(s)) * size(args[0], self.chars))
        elif name == "translate" and args and isinstance(args[0], dict):
            self.fits(len(s) * max((size(v, self.chars) for v in args[0].values()), default=1))

    def call_binop(self, context, operator: str, left, right):
        if operator == "+" and isinstance(left, str) and isinstance(right, str):  # (most of a template's work)
            self.fits(len(left) + len(right))
            self.left -= len(left) + len(right)
            return left + right
        self.tick()
        chars = self.chars
        if operator == "*":
            if is_int(left) and is_int(right):
                self.bits(left.bit_length() + right.bit_length())
            elif is_int(right) and isinstance(left, (str, list, tuple)):
                self.fits(size(left, chars) * max(right, 0))
            elif is_int(left) and isinstance(right, (str, list, tuple)):
                self.fits(size(right, chars) * max(left, 0))
        elif operator == "**" and is_int(left) and is_int(right) and right > 0 and abs(left) > 1:
            self.bits(right * left.bit_length())
        elif operator == "+" and not (is_int(left) or is_int(right)):
            self.fits(size(left, chars) + size(right, chars))
        elif operator == "%" and isinstance(left, str):
            self.check_percent(left, right)
        return self.made(super().call_binop(context, operator, left, right))

    def bits(self, n: int) -> None:
        if n > self.int_bits:
            raise OverBudget(f"it would make an integer of more than {self.int_bits:,} bits")

    def check_percent(self, template: str, args) -> None:
        """printf-style formatting (% and the format filter): every width and precision within a value."""
        args = args if isinstance(args, tuple) else (args,)
        for m in PERCENT.finditer(template):
            for n in m.groups():
                self.width(int(n) if n is not None and n != "*" else 0)
        if "*" in template:
            for a in args:
                self.width(a)
        self.fits(len(template) + size(args, self.chars))

    def wrap_str_format(self, value):
        """str.format and format_map, as the sandbox wraps them, with each replacement field's width checked."""
        format = super().wrap_str_format(value)
        if format is None:
            return None

        def bounded(*args, **kwargs):
            for _, _, spec, _ in string.Formatter().parse(value.__self__):
                for n in DIGITS.findall(spec or ""):
                    self.width(int(n))
                if spec and "{" in spec:  # a width given as an argument ("{:{w}}")
                    for a in (*args, *kwargs.values()):
                        self.width(a)
            self.fits(len(value.__self__) + size((args, kwargs), self.chars))
            return format(*args, **kwargs)

        return bounded

    # --- filters: every one within the budget; those that pad, repeat or join checked before they run ------

    def bounded_filter(self, f):
        skip = 1 if hasattr(f, "jinja_pass_arg") else 0  # (Jinja's own test: the filter takes its context first)

        @functools.wraps(f)  # (keeps jinja_pass_arg, so Jinja passes the same arguments)
        def bounded(*args, **kwargs):
            self.fits(size((args[skip:], kwargs), self.chars))
            return self.made(f(*args, **kwargs))

        return bounded

    def filter_center(self, value, width=80):
        self.width(width)
        return self.made(str(value).center(width))

    def filter_indent(self, s, width=4, first=False, blank=False):
        lines = str(s).count("\n") + 2
        self.fits(size(s, self.chars) + lines * (len(width) if isinstance(width, str) else max(width, 0)))
        return self.made(do_indent(s, width, first, blank))

    def filter_batch(self, value, linecount, fill_with=None):
        self.width(linecount)
        return self.made(do_batch(value, linecount, fill_with))

    def filter_slice(self, value, slices, fill_with=None):
        self.width(slices)
        return self.made(do_slice(value, slices, fill_with))

    def filter_format(self, value, *args, **kwargs):
        self.check_percent(str(value), args)
        return self.made(do_format(value, *args, **kwargs))

    def filter_replace(self, s, old, new, count=None):
        s, old, new = str(s), str(old), str(new)
        count = -1 if count is None else count
        self.fits(replaced(s, old, new, count))
        return self.made(s.replace(old, new, count))

    @pass_environment
    def filter_join(self, environment, value, d="", attribute=None):
        items = list(map(make_attrgetter(environment, attribute), value) if attribute is not None else value)
        self.fits(size(items, self.chars) + len(str(d)) * len(items))
        return self.made(str(d).join(map(str, items)))

    @pass_environment
    def filter_sum(self, environment, iterable, attribute=None, start=0):
        """sum, one checked + at a time (Python's would add lists of lists unchecked)."""
        total = start
        for item in map(make_attrgetter(environment, attribute), iterable) if attribute is not None else iterable:
            total = self.call_binop(None, "+", total, item)
        return total

    @pass_environment
    def filter_wordwrap(self, environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
        # each of at most len(s) lines ends with wrapstring
        self.fits(size(s, self.chars) * (1 + len(str(wrapstring or "\n"))))
        return self.made(do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens))

    def filter_tojson(self, x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        """transformers' tojson (its default ensure_ascii=False), with the indent at most 16: it is spent at every
        level of every item."""
        if isinstance(indent, int) and indent > 16 or isinstance(indent, str) and len(indent) > 16:
            raise OverBudget(f"tojson's indent {indent!r:.20} is more than 16")
        self.fits(size(x, self.chars))
        return self.made(json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                                    sort_keys=sort_keys))

    # --- what Bounds puts into every template (pass_context: never evaluated at compile time) -----------------

    @pass_context
    def filter_loop(self, context, iterable):
        """A for loop's items, one tick each."""
        for item in iterable:
            self.tick()
            yield item

    @pass_context
    def filter_concat(self, context, operands):
        """a ~ b ~ c, checked before it is joined."""
        self.fits(size(operands, self.chars))
        return self.made("".join(map(str, operands)))

    @pass_context
    def filter_output(self, context, value):
        """Each piece of output, {{ an expression }} or the template's text, counted before it becomes text."""
        return self.made(value)


def is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def replaced(s, old, new, count) -> int:
    """The length of s.replace(old, new, count), computed without making it."""
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str) and is_int(count)):
        return 0  # (str.replace refuses these itself)
    n = len(s) + 1 if old == "" else s.count(old)
    n = n if count < 0 else min(n, count)
    return len(s) + n * (len(new) - len(old))


class Refused(Exception):
    """raise_exception's: the template refuses the conversation it was given."""


def raise_exception(message):
    raise Refused(message)


class Bounds(NodeTransformer):
    """A template's syntax tree with the budget's checks put in: a tick for each loop iteration, ~ checked before it
    joins, each piece of output counted."""

    def visit_For(self, node):
        node = self.generic_visit(node)
        node.iter = filtered(node.iter, "minigpt_loop")
        return node

    def visit_Concat(self, node):
        node = self.generic_visit(node)
        return filtered(nodes.List(node.nodes, lineno=node.lineno), "minigpt_concat")

    def visit_Output(self, node):
        node = self.generic_visit(node)
        node.nodes = [filtered(nodes.Const(n.data, lineno=n.lineno) if isinstance(n, nodes.TemplateData) else n,
                               "minigpt_output") for n in node.nodes]
        return node


def filtered(node, name: str):
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
