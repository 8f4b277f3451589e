"""The README's Layout section, checked against the code.

Each layer's row says what it knows nothing of; these tests read every import in the
package (also those inside functions: a lazy import is still a dependency) and fail on one
that breaks a row, naming the file and line.  A second test keeps the table complete: every
package and module under `cmr_ray/` is named in the section.
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "cmr_ray"

# unit (a subpackage or a top-level module of cmr_ray) -> imports it must not make.
# Names are top-level packages ("ray") or cmr_ray units ("cmr_ray.tune").
LAYERS = {
    "dicom": {"ray", "torch", "mlflow", "transformers", "cmr_ray.*"},
    "text": {"ray", "torch", "mlflow", "transformers", "cmr_ray.*"},
    "synth": {"ray", "torch", "mlflow", "transformers"},
    "data": {"torch", "mlflow", "cmr_ray.model", "cmr_ray.train", "cmr_ray.eval",
             "cmr_ray.tune", "cmr_ray.tracking"},
    "model": {"ray", "mlflow", "pydicom", "cmr_ray.dicom", "cmr_ray.data", "cmr_ray.train",
              "cmr_ray.eval", "cmr_ray.tune", "cmr_ray.tracking"},
    "train": {"mlflow", "cmr_ray.tune", "cmr_ray.tracking"},
    "eval": {"mlflow", "cmr_ray.tune", "cmr_ray.tracking"},
    "config": {"ray", "torch", "mlflow", "cmr_ray.tune", "cmr_ray.tracking"},
    "viz": {"ray", "torch", "mlflow"},
    # the small modules any layer may use import no layer
    "views": {"ray", "torch", "mlflow", "cmr_ray.*"},
    "runtime": {"torch", "mlflow", "cmr_ray.*"},
    "console": {"ray", "torch", "mlflow", "cmr_ray.*"},
    "paper": {"ray", "torch", "mlflow", "cmr_ray.*"},
}
# What the "cmr_ray.*" wildcard leaves allowed: the shared modules themselves.
SHARED = {"views", "runtime", "console", "paper"}


def unit_of(path, pkg):
    rel = path.relative_to(pkg)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path):
    """(line, dotted name) of every absolute import in `path`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def breaks(unit, name, forbidden):
    parts = name.split(".")
    if parts[0] != "cmr_ray":
        return parts[0] in forbidden
    if len(parts) < 2 or parts[1] == unit:
        return False
    target = f"cmr_ray.{parts[1]}"
    if target in forbidden:
        return True
    return "cmr_ray.*" in forbidden and parts[1] not in SHARED


def layer_violations(files, pkg=PKG):
    found = []
    for path in files:
        unit = unit_of(path, pkg)
        forbidden = LAYERS.get(unit, set())
        for line, name in imports(path):
            if breaks(unit, name, forbidden):
                found.append(f"{path.relative_to(pkg.parent)}:{line}: {unit} imports {name}")
    return found


def test_no_layer_imports_what_its_row_says_it_knows_nothing_of():
    assert layer_violations(sorted(PKG.rglob("*.py"))) == []


def test_the_check_sees_a_lazy_import(tmp_path):
    fake = tmp_path / "cmr_ray" / "model"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    import ray\n    from cmr_ray.tune import x\n")
    found = layer_violations([fake / "bad.py"], pkg=tmp_path / "cmr_ray")
    assert found == ["cmr_ray/model/bad.py:2: model imports ray",
                     "cmr_ray/model/bad.py:3: model imports cmr_ray.tune"]


def layout_section():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Layout\n(.*?)^## ", text, re.M | re.S)
    assert m, "README has no '## Layout' section"
    return m.group(1)


def test_layout_names_every_package_and_module():
    named = set(re.findall(r"`cmr_ray/([A-Za-z_]+)", layout_section()))
    units = {p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__")}
    units |= {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}
    units |= {p.stem for p in PKG.glob("*.yaml")}
    assert sorted(units - named) == []
    assert set(LAYERS) <= units, "a layer rule for a unit that no longer exists"
