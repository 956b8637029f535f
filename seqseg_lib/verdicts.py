"""Verdicts that know about noise: ``reproduced``, ``not reproduced`` or ``inconclusive``.

A claim is judged on a number per seed (a gap, an accuracy) against a threshold:

- with several seeds, the verdict is decided only when every seed is on the same side of the
  threshold; otherwise it is ``inconclusive (the seeds disagree)``;
- with one seed, when its margin to the threshold is smaller than ``spread``, the seed-to-seed
  spread measured for that kind of run, it is ``inconclusive (one seed)``; without a measured
  spread, it is decided and says ``(one seed)``.

``reports/README.md`` states this rule once, with the spreads it used.
"""

from collections.abc import Callable, Sequence

# How a verdict line begins that is our check, not a claim of the report (``summary`` lists
# such lines apart).
OUR_CHECK = "Our check, not a claim of the report: "


def verdict(
    values: Sequence[float],
    holds: Callable[[float], bool],
    margin: Callable[[float], float],
    spread: float | None = None,
) -> str:
    """The verdict on a claim that ``holds(value)`` for each seed's ``value``; ``margin(value)``
    is the value's distance to the threshold that decides it (points)."""
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
