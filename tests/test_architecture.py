"""The house rules, read from the source with `ast` (nothing is imported, so no TensorFlow):

(a) no import circle between modules; (b) every import points down the layers below; (c) no folder
holds more than `MAX_MODULES_PER_FOLDER` modules. Imports inside functions count as well: a lazy
import hides a circle from Python, not from a reader.
"""
from __future__ import annotations

import ast
import collections
import dataclasses
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ROOTS = ("core", "datasets", "networks", "methods", "ieg", "tests", "scripts")

# From the bottom up. A module may import its own layer and the layers below it, never one above;
# the layer of a module is the longest prefix of its dotted name listed here. Inside one layer,
# circles are still caught by rule (a).
#   core: what every package needs (UserError, Registry); imports nothing of the project.
#   datasets: text < sources < noise < augment < pipelines < the assembly at the top of datasets/
#     (spec, probe, noisy, noisy_files). Sources know nothing of noise models, augmentation or
#     tf.data; noise models draw on the sources (open-set noise borrows CIFAR-100 images).
#   networks: may read datasets.text (TextCNN's padding id).
#   methods: may use datasets (SLN walks the training data) and networks (PRL builds its peer).
#   ieg: the entrance. ieg.run (the run directory's mechanics) < ieg.reports < the rest of ieg.
#   tests < scripts (a benchmark uses the tests' Pillow reference).
LAYERS = (
    "core",
    "datasets.text",
    "datasets.sources",
    "datasets.noise",
    "datasets.augment",
    "datasets.pipelines",
    "datasets",
    "networks",
    "methods",
    "ieg.run",
    "ieg.reports",
    "ieg",
    "tests",
    "scripts",
)
MAX_MODULES_PER_FOLDER = 12


@dataclasses.dataclass(frozen=True)
class Import:
  source: str   # importing module
  target: str   # imported project module
  line: int

  def __str__(self):
    return f"{self.source} -> {self.target} ({module_path(self.source)}:{self.line})"


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(REPO).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


_PATHS: dict[str, pathlib.Path] = {}


def module_path(name: str) -> str:
  return str(_PATHS[name].relative_to(REPO))


def project_files() -> list[pathlib.Path]:
  files = []
  for root in ROOTS:
    files += sorted(p for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts)
  return files


def _resolve(name: str, modules: set[str]) -> str | None:
  """The project module `name` refers to: itself, or its longest prefix that is a module."""
  parts = name.split(".")
  for end in range(len(parts), 0, -1):
    candidate = ".".join(parts[:end])
    if candidate in modules:
      return candidate
  return None


def _imports(module: str, tree: ast.AST, is_package: bool, modules: set[str]) -> list[Import]:
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:   # relative: from the module's package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
      # `from package import submodule` imports the submodule, not (only) the package's __init__.
      targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    else:
      continue
    for target in targets:
      resolved = _resolve(target, modules)
      if resolved is not None and resolved != module:
        found.append(Import(module, resolved, node.lineno))
  return found


def import_graph() -> tuple[set[str], list[Import]]:
  modules = {}
  for path in project_files():
    name = module_name(path)
    modules[name] = path
    _PATHS[name] = path
  names = set(modules)
  edges = {}
  for name, path in modules.items():
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for e in _imports(name, tree, path.name == "__init__.py", names):
      edges.setdefault((e.source, e.target), e)   # one edge per pair, at its first line
  return names, list(edges.values())


