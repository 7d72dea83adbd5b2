"""The layout is the architecture: read from the source with `ast`, every import of minigpt/ (at the top of a module or
inside a function) goes to a module of the same layer or one below, and no chain of imports comes back to where it
started; the file formats stand above the model, which imports none of them (STYLE.md, rule 16). The layers, bottom to
top, as README.md's layout table lists them."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import require

from minigpt import backends, config
from minigpt.applications import tasks as applications
from minigpt.data import record_tasks, tasks

ROOT = Path(__file__).resolve().parent.parent

MODEL = ["minigpt.block", "minigpt.lora", "minigpt.gpt2", "minigpt.llama", "minigpt.model"]  # (LoRA's adapters, no files)
# the file formats, each the reader and writer of one kind of file: safetensors, Hugging Face directories (and the
# Hub's cache of them), llm.c's model file, GGUF, PEFT's adapters, a run's checkpoints and its log
FORMATS = ["minigpt.weights", "minigpt.hf", "minigpt.hub", "minigpt.llmc", "minigpt.gguf", "minigpt.peft",
           "minigpt.checkpoint", "minigpt.runlog"]
LAYERS = [  # bottom to top: a module may import from its own layer and those below it, never from one above
    ["minigpt.config", "minigpt.validate", "minigpt.files", "minigpt.runtime", "minigpt.interrupt", "minigpt.distributed"],
    ["minigpt.ops", "minigpt.optim", "minigpt.muon", "minigpt.generate", "minigpt.beam", "minigpt.gradcheck", "minigpt.metrics"],
    ["minigpt.backends", "minigpt.data", "minigpt.corpus"],
    MODEL,
    FORMATS,
    ["minigpt.outputs", "minigpt.load", "minigpt.evaluation", "minigpt.chat", "minigpt.applications",
     "minigpt.objectives"],
    ["minigpt.settings", "minigpt.run", "minigpt.train", "minigpt.inspect", "minigpt.plot"],
    ["minigpt.commands", "minigpt.cli", "minigpt"],
]


def modules(package: Path, name: str) -> dict:
    """Every module of the package at `package` (named `name`): dotted name -> file."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([name, *parts])] = path
    return found


