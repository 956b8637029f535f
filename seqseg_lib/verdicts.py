"""Verdicts that know about noise: ``reproduced``, ``not reproduced`` or ``inconclusive``.

A claim is judged on a number per seed (a gap, an accuracy) against a threshold:

- with several seeds, the verdict is decided only when every seed is on the same side of the
  threshold; otherwise it is ``inconclusive (the seeds disagree)``;
- with one seed, when its margin to the threshold is smaller than ``spread``, the seed-to-seed
  spread measured for that kind of run, it is ``inconclusive (one seed)``; without a measured
  spread, it is decided and says ``(one seed)``.

``reports/README.md`` states this rule once, with the spreads it used.
"""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

# How a verdict line begins that is our check, not a claim of the report (``summary`` lists
# such lines apart).
OUR_CHECK = "Our check, not a claim of the report: "
# How a verdict line begins that measures what the report does not claim (a model it does not
# name, one it names but never ran), beside its claims (``summary`` lists such lines apart).
BEYOND_THE_REPORT = "Beyond the report: "


def verdict(
    values: Sequence[Any],
    holds: Callable[[Any], bool],
    margin: Callable[[Any], float],
    spread: float | None = None,
) -> str:
    """The verdict on a claim that ``holds(value)`` for each seed's ``value`` (a number, or
    what ``holds`` and ``margin`` take); ``margin(value)`` is the value's distance to the
    threshold that decides it (points)."""
    if not values:
        raise ValueError("a verdict needs at least one value")
    decided = {holds(value) for value in values}
    if len(decided) > 1:
        return "inconclusive (the seeds disagree)"
    word = "reproduced" if decided.pop() else "not reproduced"
    if len(values) > 1:
        return word
    if spread is not None and margin(values[0]) < spread:
        return "inconclusive (one seed)"
    return f"{word} (one seed)"


def one_seed(holds: bool) -> str:
    """The verdict on a claim judged on one seed's run, without a seed spread measured for
    that kind of run: ``reproduced (one seed)`` or ``not reproduced (one seed)``."""
    return verdict([float(holds)], holds=bool, margin=lambda _: float("inf"))


def seed_spread(values: Sequence[float]) -> float | None:
    """The largest minus the smallest of several seeds' values; None for fewer than two."""
    return max(values) - min(values) if len(values) > 1 else None


def seed_rows(
    runs: Mapping[str, Path] | Mapping[str, Mapping[int, Path]],
    row_of: Callable[[Path], dict[str, Any]],
    shared: Mapping[str, dict[str, Any]] | None = None,
    decimals: int = 2,
) -> dict[str, dict[str, Any]]:
    """The rows of a table of runs, one seed or several.

    ``runs``: ``{label: run directory}`` (a row per variant, ``row_of(run directory)``), or
    ``{label: {seed: run directory}}`` (a row per variant and seed, ``"label, seed 1"``, then
    the variant's mean rounded to ``decimals``, ``"label, mean"``; the columns ``variant`` and
    ``seed`` say which row is which, and claims read them, with ``seed_values``, rather than
    the labels). ``shared[label]``: columns the same for every row of that variant, such as
    the report's numbers."""
    rows = {}
    for label, seeds in runs.items():
        same = dict((shared or {}).get(label, {}))
        if not isinstance(seeds, Mapping):
            rows[label] = row_of(seeds) | same
            continue
        measured = {seed: row_of(run_dir) for seed, run_dir in seeds.items()}
        for seed, row in measured.items():
            rows[f"{label}, seed {seed}"] = row | same | {"variant": label, "seed": seed}
        mean = pd.DataFrame(measured.values()).mean().round(decimals).to_dict()
        rows[f"{label}, mean"] = mean | same | {"variant": label, "seed": "mean"}
    return rows