def circles(modules: set[str], edges: list[Import]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan), each sorted."""
  graph = collections.defaultdict(set)
  for e in edges:
    graph[e.source].add(e.target)
  index, low, on_stack, stack, found = {}, {}, set(), [], []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
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
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(modules):
    if v not in index:
      visit(v)
  return sorted(found)


def shortest_circle(component: list[str], edges: list[Import]) -> list[Import]:
  """One shortest circle through the first module of a component, as the imports that close it."""
  inside = collections.defaultdict(list)
  for e in edges:
    if e.source in component and e.target in component:
      inside[e.source].append(e)
  start = component[0]
  reached = {start: []}
  queue = collections.deque([start])
  while queue:
    v = queue.popleft()
    for e in sorted(inside[v], key=lambda e: e.target):
      if e.target == start:
        return reached[v] + [e]
      if e.target not in reached:
        reached[e.target] = reached[v] + [e]
        queue.append(e.target)
  raise AssertionError(f"no circle through {start}")


def layer(module: str) -> int:
  matches = [i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")]
  assert matches, f"{module} is in no layer: add its package to LAYERS"
  return max(matches, key=lambda i: len(LAYERS[i]))


def upward_imports(edges: list[Import]) -> list[Import]:
  return [e for e in edges if layer(e.target) > layer(e.source)]


def crowded_folders(files: list[pathlib.Path]) -> dict[str, list[str]]:
  """Folders with more than MAX_MODULES_PER_FOLDER modules (a package's __init__ and conftest.py
  are not counted: they are the folder's own description and pytest's set-up)."""
  by_folder = collections.defaultdict(list)
  for path in files:
    if path.name not in ("__init__.py", "conftest.py"):
      by_folder[str(path.parent.relative_to(REPO))].append(path.name)
  return {folder: sorted(names) for folder, names in sorted(by_folder.items())
          if len(names) > MAX_MODULES_PER_FOLDER}


@pytest.fixture(scope="module")
def graph():
  return import_graph()


def test_the_walk_sees_the_project(graph):
  modules, edges = graph
  assert {"core.errors", "datasets.sources.registry", "methods.base", "ieg.main"} <= modules
  assert Import("ieg.main", "ieg.experiment", 0) in {dataclasses.replace(e, line=0) for e in edges}
  for module in modules:
    layer(module)   # every module belongs to a layer


def test_no_import_circles(graph):
  modules, edges = graph
  found = circles(modules, edges)
  detail = []
  for component in found:
    circle = shortest_circle(component, edges)
    detail.append(f"{' -> '.join([e.source for e in circle] + [circle[0].source])} "
                  f"(all modules of this circle: {', '.join(component)}):\n    "
                  + "\n    ".join(map(str, circle)))
  assert not found, "import circles (a module must not import, even lazily, what imports it):\n  " + (
      "\n  ".join(detail))


def test_imports_point_down_the_layers(graph):
  _, edges = graph
  upward = upward_imports(edges)
  assert not upward, ("imports that point up the layers (order, bottom first: " + " < ".join(LAYERS)
                      + "):\n  " + "\n  ".join(f"{e}: {LAYERS[layer(e.source)]} imports "
                                               f"{LAYERS[layer(e.target)]}" for e in upward))


def test_core_imports_nothing_of_the_project(graph):
  _, edges = graph
  assert not [str(e) for e in edges if e.source.startswith("core") and not e.target.startswith("core")]


def test_no_folder_holds_more_than_a_dozen_modules():
  crowded = crowded_folders(project_files())
  assert not crowded, "folders with more than {} modules: split them by job:\n  ".format(
      MAX_MODULES_PER_FOLDER) + "\n  ".join(f"{folder}/ ({len(names)}): {', '.join(names)}"
                                            for folder, names in crowded.items())


# ----- the checks themselves, on a made-up graph ---------------------------------------------------
def test_a_circle_is_found_and_named():
  edges = [Import("datasets.noise.registry", "datasets.noise.instance", 1),
           Import("datasets.noise.instance", "datasets.noise.registry", 2),
           Import("datasets.noise.instance", "core.errors", 3)]
  found = circles({"datasets.noise.registry", "datasets.noise.instance", "core.errors"}, edges)
  assert found == [["datasets.noise.instance", "datasets.noise.registry"]]
  assert shortest_circle(found[0], edges) == edges[1::-1]


def test_an_upward_import_is_found():
  edges = [Import("datasets.sources.trec", "ieg.config", 1), Import("ieg.experiment", "datasets.spec", 2),
           Import("datasets.sources.trec", "datasets.noise", 3), Import("ieg.run.lock", "ieg.run.files", 4)]
  assert upward_imports(edges) == edges[:1] + edges[2:3]
