"""GGUF files, the format llama.cpp (and Ollama, LM Studio, ...) runs, written with the `gguf` package from
llama.cpp's authors, as llama.cpp's own `convert_hf_to_gguf.py` writes a Hugging Face checkpoint of the same family:

    arch   llama.cpp's  tensors                               what differs from Hugging Face's state dict
    gpt2   "gpt2"       token_embd, position_embd,            linear weights (in, out) -> (out, in); the tied head
                        blk.N.attn_qkv, ..., output            written as output.weight, a copy, as the converter does
    llama  "llama"      token_embd, blk.N.attn_q, attn_k, ... q_proj's and k_proj's rows permuted (permute below):
                                                              llama.cpp rotates rows (2i, 2i+1), Hugging Face halves
    qwen3  "qwen3"      ... and blk.N.attn_q_norm, attn_k_norm nothing (llama.cpp's qwen3 rotates halves)

A tied Llama's or Qwen 3's head is no tensor: llama.cpp uses token_embd when output.weight is missing; Llama 3's rotary
scaling is one more tensor, rope_freqs (rope_factors below). The names come
from gguf's own tensor-name map (gguf.get_tensor_name_map), the hyperparameters are the keys the converter writes
({arch}.context_length, .embedding_length, .block_count, .feed_forward_length, .attention.head_count,
.attention.head_count_kv, .attention.key_length, .attention.layer_norm_(rms_)epsilon, .rope.freq_base, ...).

Weights as F32 (exact), F16, or Q8_0 (blocks of 32 weights along a row, each with one float16 scale: gguf.quants);
as in the converter, 1-D tensors (norms, biases) and the position embedding stay F32, and a matrix whose rows are
not a multiple of 32 long is written F16 in a Q8_0 file. The tokenizer is GPT-2-style byte-level BPE
(tokenizer.ggml.model "gpt2": tokens in GPT-2's printable form of bytes, their types, merges, bos/eos ids, and the
pre-tokenizer llama.cpp names: "gpt-2", "llama-bpe", "qwen2", "smollm"), with the chat template.

    minigpt.gguf.save(model, tokenizer, "model.gguf", "q8_0")

Docs: docs/llama.md (#to-llamacpp-and-ollama). Tests: tests/test_gguf.py.
"""

import json
from pathlib import Path

import numpy as np

from minigpt import peft
from minigpt.data import BYTE_TO_CHAR, BPETokenizer, CharTokenizer, HFTokenizer
from minigpt.data.records import role_tokens
from minigpt.files import atomic_write
from minigpt.ops.layernorm import EPS

TYPES = ("f32", "f16", "q8_0")  # --gguf-type
ARCHS = {"gpt2": "GPT2", "llama": "LLAMA", "qwen3": "QWEN3"}  # minigpt's arch -> gguf.MODEL_ARCH's name
GPT2_TRANSPOSED = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
# minigpt's BPE regexes (minigpt/data/bpe.py) by the name llama.cpp gives the same pre-tokenizer
BPE_PRE = {"r50k": "gpt-2", "cl100k": "llama-bpe"}
# a tokenizer.json's Split regex -> llama.cpp's pre-tokenizer (Llama 3's splits runs of up to 3 digits, Qwen 2's each)
SPLITS = {
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "llama-bpe",
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": "qwen2",
}
# a merge llama.cpp can never apply: bytes 0xC0 0x80 are never adjacent in UTF-8 text (0xC0 never occurs). GGUF has no
# empty arrays and llama.cpp requires tokenizer.ggml.merges, so a vocabulary without merges (characters) carries this
INERT_MERGE = f"{BYTE_TO_CHAR[0xC0]} {BYTE_TO_CHAR[0x80]}"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Llama's q_proj or k_proj weight (n_head hs, C) with each head's rows reordered from Hugging Face's rotary
    layout (the first half of hs rotated against the second) to llama.cpp's (row 2i against row 2i+1): convert_hf_to_
    gguf.py's LlamaModel.permute."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)  # (nh hs, C)


