"""Models named by their id on the Hugging Face Hub (`gpt2`, `HuggingFaceTB/SmolLM2-135M`), as transformers'
from_pretrained and nanoGPT's init_from='gpt2' take them. huggingface_hub's snapshot_download fetches the files
minigpt reads into its cache, once: later runs read the cache. It honours HF_HOME (where the cache is),
HF_HUB_OFFLINE (never ask the network: read the cache or fail) and HF_TOKEN (gated and private models).

    snapshot("HuggingFaceTB/SmolLM2-135M")   # $HF_HOME/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/<sha>

A name is a path first: minigpt/load.py (locate) asks here only for a name that is no directory, so a directory
called `gpt2` in the working directory is read as a directory, as transformers does. huggingface_hub is imported
when a model is asked for, not with minigpt, which it would slow down.

Tests: tests/test_hub.py.
"""

from pathlib import Path

# What minigpt reads of a Hugging Face directory (minigpt/hf.py; minigpt/data load_tokenizer), and nothing
# else: a model's repository often holds the same weights again as PyTorch pickles (which minigpt never reads), ONNX,
# GGUF or the original release's consolidated files. Shards are named as transformers' save_pretrained names them.
FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors",
         "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt")
EXAMPLES = "gpt2, HuggingFaceTB/SmolLM2-135M"


def is_id(name: str) -> bool:
    """Whether `name` is written as a Hub model id, `name` or `owner/name`, as huggingface_hub validates one (letters,
    digits, '-', '_' and '.'; not starting or ending with '-' or '.'). A path written as a path (`./out`, `/data/run`,
    `~/run`, `runs/a/b`) is none."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def snapshot(repo_id: str) -> Path:
    """The directory of the model `repo_id` in huggingface_hub's cache, holding those of FILES the model has,
    downloaded first unless they are cached. FileNotFoundError or OSError, in one line saying what to do, when it
    cannot be had: offline and not cached, no such model, a gated one, the Hub out of reach."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    cache = constants.HF_HUB_CACHE
    neither = f"{repo_id} is no directory, and"
    instead = "give a run directory, a checkpoint, a Hugging Face directory or an llm.c model file instead"
    try:
        directory = Path(snapshot_download(repo_id, allow_patterns=list(FILES)))
    except LocalEntryNotFoundError:  # not in the cache (or only in part), and the Hub not asked or out of reach
        if constants.HF_HUB_OFFLINE:
            raise FileNotFoundError(f"{neither} the Hugging Face cache ({cache}) holds no complete copy of the model "
                                    f"{repo_id}, which HF_HUB_OFFLINE forbids downloading: run once without "
                                    f"HF_HUB_OFFLINE to download it, or {instead}") from None
        raise FileNotFoundError(f"{neither} the Hugging Face Hub cannot be reached to download the model {repo_id} "
                                f"(the cache, {cache}, holds no complete copy): check the connection, or "
                                f"{instead}") from None
    except GatedRepoError:  # (a RepositoryNotFoundError: caught first)
        raise OSError(f"{repo_id} is a gated model on the Hugging Face Hub: accept its terms on "
                      f"{constants.ENDPOINT}/{repo_id}, then log in (hf auth login) or set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{neither} the Hugging Face Hub has no model {repo_id} (a private one needs "
                                f"hf auth login or HF_TOKEN); {instead}, or a Hub id such as {EXAMPLES}") from None
    except HfHubHTTPError as e:
        raise OSError(f"the Hugging Face Hub refused the model {repo_id}: {first_line(e)}") from None
    except OSError as e:  # a proxy that refuses, a full disk, a cache that cannot be written
        raise OSError(f"downloading the model {repo_id} into the Hugging Face cache ({cache}) failed: "
                      f"{first_line(e)}") from None
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{repo_id} on the Hugging Face Hub has no config.json: it is not a model minigpt "
                                f"reads (GPT-2, Llama or Qwen 3, in safetensors)")
    if not any((directory / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        raise FileNotFoundError(f"{repo_id} on the Hugging Face Hub has no model.safetensors (nor its shards' index); "
                                f"minigpt reads weights in safetensors only, never PyTorch's pickles")
    return directory


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