def imports(path: Path, known: set, package: str) -> set:
    """The modules of `known` that the file imports, anywhere in it: `import a.b`, `from a import b` (b a module or a
    name in a), `from .b import c`. Importing a.b.c also runs a and a.b, but those are not counted as its imports:
    a package's __init__ is a module like any other, with imports of its own."""
    tree = ast.parse(path.read_text(), str(path))
    here = path.stem != "__init__"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's own package
                parts = module_of(path, package, known).split(".")
                parts = parts[:len(parts) - node.level + (0 if here else 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known}


def module_of(path: Path, package: str, known) -> str:
    return next(name for name in known if known[name] == path)


def graph(package: Path, name: str) -> dict:
    known = modules(package, name)
    return {module: imports(path, known, name) for module, path in known.items()}


def layer(module: str, layers) -> int:
    """The layer of a module: that of the longest entry of `layers` that is it or a package holding it."""
    matches = [(len(entry), i) for i, entries in enumerate(layers) for entry in entries
               if module == entry or module.startswith(entry + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS (and README.md's layout)"
    return max(matches)[1]


def upward(edges: dict, layers) -> list:
    return sorted((a, b) for a, targets in edges.items() for b in targets if layer(b, layers) > layer(a, layers))


def formats_below(edges: dict, layers) -> list:
    """(importer, format) for each import of a file format by the model or a module below it."""
    model = layer("minigpt.model", layers)
    return sorted((a, b) for a, targets in edges.items() for b in targets if b in FORMATS and layer(a, layers) <= model)


def circles(edges: dict) -> list:
    """The strongly connected components of more than one module (Tarjan's algorithm), each a sorted list."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def edges():
    return graph(ROOT / "minigpt", "minigpt")


def test_minigpt_has_no_import_circle(edges):
    assert circles(edges) == []


def test_no_module_of_minigpt_imports_one_above_it(edges):
    assert upward(edges, LAYERS) == []
    assert len(edges) > 40 and sum(len(targets) for targets in edges.values()) > 100  # the whole package was read


def test_the_checks_find_a_circle_and_an_upward_import(tmp_path):
    # their negative controls, on a package made here: low imports high (upward), and a and b import each other
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from pkg import high  # inside a function counts too\n")
    (package / "high.py").write_text("import pkg.low\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("from . import a\n")
    made = graph(package, "pkg")
    assert made["pkg.low"] == {"pkg.high"} and made["pkg.sub.b"] == {"pkg.sub.a"}
    assert circles(made) == [["pkg.high", "pkg.low"], ["pkg.sub.a", "pkg.sub.b"]]
    assert upward(made, [["pkg.low", "pkg.sub"], ["pkg.high", "pkg"]]) == [("pkg.low", "pkg.high")]


def test_the_file_formats_stand_above_the_model_which_imports_none_of_them(edges):
    assert all(layer(module, LAYERS) == layer("minigpt.model", LAYERS) for module in MODEL)
    assert all(layer(module, LAYERS) > layer("minigpt.model", LAYERS) for module in FORMATS)
    assert formats_below(edges, LAYERS) == []


def test_the_format_check_finds_a_model_that_reads_a_file(tmp_path):
    # its negative control: minigpt as it was when PEFT's reader and writer lived in minigpt/lora.py, on the model's
    # layer, which imported the safetensors reader and writer for them
    package = tmp_path / "minigpt"
    shutil.copytree(ROOT / "minigpt", package, ignore=shutil.ignore_patterns("__pycache__"))
    lora = package / "lora.py"
    lora.write_text(lora.read_text() + "\nfrom minigpt import weights as safetensors  # PEFT's adapter_model.safetensors\n")
    made = graph(package, "minigpt")
    assert formats_below(made, LAYERS) == [("minigpt.lora", "minigpt.weights")]
    assert ("minigpt.lora", "minigpt.weights") in upward(made, LAYERS)


def test_the_names_the_config_lists_are_the_ones_that_exist():
    # the config sits at the bottom and imports neither the registry nor the tasks: it lists their names, and
    # those must be exactly what the registry and the tasks provide
    assert config.TASK_NAMES == tuple(tasks.TASKS) + tuple(record_tasks.RECORD_TASKS) + tuple(applications.TASKS)
    assert config.APPLICATIONS == tuple(applications.TASKS)
    assert tuple(name for name in config.BACKENDS if name != "auto") == backends.NAMES
    assert all((ROOT / "minigpt" / "backends" / name / "__init__.py").is_file() for name in backends.NAMES if name != "numpy")


# Which top-level names, imported by a program started in the current directory, Python finds in that directory.
FOUND_HERE = """
import importlib.util, sys
from pathlib import Path
here = Path.cwd().resolve()
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    # the directory's own folder or module of that name (not a package installed in a virtual environment there)
    if spec is not None and spec.origin is not None and Path(spec.origin).resolve() in (here / name / "__init__.py",
                                                                                         here / f"{name}.py"):
        print(name, spec.origin)
"""


def found_here(directory: Path) -> str:
    """The names of `directory`'s folders and modules that Python imports from it, a line each with the file."""
    names = {p.name if p.is_dir() else p.stem for p in directory.iterdir() if p.is_dir() or p.suffix == ".py"}
    result = subprocess.run([sys.executable, "-c", FOUND_HERE, *sorted(filter(str.isidentifier, names))],
                            cwd=directory, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_folder_of_the_repository_root_but_minigpt_imports_from_there():
    # Python puts the directory a program starts in first on sys.path, so a folder there with an __init__.py is
    # imported in place of any installed package of its name: transformers imports PyPI's `kernels`, and the C
    # sources' kernels/ must not answer. (A folder without one is at most a namespace portion, which every
    # installed package of the name wins over, and which has no origin.)
    assert (ROOT / "kernels" / "minigpt.c").is_file()
    assert found_here(ROOT).splitlines() == [f"minigpt {ROOT / 'minigpt' / '__init__.py'}"]


def test_the_root_check_sees_a_folder_that_is_a_package(tmp_path):
    # its negative control: a folder with an __init__.py, as kernels/ once was
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("")
    (tmp_path / "sources").mkdir()
    assert found_here(tmp_path) == f"kernels {tmp_path.resolve() / 'kernels' / '__init__.py'}\n"


@pytest.mark.slow  # 4 s of importing torch and transformers; the two tests above check the cause in 0.1 s
def test_transformers_models_import_in_the_repository_root():
    require("transformers")
    result = subprocess.run([sys.executable, "-c", "from transformers import GPT2LMHeadModel, LlamaForCausalLM"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