def check_model(config) -> None:
    """What a GGUF file of llama.cpp's architectures cannot hold, refused in one line."""
    if config.labels is not None:
        raise ValueError("llama.cpp runs language models, and this model is a classifier; export it with --hf instead "
                         "(transformers reads it)")


def rope_factors(config) -> np.ndarray:
    """Llama 3's rotary scaling as llama.cpp takes it, the tensor rope_freqs (hs/2,): what each frequency is divided
    by (1 for short wavelengths, `factor` for long ones, a blend between), as convert_hf_to_gguf.py computes it."""
    s, hs = config.rope_scaling, config.head_dim
    freqs = 1.0 / config.rope_theta ** (np.arange(0, hs, 2) / hs)  # (hs/2,)
    wavelen = 2 * np.pi / freqs  # (hs/2,)
    old = s["original_max_position_embeddings"]
    smooth = (old / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])  # (hs/2,)
    factors = np.where(wavelen < old / s["high_freq_factor"], 1.0,
                       np.where(wavelen > old / s["low_freq_factor"], s["factor"], 1 / ((1 - smooth) / s["factor"] + smooth)))
    return factors.astype(np.float32)  # (hs/2,)


def tensors(config, params: dict) -> list:
    """[(GGUF name, float32 array in the layout llama.cpp reads)], in the model's order."""
    import gguf

    arch = getattr(gguf.MODEL_ARCH, ARCHS[config.arch])
    names = gguf.get_tensor_name_map(arch, config.n_layer)
    out = []
    for name, p in params.items():
        if config.arch == "gpt2" and not name.startswith("transformer."):  # (the tied head has no parameter here)
            continue
        a = np.asarray(p, dtype=np.float32)
        if config.arch == "gpt2" and name.endswith(GPT2_TRANSPOSED):
            a = a.T  # (in, out) -> (out, in)
        if config.arch == "llama" and name.endswith("self_attn.q_proj.weight"):
            a = permute(a, config.n_head)
        if config.arch == "llama" and name.endswith("self_attn.k_proj.weight"):
            a = permute(a, config.n_kv_head)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"parameter {name} has no GGUF name in gguf's map for {config.arch}")
        out.append((gguf_name, np.ascontiguousarray(a)))
        if config.arch == "gpt2" and name == "transformer.wte.weight":  # GPT-2's tied head, as the converter copies it
            out.append(("output.weight", np.ascontiguousarray(a)))
    if config.rope_scaling is not None:  # (Llama 3's; the only scaling minigpt computes)
        out.append(("rope_freqs.weight", rope_factors(config)))
    if config.arch == "gpt2" and not config.bias:  # llama.cpp's gpt2 requires every bias: no bias is a zero one
        out += [(n.removesuffix("weight") + "bias", np.zeros(a.shape[0], dtype=np.float32))  # (out,)
                for n, a in out if n.startswith(("blk.", "output_norm."))]
    return out


def encoded(name: str, a: np.ndarray, kind: str):
    """(data, raw type) of one tensor in a file of `kind`, chosen as convert_hf_to_gguf.py chooses."""
    import gguf

    T = gguf.GGMLQuantizationType
    if kind == "f32" or a.ndim == 1 or name.startswith("position_embd"):
        return a, T.F32
    if kind == "q8_0" and a.shape[-1] % gguf.GGML_QUANT_SIZES[T.Q8_0][0] == 0:
        return gguf.quants.quantize(a, T.Q8_0), T.Q8_0  # (rows, C // 32 * 34) bytes
    return a.astype(np.float16), T.F16  # (f16; or q8_0 with rows that are no whole blocks: the converter's fallback)


# --- the tokenizer ------------------------------------------------------------------------------------------------


