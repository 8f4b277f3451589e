"""Static checks over cmr_ray/ (issue 8, security): every `torch.load` passes
`weights_only=True`; YAML is read with `yaml.safe_load` only; no shell strings
(`shell=True`, `os.system`, `os.popen`, `subprocess.getoutput`).  The checker itself is
tested on small bad snippets, so a rule that stops matching fails here too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "cmr_ray"
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("commands", "getoutput")}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def problems(source: str, name: str = "<src>") -> list[str]:
    """Every unsafe call in `source`, as 'name:line: what'."""
    tree = ast.parse(source)
    aliases = {}  # local name -> 'module.attr' for `from torch import load as tl` and `import yaml as y`
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        d = _dotted(node.func)
        head, _, rest = d.partition(".")
        full = aliases.get(head, head) + (f".{rest}" if rest else "")
        where = f"{name}:{node.lineno}"
        kw = {k.arg: k.value for k in node.keywords}
        if full == "torch.load":
            v = kw.get("weights_only")
            if not (isinstance(v, ast.Constant) and v.value is True):
                out.append(f"{where}: torch.load without weights_only=True")
        mod, _, fn = full.rpartition(".")
        if mod == "yaml" and fn in UNSAFE_YAML:
            out.append(f"{where}: yaml.{fn} (use yaml.safe_load)")
        if (mod, fn) in SHELL_CALLS:
            out.append(f"{where}: {mod}.{fn} runs a shell string")
        v = kw.get("shell")
        if v is not None and not (isinstance(v, ast.Constant) and v.value is False):
            out.append(f"{where}: {full or 'call'}(shell=...) runs a shell string")
    return out


def sources():
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 20, f"found only {len(files)} files under {PKG}"
    return files


def test_package_has_no_unsafe_loads_or_shell_strings():
    found = []
    for f in sources():
        found += problems(f.read_text(), str(f.relative_to(PKG.parent)))
    assert not found, "\n".join(found)


def test_checkpoints_are_loaded_somewhere_and_safely():
    """The rule must not pass because nothing matched: the package does load checkpoints."""
    calls = [f for f in sources() if "torch.load(" in f.read_text()]
    assert calls, "no torch.load in cmr_ray/ (did checkpoint loading move?)"
    assert all(not problems(f.read_text()) for f in calls)


@pytest.mark.parametrize("snippet,what", [
    ("import torch\ntorch.load(p)\n", "weights_only"),
    ("import torch\ntorch.load(p, weights_only=False)\n", "weights_only"),
    ("from torch import load\nload(p, map_location='cpu')\n", "weights_only"),
    ("import yaml\nyaml.load(t, Loader=yaml.Loader)\n", "yaml.load"),
    ("import yaml as y\ny.unsafe_load(t)\n", "yaml.unsafe_load"),
    ("from yaml import full_load\nfull_load(t)\n", "yaml.full_load"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)\n", "shell"),
    ("import subprocess as sp\nsp.Popen(cmd, shell=flag)\n", "shell"),
    ("import os\nos.system('ls ' + d)\n", "os.system"),
    ("import os\nos.popen(c)\n", "os.popen"),
])
def test_the_checker_catches(snippet, what):
    found = problems(snippet)
    assert found and what in found[0], found


@pytest.mark.parametrize("snippet", [
    "import torch\ntorch.load(p, map_location='cpu', weights_only=True)\n",
    "import yaml\nyaml.safe_load(t)\n",
    "import subprocess\nsubprocess.run(['mlflow', 'server'], shell=False)\n",
])
def test_the_checker_accepts(snippet):
    assert problems(snippet) == []
