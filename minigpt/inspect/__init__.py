"""`minigpt inspect`: what each layer and head of a model does, as one self-contained HTML page.

    from minigpt.inspect import analyse, report
    panels = analyse(model, tokenizer, "ROMEO:")    # the arrays behind every panel, a dict (for notebooks)
    html = report(model, tokenizer, "ROMEO:")       # the page: plotly's JavaScript inline, no network needed

One forward and one backward of the prompt, in evaluation mode (no dropout), and everything is read from what
the ops saved for the backward (the model's `cache`): nothing is recomputed by another code path, except the
attention probabilities, which the fused kernels do not store: they come back from the queries and keys and each
row's log-sum-exp, a = exp(q k^T / sqrt(hs) - lse) (docs/kernels.md). The panels:

    attention     every layer x query head, (T, T) probabilities, the prompt's tokens on both axes (with
                  grouped-query attention, each head's key/value head named)
    predictions   at each position the top-k next tokens, and the loss where the prompt is its own target
    logit lens    the residual stream after each block through the final norm and the head: each layer's guess
    activations   the residual stream's and the MLP gate's (GELU's or SwiGLU's) inputs, attention entropy, the
                  norms' gains
    gradients     per parameter, |grad| and |grad| / |weight| from the backward of the prompt; with a run's log
                  (`minigpt train --log-stats`), the update-to-weight ratios over training and the losses
    data flow     each kernel the forward calls, in the model's own order (its kernel table traced), with its
                  shapes, its share of the time and its docs page

The arrays: minigpt/inspect/arrays.py; the page (Plotly figures, plain HTML tables): minigpt/inspect/page.py.
Docs: docs/inspect.md.
"""

from minigpt.inspect.arrays import MAX_TOKENS, TOP_K, analyse, default_prompt, token_labels
from minigpt.inspect.page import plotly, report, write

__all__ = ["MAX_TOKENS", "TOP_K", "analyse", "default_prompt", "plotly", "report", "token_labels", "write"]