def pre_tokenizer(tokenizer) -> str:
    """The name llama.cpp gives the tokenizer's pre-tokenizer (how it cuts text before BPE)."""
    if isinstance(tokenizer, CharTokenizer):
        return "gpt-2"  # (every token is one byte: no merge crosses a cut, wherever the cuts are)
    if isinstance(tokenizer, BPETokenizer):
        if tokenizer.pattern not in BPE_PRE:
            raise ValueError(f"this BPE tokenizer cuts text by its own regex, which no llama.cpp pre-tokenizer matches "
                             f"(it knows {', '.join(BPE_PRE)}); train the tokenizer with one of those patterns")
        return BPE_PRE[tokenizer.pattern]
    spec = tokenizer.spec.get("pre_tokenizer") or {}
    parts = spec.get("pretokenizers", []) if spec.get("type") == "Sequence" else [spec]
    kinds = [p.get("type") for p in parts]
    if any(p.get("add_prefix_space") for p in parts):
        raise ValueError(f"{tokenizer.where}'s ByteLevel adds a space in front of a text, which llama.cpp's "
                         f"pre-tokenizers never do; this tokenizer cannot be written to GGUF")
    splits = [SPLITS.get((p.get("pattern") or {}).get("Regex")) for p in parts if p.get("type") == "Split"]
    if kinds == ["Split", "ByteLevel"] and splits[0] is not None:
        return splits[0]
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    raise ValueError(f"{tokenizer.where}'s pre_tokenizer ({json.dumps(spec)[:80]}) is none that llama.cpp names "
                     f"(GPT-2's, Llama 3's, Qwen 2's, SmolLM's); this tokenizer cannot be written to GGUF")


def vocabulary(tokenizer, V: int) -> tuple:
    """(tokens, token types, merges) as tokenizer.ggml.* holds them, for a model of V rows: ids past the tokenizer's
    are padding ([PAD{id}], unused), as the converter pads a vocabulary."""
    import gguf

    printable = lambda b: "".join(BYTE_TO_CHAR[x] for x in b)  # noqa: E731  GPT-2's form of bytes
    if isinstance(tokenizer, CharTokenizer):
        multibyte = [c for c in tokenizer.chars if len(c.encode("utf-8")) != 1]
        if multibyte:
            raise ValueError(f"character {multibyte[0]!r} is more than one byte in UTF-8: llama.cpp's byte-level BPE "
                             f"would split it into bytes this vocabulary lacks, so it cannot be written to GGUF")
        ordinary = {printable(c.encode("utf-8")): i for i, c in enumerate(tokenizer.chars)}
        merges = [INERT_MERGE]
    else:
        ordinary = {printable(b): i for b, i in tokenizer.ranks.items()}
        if isinstance(tokenizer, BPETokenizer):
            pairs = tokenizer.merges()  # (left, right) bytes, in rank order
        else:
            pairs = sorted(tokenizer.pair_ranks, key=tokenizer.pair_ranks.get)
        merges = [f"{printable(a)} {printable(b)}" for a, b in pairs] or [INERT_MERGE]
    tokens = [f"[PAD{i}]" for i in range(V)]
    types = [gguf.TokenType.UNUSED] * V
    for text, i in ordinary.items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for text, i in tokenizer.special_tokens.items():
        tokens[i], types[i] = text, gguf.TokenType.CONTROL
    return tokens, [int(t) for t in types], merges


