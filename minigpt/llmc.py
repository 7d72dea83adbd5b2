"""llm.c's model file (`gpt2_124M.bin`, as train_gpt2.py writes it and train_gpt2.c reads it), version 3:
a header of 256 int32 followed by every parameter in float32, in llm.c's order and (OC, C) layout, with
the token embedding padded to a multiple of 128 rows.

    header[0:8] = 20240326 (magic), 3 (version), block_size, V, L, n_head, C, Vp (padded V)
    wte (Vp, C), wpe (block_size, C), then for each kind, all L layers one after another:
    ln_1 w, b (L, C); c_attn w (L, 3C, C), b (L, 3C); attn c_proj w (L, C, C), b (L, C);
    ln_2 w, b (L, C); c_fc w (L, 4C, C), b (L, 4C); mlp c_proj w (L, C, 4C), b (L, C); ln_f w, b (C,)

llm.c stores linear weights as (out, in), minigpt (and GPT-2's checkpoint) as (in, out): each is
transposed on the way. A model from such a file, checked and built: minigpt/load.py (read, build_model).
Docs: docs/gpt2.md. Tests: tests/test_hf.py.
"""

from pathlib import Path

import numpy as np

from minigpt.config import GPTConfig
from minigpt.files import atomic_write
from minigpt.model import param_shapes

MAGIC, VERSION = 20240326, 3
HEADER = 256  # int32 entries
LAYER_PARAMS = [  # llm.c's order: (minigpt name within a block, transposed?)
    ("ln_1.weight", False), ("ln_1.bias", False), ("attn.c_attn.weight", True), ("attn.c_attn.bias", False),
    ("attn.c_proj.weight", True), ("attn.c_proj.bias", False), ("ln_2.weight", False), ("ln_2.bias", False),
    ("mlp.c_fc.weight", True), ("mlp.c_fc.bias", False), ("mlp.c_proj.weight", True), ("mlp.c_proj.bias", False),
]


def padded(V: int) -> int:
    """llm.c pads the vocabulary to a multiple of 128 rows, for its kernels' sake."""
    return (V + 127) // 128 * 128


def save(model, path) -> None:
    """Write `model` as an llm.c version-3 file, atomically."""
    cfg, p = model.config, model.params
    if cfg.arch != "gpt2":  # (before its biases: a Llama has none, but that is not what stops it)
        raise ValueError(f"llm.c's model file holds GPT-2 only, and this model is a {cfg.arch}; export it with --hf "
                         f"instead (transformers reads it)")
    if cfg.labels is not None:
        raise ValueError("llm.c's model file holds a language model, and this model is a classifier; export it with "
                         "--hf instead (transformers reads it)")
    if cfg.lora_rank is not None:
        raise ValueError("llm.c's model file has no LoRA adapters; export this model with --hf (adapters merged) "
                         "or --peft (the adapters alone)")
    if not cfg.bias:
        raise ValueError("llm.c's model has biases everywhere; a model with bias=False cannot be written in its format")
    V, C, L, Vp = cfg.vocab_size, cfg.n_embd, cfg.n_layer, padded(cfg.vocab_size)
    header = np.zeros(HEADER, dtype=np.int32)
    header[:8] = [MAGIC, VERSION, cfg.block_size, V, L, cfg.n_head, C, Vp]
    wte = np.zeros((Vp, C), dtype=np.float32)  # (Vp, C) the rows past V stay zero
    wte[:V] = p["transformer.wte.weight"]
    arrays = [wte, p["transformer.wpe.weight"]]
    for name, transposed in LAYER_PARAMS:
        for l in range(L):
            a = p[f"transformer.h.{l}.{name}"]
            arrays.append(a.T if transposed else a)  # (in, out) -> llm.c's (out, in)
    arrays += [p["transformer.ln_f.weight"], p["transformer.ln_f.bias"]]
    with atomic_write(path, "wb") as f:
        f.write(header.tobytes())
        for a in arrays:
            f.write(np.ascontiguousarray(a, dtype=np.float32).tobytes())


def is_model_file(path: Path) -> bool:
    """Whether the file at `path` starts as an llm.c model file does (its magic number; any version)."""
    magic = np.fromfile(path, dtype=np.int32, count=1)
    return len(magic) == 1 and magic[0] == MAGIC


def read(path) -> tuple:
    """(config, weights) of an llm.c version-3 model file: the GPTConfig its header describes, after checking the
    header against the file's size, and the parameters named as minigpt names them, float32 as stored, each linear
    weight transposed to minigpt's (in, out)."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.int32, count=HEADER)
    if len(raw) < HEADER or raw[0] != MAGIC:
        raise ValueError(f"{path} is not an llm.c model file (its header does not start with {MAGIC})")
    if raw[1] != VERSION:
        raise ValueError(f"{path} is llm.c model version {raw[1]}; minigpt reads version {VERSION} (float32)")
    block_size, V, L, n_head, C, Vp = (int(x) for x in raw[2:8])
    config = GPTConfig(vocab_size=V, block_size=block_size, n_layer=L, n_head=n_head, n_embd=C)
    n_params = sum(int(np.prod(s)) for s in param_shapes(config).values()) + (Vp - V) * C
    data = np.fromfile(path, dtype=np.float32, offset=HEADER * 4)
    if data.size != n_params:
        raise ValueError(f"{path} holds {data.size} parameters after its header, but its header describes {n_params}; "
                         f"the file is truncated or corrupt")
    offset = 0

    def take(shape):
        nonlocal offset
        a = data[offset:offset + int(np.prod(shape))].reshape(shape)
        offset += a.size
        return a

    weights = {"transformer.wte.weight": take((Vp, C))[:V], "transformer.wpe.weight": take((block_size, C))}
    shapes = param_shapes(config)
    for name, transposed in LAYER_PARAMS:
        for l in range(L):
            key = f"transformer.h.{l}.{name}"
            shape = shapes[key]
            weights[key] = take(shape[::-1]).T if transposed else take(shape)  # llm.c's (out, in) -> (in, out)
    weights["transformer.ln_f.weight"], weights["transformer.ln_f.bias"] = take((C,)), take((C,))
    return config, weights
