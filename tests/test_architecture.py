"""The import graph of ``seqseg_lib``: layered, without a circle. Every import counts, those
inside functions too."""

import ast

from conftest import REPO

PACKAGE = REPO / "seqseg_lib"

# From the bottom up: a module imports only modules of its own layer or of layers below it.
LAYERS = [
    [
        "seqseg_lib",
        "seqseg_lib.config",
        "seqseg_lib.devices",
        "seqseg_lib.distributed",
        "seqseg_lib.measured",
        "seqseg_lib.paper",
        "seqseg_lib.measured",
    ],
    [
        "seqseg_lib.packing",
        "seqseg_lib.syncs",
        "seqseg_lib.graphs",
        "seqseg_lib.memory",
        "seqseg_lib.verdicts",
        "seqseg_lib.runlock",
        "seqseg_lib.tensors",
        "seqseg_lib.progress",
        "seqseg_lib.runs",
    ],
    [
        "seqseg_lib.data.labels",
        "seqseg_lib.data.io",
        "seqseg_lib.data.transforms",
        "seqseg_lib.data.packed",
    ],
    [
        "seqseg_lib.data.cache",
        "seqseg_lib.data.synthetic_scenes",
        "seqseg_lib.data.synthetic",
        "seqseg_lib.data.cityscapes",
        "seqseg_lib.data.camvid",
        "seqseg_lib.data.scattered_mnist",
        "seqseg_lib.data.targets",
        "seqseg_lib.data",
    ],
    ["seqseg_lib.models.performer", "seqseg_lib.models.blocks"],
    ["seqseg_lib.models.encoders"],
    [
        "seqseg_lib.models.unet",
        "seqseg_lib.models.seq2seg",
        "seqseg_lib.models.hungarian_unet",
        "seqseg_lib.models.seq2seg_instance",
        "seqseg_lib.models.eomt",
    ],
    ["seqseg_lib.models", "seqseg_lib.matcher", "seqseg_lib.queries"],
    ["seqseg_lib.losses", "seqseg_lib.metrics"],
    ["seqseg_lib.instance_metrics", "seqseg_lib.panoptic", "seqseg_lib.plotting"],
    ["seqseg_lib.experiments.base", "seqseg_lib.loading", "seqseg_lib.widgets"],
    ["seqseg_lib.evaluation", "seqseg_lib.tensorboard"],
    [
        "seqseg_lib.experiments.semantic",
        "seqseg_lib.experiments.instance",
        "seqseg_lib.experiments.panoptic",
    ],
    ["seqseg_lib.experiments"],
    # the engine and the claims side by side: the claims declare runs and judge tables, and
    # never train or time anything
    [
        "seqseg_lib.engine",
        "seqseg_lib.speed",
        "seqseg_lib.claims.semantic",
        "seqseg_lib.claims.semantic_scale",
        "seqseg_lib.claims.scaling",
        "seqseg_lib.claims.instance",
        "seqseg_lib.claims.panoptic",
        "seqseg_lib.claims.efficient",
    ],
    # what trains, times and lists what the claims declare, and the registry of tables
    [
        "seqseg_lib.variants",
        "seqseg_lib.costs",
        "seqseg_lib.launch",
        "seqseg_lib.plan",
        "seqseg_lib.claims",
    ],
    ["seqseg_lib.__main__", "seqseg_lib.execute"],
]
LAYER = {module: rank for rank, modules in enumerate(LAYERS) for module in modules}


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from a import b`` counts ``a.b`` when
    that is a module, else ``a``)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in paths else node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[name] = {m for m in imported if m in paths and m != name}
    return graph


def test_every_module_has_a_layer():
    assert set(import_graph()) == set(LAYER), "place new modules in LAYERS"


def test_no_module_imports_one_above_it():
    upward = [
        f"{module} (layer {LAYER[module]}) imports {target} (layer {LAYER[target]})"
        for module, targets in import_graph().items()
        for target in targets
        if LAYER[target] > LAYER[module]
    ]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_circle():
    graph, state, circles = import_graph(), {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_no_module_reaches_for_another_module_s_private_names():
    """``from seqseg_lib.x import _name`` and ``x._name`` on an imported module of the package:
    what another module uses is public. (Tests, notebooks and benchmarks included.)"""
    modules = set(import_graph())
    short = {name.rsplit(".", 1)[-1] for name in modules}
    found = []
    for folder in (PACKAGE, REPO / "tests", REPO / "benchmarks"):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seqseg"):
                    found += [
                        f"{path.name}: from {node.module} import {alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_") and not alias.name.startswith("__")
                    ]
                elif (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in short
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                ):
                    found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, "\n".join(found)


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path of imports (the graph has no circle)."""
    memo: dict[str, list[str]] = {}

    def chain(module: str) -> list[str]:
        if module not in memo:
            below = [chain(target) for target in graph[module]]
            memo[module] = [module, *max(below, key=len, default=[])]
        return memo[module]

    return max((chain(module) for module in graph), key=len)


def test_the_longest_import_chain():
    """How many floors the package stands on (``cli`` at the top): at most this many modules
    in one chain of imports, so that a reader reaches the bottom in a few steps."""
    chain = longest_chain(import_graph())
    assert len(chain) <= 9, " -> ".join(chain)


def test_the_report_s_numbers_are_typed_in_paper_py_only():
    """Table 1's accuracies, parameter counts, Sec. 2.2's encoder and data sizes, Sec. 3.3's
    steps: as numbers in code, only ``seqseg_lib/paper.py`` holds them (the others import
    them; prose in docstrings and comments may quote them)."""
    import io
    import tokenize

    report = {"80.2", "80.20", "82.75", "89.65", "90.76", "85.32", "78.85", "50.8e6", "7.8e6"}
    report |= {"11256", "11_256", "2975", "2_975", "3072", "768", "123"}
    found = [
        f"{path.relative_to(REPO)}:{token.start[0]}: {token.string}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "paper.py"
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        if token.type == tokenize.NUMBER and token.string in report
    ]
    assert not found, "\n".join(found)