def add_tokenizer(writer, tokenizer, V: int) -> None:
    """tokenizer.ggml.* and tokenizer.chat_template, for a model of V rows."""
    if tokenizer.vocab_size > V:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {V} rows")
    # what the tokenizer puts around a text: a Hugging Face one's post-processor (Llama 3's <|begin_of_text|> in
    # front); minigpt's own put nothing. llama.cpp can add one token in front (bos, with add_bos_token) and no more
    prefix, suffix = (tokenizer.prefix, tokenizer.suffix) if isinstance(tokenizer, HFTokenizer) else ([], [])
    if len(prefix) > 1 or suffix:
        raise ValueError(f"{tokenizer.where}'s post_processor puts {prefix} before a text and {suffix} after it; "
                         f"llama.cpp adds at most one token (bos) in front, so this tokenizer cannot be written to GGUF")
    tokens, types, merges = vocabulary(tokenizer, V)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    # bos and eos as a chat template reads them: a Hugging Face tokenizer's own (<|im_start|>, <|eot_id|>), else
    # <|endoftext|>, which minigpt's runs put between documents (neither, in a vocabulary without it)
    roles = role_tokens(tokenizer)
    bos, eos = (tokenizer.special_tokens.get(roles[role]) for role in ("bos_token", "eos_token"))
    bos = prefix[0] if prefix else bos
    if bos is not None:
        writer.add_bos_token_id(bos)
    if eos is not None:
        writer.add_eos_token_id(eos)
        writer.add_pad_token_id(eos)
    writer.add_add_bos_token(bool(prefix))
    if tokenizer.chat_template is not None:
        writer.add_chat_template(tokenizer.chat_template)


# --- the file -----------------------------------------------------------------------------------------------------


def add_hyperparameters(writer, config, kind: str) -> None:
    import gguf

    writer.add_context_length(config.block_size)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_head_count(config.n_head)
    if config.arch == "gpt2":
        writer.add_feed_forward_length(4 * config.n_embd)
        writer.add_layer_norm_eps(EPS)
    else:
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count_kv(config.n_kv_head)
        writer.add_rope_freq_base(config.rope_theta)
        writer.add_layer_norm_rms_eps(config.norm_eps)
        writer.add_key_length(config.head_dim)
        writer.add_value_length(config.head_dim)
        writer.add_rope_dimension_count(config.head_dim)
        writer.add_vocab_size(config.vocab_size)
    file_types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                  "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    writer.add_file_type(file_types[kind])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def save(model, tokenizer, path, kind: str = "f32") -> dict:
    """Write `model` (a LoRA run's with its adapters merged) and its tokenizer as a GGUF file of weights `kind` (f32,
    f16, q8_0), atomically. Returns {GGUF name: (data, raw type)} as written, for the caller to read back."""
    try:
        import gguf
    except ImportError:
        raise ValueError("writing GGUF needs the gguf package: pip install -e '.[gguf]' (or pip install "
                         "gguf==0.19.0)") from None
    if kind not in TYPES:
        raise ValueError(f"--gguf-type {kind!r} is none of {', '.join(TYPES)}")
    config, params = model.config, model.params
    check_model(config)
    if config.lora_rank is not None:
        config, params = peft.merged(config, params)
    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, ARCHS[config.arch])])
    writer.add_name(f"minigpt {config.arch}")
    add_hyperparameters(writer, config, kind)
    add_tokenizer(writer, tokenizer, config.vocab_size)
    written = {}
    for name, a in tensors(config, params):
        data, raw = encoded(name, a, kind)
        writer.add_tensor(name, data, raw_dtype=raw)  # (Q8_0's data: its bytes, (rows, C // 32 * 34))
        written[name] = (data, raw)
    with atomic_write(path, "wb") as f:
        # gguf's writer opens the file it is given by name: it writes the temporary that f holds open, and
        # atomic_write then fsyncs that file (the same inode) and renames it over `path`
        writer.write_header_to_file(path=Path(f.name))
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return written


def read_back(path, written: dict) -> bool:
    """Whether gguf's reader finds in `path` exactly the tensors `written` (their types and bytes)."""
    import gguf

    reader = gguf.GGUFReader(path)
    found = {t.name: t for t in reader.tensors}
    return found.keys() == written.keys() and all(
        found[n].tensor_type == raw and np.array_equal(np.asarray(found[n].data).reshape(-1).view(np.uint8),
                                                       np.ascontiguousarray(data).reshape(-1).view(np.uint8))
        for n, (data, raw) in written.items())
