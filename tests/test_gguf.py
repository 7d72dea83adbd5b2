"""GGUF export (minigpt/gguf.py): gguf's own reader finds every tensor where llama.cpp looks for it, in the layout it
reads (against tables written out here, not gguf's name map), in F32 exactly, in F16 to float16 rounding, and in Q8_0
as a NumPy reference of the format computes it; the metadata keys llama.cpp reads; the tokenizer; refusals in one
line. With llama.cpp built (`pytest -m llamacpp`): it runs the F32 files and decodes the same greedy tokens."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import cli, error_line, require
from minigpt import GPT, GPTConfig
from minigpt import gguf as export
from minigpt.data import BYTE_TO_CHAR, BPETokenizer, CharTokenizer

gguf = require("gguf")

Q8_BLOCK = 32  # weights per Q8_0 block, each block with one float16 scale
# a Q8_0 weight is within half a step of its block (d = max |x| / 127), plus what rounding d to float16 moves the
# largest quantized value (127 steps): |d - fp16(d)| <= d 2^-11
Q8_BOUND_STEPS = 0.5 + 127 * 2.0 ** -11
# Llama 3's rotary scaling, with an original context short enough that a 16-token model meets every regime
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8}
FLOAT32_RTOL = 1e-6  # a float32 value against its float64 computation
TEXT = "the king and the queen of night, thou art good lord, sweet prince.\n" * 20
CHAT = "{% for m in messages %}{{ m['content'] }}<|endoftext|>{% endfor %}"
SHAPES = {  # tiny, with C a multiple of 32 (Q8_0 rows) and an MLP width that is not (its rows fall back to F16)
    "gpt2": dict(arch="gpt2", n_layer=2, n_head=2, n_embd=32, block_size=16),
    "llama": dict(arch="llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=16, intermediate_size=40,
                  rope_theta=5e5, norm_eps=1e-5, tie_word_embeddings=False),
    "qwen3": dict(arch="qwen3", n_layer=2, n_head=4, n_kv_head=2, head_dim=32, n_embd=64, block_size=16,
                  intermediate_size=64, tie_word_embeddings=True),
}


def tokenizer_of(kind: str):
    if kind == "char":
        return CharTokenizer.from_text(TEXT).with_chat(["<|endoftext|>"], CHAT)
    # (with digits and contractions, which llama.cpp's pre-tokenizers cut differently: the right one must be named)
    return BPETokenizer.train(TEXT + "it's 2024, IT'S 1999 and 123456.\n" * 10, vocab_size=300).with_chat(
        ["<|endoftext|>"], CHAT)


def model_of(arch: str, tokenizer, seed: int = 0, **overrides) -> GPT:
    shape = {**SHAPES[arch], **overrides}
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **shape), seed=seed, dtype=np.float32)
    rng = np.random.default_rng(seed)  # norms away from 1 and biases away from 0: a swapped tensor shows
    model.load_state_dict({k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32) for k, v in model.params.items()})
    return model


def llama_rows(n_head: int, hs: int) -> np.ndarray:
    """Which Hugging Face row each row of llama.cpp's q or k weight is: within a head, rows (2i, 2i+1) are the pair
    that llama.cpp rotates together, which Hugging Face keeps at (i, i + hs/2)."""
    half = np.arange(hs // 2)
    pairs = np.stack([half, half + hs // 2], axis=1).reshape(-1)  # (hs,) 0, hs/2, 1, hs/2+1, ...
    return (np.arange(n_head)[:, None] * hs + pairs).reshape(-1)  # (nh hs,)


def expected(model) -> dict:
    """{GGUF name: array in numpy's (out, in) order} as llama.cpp's loader names and reads each tensor."""
    cfg, p = model.config, model.params
    if cfg.arch == "gpt2":
        want = {"token_embd.weight": p["transformer.wte.weight"], "output.weight": p["transformer.wte.weight"],
                "position_embd.weight": p["transformer.wpe.weight"],
                "output_norm.weight": p["transformer.ln_f.weight"], "output_norm.bias": p["transformer.ln_f.bias"]}
        ours = {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
                "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}
        for l in range(cfg.n_layer):
            for theirs, name in ours.items():
                w = p[f"transformer.h.{l}.{name}.weight"]
                want[f"blk.{l}.{theirs}.weight"] = w.T if w.ndim == 2 else w  # (in, out) -> (out, in)
                want[f"blk.{l}.{theirs}.bias"] = p[f"transformer.h.{l}.{name}.bias"]
        return want
    want = {"token_embd.weight": p["model.embed_tokens.weight"], "output_norm.weight": p["model.norm.weight"]}
    if not cfg.tie_word_embeddings:
        want["output.weight"] = p["lm_head.weight"]
    ours = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    if cfg.arch == "qwen3":
        ours.update(attn_q_norm="self_attn.q_norm", attn_k_norm="self_attn.k_norm")
    for l in range(cfg.n_layer):
        for theirs, name in ours.items():
            w = p[f"model.layers.{l}.{name}.weight"]
            if cfg.arch == "llama" and theirs in ("attn_q", "attn_k"):
                w = w[llama_rows(cfg.n_head if theirs == "attn_q" else cfg.n_kv_head, cfg.head_dim)]
            want[f"blk.{l}.{theirs}.weight"] = w
    return want


def q8_0_reference(x: np.ndarray) -> tuple:
    """(dequantized weights, step d of each weight's block): GGML's quantize_row_q8_0_ref then dequantize, in NumPy.
    Each row in blocks of 32: d = max |x| / 127, q = round(x / d) (half away from zero) as int8, d kept as float16."""
    blocks = x.reshape(-1, Q8_BLOCK).astype(np.float32)  # (nb, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)  # (nb, 1)
    inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, 1, d))
    y = blocks * inv
    q = (np.sign(y) * np.floor(np.abs(y) + np.float32(0.5))).astype(np.int8)  # (nb, 32)
    d16 = d.astype(np.float16).astype(np.float32)
    return (q.astype(np.float32) * d16).reshape(x.shape), np.broadcast_to(d, blocks.shape).reshape(x.shape)


def fields(reader) -> dict:
    return {name: f.contents() for name, f in reader.fields.items()}


@pytest.fixture(scope="module", params=["char", "bpe"])
def tokenizer(request):
    return tokenizer_of(request.param)


@pytest.mark.parametrize("arch", list(SHAPES))
def test_every_tensor_reads_back_as_llama_cpp_reads_it(tmp_path, arch, tokenizer):
    model = model_of(arch, tokenizer)
    want = expected(model)
    for kind in export.TYPES:
        path = tmp_path / f"{kind}.gguf"
        export.save(model, tokenizer, path, kind)
        tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
        assert sorted(tensors) == sorted(want)
        for name, w in want.items():
            t = tensors[name]
            assert [int(n) for n in t.shape] == list(w.shape[::-1]), name  # GGUF's ne: numpy's shape reversed
            T = gguf.GGMLQuantizationType
            stays_f32 = w.ndim == 1 or name == "position_embd.weight"  # (norms, biases, positions)
            if kind == "f32" or stays_f32:
                assert t.tensor_type == T.F32, name
                assert np.array_equal(np.asarray(t.data).reshape(w.shape), w), name
            elif kind == "f16" or w.shape[-1] % Q8_BLOCK:
                assert t.tensor_type == T.F16, name
                assert np.array_equal(np.asarray(t.data).reshape(w.shape), w.astype(np.float16)), name
            else:
                assert t.tensor_type == T.Q8_0, name
                theirs = gguf.quants.dequantize(np.asarray(t.data), T.Q8_0).reshape(w.shape)
                ours, d = q8_0_reference(w)
                assert np.array_equal(theirs, ours), name
                assert np.all(np.abs(theirs - w) <= Q8_BOUND_STEPS * d), name
                assert not np.array_equal(theirs, w)  # (quantized indeed)


@pytest.mark.parametrize("arch", list(SHAPES))
def test_metadata_is_what_llama_cpp_reads(tmp_path, arch):
    tok = tokenizer_of("bpe")
    model = model_of(arch, tok)
    cfg = model.config
    export.save(model, tok, tmp_path / "m.gguf", "q8_0")
    meta = fields(gguf.GGUFReader(tmp_path / "m.gguf"))
    assert meta["general.architecture"] == arch
    assert meta["general.file_type"] == 7  # MOSTLY_Q8_0
    assert meta[f"{arch}.context_length"] == cfg.block_size
    assert meta[f"{arch}.embedding_length"] == cfg.n_embd
    assert meta[f"{arch}.block_count"] == cfg.n_layer
    assert meta[f"{arch}.attention.head_count"] == cfg.n_head
    if arch == "gpt2":
        assert meta["gpt2.feed_forward_length"] == 4 * cfg.n_embd
        assert meta["gpt2.attention.layer_norm_epsilon"] == pytest.approx(1e-5)
    else:
        assert meta[f"{arch}.feed_forward_length"] == SHAPES[arch]["intermediate_size"]
        assert meta[f"{arch}.attention.head_count_kv"] == SHAPES[arch]["n_kv_head"]
        assert meta[f"{arch}.attention.key_length"] == meta[f"{arch}.attention.value_length"] == cfg.head_dim
        assert meta[f"{arch}.rope.dimension_count"] == cfg.head_dim
        assert meta[f"{arch}.rope.freq_base"] == np.float32(SHAPES[arch].get("rope_theta", 1e4))
        assert meta[f"{arch}.attention.layer_norm_rms_epsilon"] == np.float32(SHAPES[arch].get("norm_eps", 1e-6))
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "gpt-2"
    tokens = meta["tokenizer.ggml.tokens"]
    assert len(tokens) == cfg.vocab_size
    printable = {c: b for b, c in BYTE_TO_CHAR.items()}  # GPT-2's printable form of a byte -> the byte
    for i in range(tok.vocab_size):
        if i == tok.eot_token:
            assert tokens[i] == "<|endoftext|>" and meta["tokenizer.ggml.token_type"][i] == 3  # CONTROL
        else:
            assert bytes(printable[c] for c in tokens[i]) == tok.decode_bytes([i])
            assert meta["tokenizer.ggml.token_type"][i] == 1  # NORMAL
    merges = meta["tokenizer.ggml.merges"]
    assert len(merges) == tok.vocab_size - 256 - 1  # every token past the bytes but <|endoftext|> is one merge
    for m in merges:
        left, right = m.split(" ")
        assert left + right in tokens
    assert meta["tokenizer.ggml.bos_token_id"] == meta["tokenizer.ggml.eos_token_id"] == tok.eot_token
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert meta["tokenizer.chat_template"] == CHAT


def test_a_tied_head_is_token_embd_and_an_untied_one_its_own(tmp_path):
    tok = tokenizer_of("char")
    for arch, tied in (("llama", True), ("llama", False), ("qwen3", False)):
        model = GPT(GPTConfig(vocab_size=tok.vocab_size, **{**SHAPES[arch], "tie_word_embeddings": tied}), seed=1)
        export.save(model, tok, tmp_path / "m.gguf")
        names = {t.name for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
        assert ("output.weight" in names) == (not tied), (arch, tied)


def test_a_gpt2_without_biases_has_zero_ones_where_llama_cpp_requires_them(tmp_path):
    tok = tokenizer_of("char")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **SHAPES["gpt2"], bias=False), seed=1)
    export.save(model, tok, tmp_path / "m.gguf")
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    for l in range(model.config.n_layer):
        for theirs, width in (("attn_norm", 32), ("attn_qkv", 96), ("attn_output", 32), ("ffn_norm", 32),
                              ("ffn_up", 128), ("ffn_down", 32)):
            assert np.array_equal(tensors[f"blk.{l}.{theirs}.bias"], np.zeros(width)), theirs
    assert np.array_equal(tensors["output_norm.bias"], np.zeros(32))


def test_export_command_writes_and_reads_back(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    code, err = cli(capsys, "train", "--data", str(tmp_path / "t.txt"), "--out-dir", str(tmp_path / "run"),
                    "--arch", "qwen3", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
                    "--max-iters", "1", "--eval-iters", "1", "--batch-size", "2", "--backend", "numpy")
    assert code == 0, err
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--gguf", str(tmp_path / "m.gguf"),
                    "--gguf-type", "q8_0")
    assert code == 0, err
    assert gguf.GGUFReader(tmp_path / "m.gguf").fields["general.architecture"].contents() == "qwen3"
    assert not list(tmp_path.glob("*.tmp-*"))  # (written under a temporary name, then renamed)
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--gguf", str(tmp_path / "m.gguf"))
    error_line(err, "exists", "--force")
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--gguf", str(tmp_path / "run" / "m.gguf"))
    error_line(err, "inside the run directory")


def test_what_gguf_cannot_hold_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT + "café\n")  # é: two bytes in UTF-8, no token of byte-level BPE
    code, err = cli(capsys, "train", "--data", str(tmp_path / "t.txt"), "--out-dir", str(tmp_path / "run"),
                    "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--max-iters", "1",
                    "--eval-iters", "1", "--batch-size", "2", "--backend", "numpy")
    assert code == 0, err
    code, err = cli(capsys, "export", "--out-dir", str(tmp_path / "run"), "--gguf", str(tmp_path / "m.gguf"))
    assert code != 0
    error_line(err, "'é'", "more than one byte", "GGUF")
    assert not (tmp_path / "m.gguf").exists() and not list(tmp_path.glob("*.tmp-*"))
    tok = BPETokenizer.train(TEXT, vocab_size=270, pattern=r"\w+|\s+|[^\w\s]+")
    with pytest.raises(ValueError, match="no llama.cpp pre-tokenizer"):
        export.save(model_of("gpt2", tok), tok, tmp_path / "m.gguf")
    assert not list(tmp_path.glob("*.gguf*"))


def test_llama_3_s_rotary_scaling_is_rope_freqs_dividing_the_frequencies_as_transformers_scales_them(tmp_path):
    tok = tokenizer_of("char")
    model = model_of("llama", tok, rope_scaling=LLAMA3_SCALING)
    export.save(model, tok, tmp_path / "m.gguf")
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    # transformers' _compute_llama3_parameters: long wavelengths divided by factor, the medium ones blended
    s, hs, theta = LLAMA3_SCALING, model.config.head_dim, model.config.rope_theta
    inv_freq = 1.0 / theta ** (np.arange(0, hs, 2) / hs)  # (hs/2,)
    wavelen = 2 * np.pi / inv_freq
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    scaled = np.where(wavelen > low_wavelen, inv_freq / s["factor"], inv_freq)
    smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
        s["high_freq_factor"] - s["low_freq_factor"])
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    scaled = np.where(medium, (1 - smooth) * scaled / s["factor"] + smooth * scaled, scaled)
    assert medium.any() and (wavelen > low_wavelen).any()  # (both kinds present in this model)
    factors = tensors["rope_freqs.weight"]  # llama.cpp divides each frequency by its factor
    np.testing.assert_allclose(inv_freq / factors, scaled, rtol=FLOAT32_RTOL)


# --- llama.cpp itself ---------------------------------------------------------------------------------------------

LLAMA_CPP_RUN = r"""
import sys, json, llama_cpp
path, prompt, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=path, n_ctx=len(prompt) + n, n_threads=1, verbose=False)
out = []
for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
    out.append(token)
    if len(out) == n:
        break
print(json.dumps(out))
"""


@pytest.mark.llamacpp
@pytest.mark.parametrize("arch, options", [("gpt2", {}), ("gpt2", {"bias": False}), ("llama", {}),
                                           ("llama", {"rope_scaling": LLAMA3_SCALING}), ("qwen3", {})])
def test_llama_cpp_decodes_the_same_greedy_tokens(tmp_path, arch, options):
    """As `minigpt sample --greedy` decodes (model.generate without sampling), from the F32 file."""
    require("llama_cpp")
    tok = tokenizer_of("bpe")
    model = model_of(arch, tok, seed=3, **options)
    export.save(model, tok, tmp_path / "m.gguf", "f32")
    prompt = tok.encode("the queen of")
    n = SHAPES[arch]["block_size"] - len(prompt)
    ours = model.generate(np.array([prompt]), n, do_sample=False)[0, len(prompt):].tolist()
    # in a process of its own: llama.cpp's threads and allocator stay out of this one
    run = subprocess.run([sys.executable, "-c", LLAMA_CPP_RUN, str(tmp_path / "m.gguf"), json.dumps(prompt), str(n)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ours


@pytest.mark.parametrize("kind, pre", [("smollm2", "smollm"), ("qwen3", "qwen2"), ("llama3", "llama-bpe")])
def test_a_hugging_face_tokenizer_keeps_its_pre_tokenizer_and_bos(tmp_path, kind, pre):
    require("tokenizers")
    from test_hf_tokenizer import build

    from minigpt.data import HFTokenizer

    tok = HFTokenizer(json.loads(build(kind, vocab_size=300).to_str()))
    export.save(model_of("llama", tok), tok, tmp_path / "m.gguf")
    meta = fields(gguf.GGUFReader(tmp_path / "m.gguf"))
    assert meta["tokenizer.ggml.pre"] == pre
    tokens = meta["tokenizer.ggml.tokens"]
    for text, i in tok.special_tokens.items():
        assert tokens[i] == text and meta["tokenizer.ggml.token_type"][i] == 3  # CONTROL
    starts = tok.encode("x", add_special_tokens=True)[:1] if kind == "llama3" else []
    assert meta["tokenizer.ggml.add_bos_token"] == bool(starts)
    if starts:
        assert meta["tokenizer.ggml.bos_token_id"] == tok.special_tokens["<|begin_of_text|>"] == starts[0]


def test_a_tokenizer_that_adds_a_space_in_front_is_refused(tmp_path):
    require("tokenizers")
    from test_hf_tokenizer import build

    from minigpt.data import HFTokenizer

    tok = HFTokenizer(json.loads(build("gpt2-prefix", vocab_size=300).to_str()))
    with pytest.raises(ValueError, match="adds a space in front"):
        export.save(model_of("gpt2", tok), tok, tmp_path / "m.gguf")


LLAMA_CPP_TOKENIZE = r"""
import sys, json, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
print(json.dumps(llm.tokenize(sys.argv[2].encode("utf-8"), add_bos=False, special=True)))
"""


@pytest.mark.llamacpp
@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_llama_cpp_tokenizes_as_minigpt(tmp_path, kind):
    require("llama_cpp")
    tok = tokenizer_of(kind)
    export.save(model_of("gpt2", tok), tok, tmp_path / "m.gguf")
    text = "the queen,  thou art\n\nnight. good lord<|endoftext|>the king"  # (characters of TEXT)
    if kind == "bpe":  # where GPT-2's pre-tokenizer cuts otherwise than Llama 3's and Qwen 2's
        text += " IT'S 2024123, it's"
    run = subprocess.run([sys.executable, "-c", LLAMA_CPP_TOKENIZE, str(tmp_path / "m.gguf"), text],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    ours = [int(i) for i in tok.encode(text, allowed_special="all")] if kind == "bpe" else tok.encode(text).tolist()
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ours