def seed_values(table: pd.DataFrame, column: str) -> dict[str, dict[Any, float]]:
    """``{variant: {seed: value}}`` of ``column`` in a table of ``seed_rows``: by its
    ``variant`` and ``seed`` columns when it has several seeds (means and rows of no variant,
    such as a baseline, left out), else ``{label: {None: value}}``, a row per variant."""
    if "variant" not in table.columns:
        return {label: {None: float(value)} for label, value in table[column].items()}
    values: dict[str, dict[Any, float]] = {}
    for _, row in table.iterrows():
        if isinstance(row["variant"], str) and str(row["seed"]) != "mean":
            values.setdefault(row["variant"], {})[row["seed"]] = float(row[column])
    return values


# A measured cost (time, FLOPs, memory) is "lower" or "grows faster" than another's only by
# more than this fraction: ours, so that a few percent of timing noise decide nothing.
COST_MARGIN = 0.1


def lower_cost(cost: float, reference: float) -> bool:
    """Whether a measured ``cost`` is below ``reference`` by more than ``COST_MARGIN``: the
    reference more than ``1 + COST_MARGIN`` times it."""
    return cost * (1 + COST_MARGIN) < reference


def percent(value: float) -> float:
    return round(100 * value, 2)


def verdict_word(holds: bool) -> str:
    return "reproduced" if holds else "not reproduced"


# "Seq2Seg obtains only 3 percent less in accuracy than U-Net" (Sec. 2.3): U-Net ahead by
# more than 0 and at most this many points of validation accuracy reproduces it.
TABLE1_GAP_TOLERANCE = 5.0


def within_gap_tolerance() -> dict:
    """Table 1's rule as ``verdict``'s ``holds`` and ``margin``: U-Net ahead by more than 0 and
    at most ``TABLE1_GAP_TOLERANCE`` points."""
    return {
        "holds": lambda gap: 0 < gap <= TABLE1_GAP_TOLERANCE,
        "margin": lambda gap: min(abs(gap), abs(gap - TABLE1_GAP_TOLERANCE)),
    }


# "Fails to train" (Sec. 2.2, no skip at 1e-4): validation accuracy at most FAILS_MARGIN
# points above the majority class, or more than FAILS_BEHIND points behind a run that trains.
FAILS_MARGIN = 1.0


FAILS_BEHIND = 5.0


def fails_to_train(accuracy: float, majority: float, trained: float) -> bool:
    """Whether a run with this validation accuracy (%) "fails to train", against the
    majority class's and that of a run that trains (``trained``), both in %."""
    return accuracy <= majority + FAILS_MARGIN or accuracy < trained - FAILS_BEHIND


def fails_verdict(
    runs: Sequence[tuple[float, float]], majority: float, spread: float | None = None
) -> str:
    """The verdict, under the noise rule, on "fails to train" for each seed's ``(accuracy,
    trained)``: a run's validation accuracy and that of a run that trains (%), against the
    majority class's; a seed's margin is its distance to the nearer edge of the rule."""
    return verdict(
        runs,
        holds=lambda run: fails_to_train(run[0], majority, run[1]),
        margin=lambda run: abs(run[0] - max(majority + FAILS_MARGIN, run[1] - FAILS_BEHIND)),
        spread=spread,
    )


def skip_roles(table: pd.DataFrame) -> list[str]:
    """The labels of the skip connection's three variants in a table of them (notebook 02's
    ``claims.semantic.skip_table``, notebook 07's ``skip_study``), in the order the claims take
    them: with skip, without skip at its own rate, without skip at the rate of the run with
    skip. Found by the ``model`` and ``lr`` columns."""
    missing = {"model", "lr"} - set(table.columns)
    if missing:
        raise ValueError(f"a table of the skip variants needs the columns {sorted(missing)}")
    labels = list(seed_values(table, "val accuracy (%)"))
    first_row = {}
    for name, row in table.iterrows():
        variant = row.get("variant")
        first_row.setdefault(variant if isinstance(variant, str) else name, row)
    [skip] = [label for label in labels if first_row[label]["model"] == "seq2seg"]
    no_skip = [label for label in labels if first_row[label]["model"] == "seq2seg-noskip"]
    [fast] = [
        label for label in no_skip if float(first_row[label]["lr"]) == float(first_row[skip]["lr"])
    ]
    [own] = [label for label in no_skip if label != fast]
    return [skip, own, fast]
