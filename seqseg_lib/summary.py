"""``reports/README.md``: every table of ``reports/tables/`` with its provenance, the figures
discussed with it, and the verdict on each claim, computed from the tables themselves."""

import json
from pathlib import Path

import pandas as pd

from seqseg_lib.claims import TABLES
from seqseg_lib.plotting import to_markdown
from seqseg_lib.verdicts import OUR_CHECK

_DATASET_ORDER = {"camvid": 0, "cityscapes": 1, "synthetic": 2, "mnist": 3}


# In a verdict's place under the ``smoke`` profile.
SMOKE_NOTE = (
    "Smoke run (a few steps on a few images): it checks that the code runs; its numbers are "
    "not results, and no claim is judged on them."
)


def measured_spreads(tables: list[tuple[str, dict, pd.DataFrame]]) -> dict[str, tuple[float, str]]:
    """``{kind: (spread, where)}``: the largest seed spread each kind of table measures over
    several seeds, and the dataset, profile and seeds it was measured on."""
    spreads = {}
    for kind, meta, table in tables:
        measure = TABLES[kind].spread
        spread = measure(table) if measure is not None else None
        if spread is not None and spread >= spreads.get(kind, (0.0, ""))[0]:
            where = f"{meta['dataset']}, {meta['profile']} profile, seeds {meta['seed']}"
            spreads[kind] = (spread, where)
    return spreads


def _load_tables(reports_dir: Path) -> list[tuple[str, dict, pd.DataFrame]]:
    found = []
    for meta_path in sorted((reports_dir / "tables").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        kind = meta_path.stem.removesuffix(f"_{meta['dataset']}_{meta['profile']}")
        if kind in TABLES:
            table = pd.read_csv(meta_path.with_suffix(".csv"), index_col=0)
            found.append((kind, meta, table))
    order = list(TABLES)
    found.sort(key=lambda t: (_DATASET_ORDER.get(t[1]["dataset"], 9), order.index(t[0])))
    return found


def summarize(reports_dir: str | Path) -> Path:
    """Write ``reports_dir/README.md``: every table found (the report's numbers beside ours,
    with profile, dataset, device, seed and date), and the verdict on each claim, computed
    from the tables themselves."""
    reports_dir = Path(reports_dir)
    lines = [
        "# Results",
        "",
        "Written by `python -m seqseg_lib summarize` from the tables in `tables/`, which the",
        "notebooks wrote (executed copies in `notebooks/`, figures in `figures/`). Every table",
        "states the profile, dataset, device, seed and date of the runs that produced it.",
        "Real road scenes come first: **read Table 1 on CamVid first**; the synthetic street",
        "scenes are the embedded default, useful to check the code, not to judge the models.",
        "",
        "Verdicts on trained runs know about noise (`seqseg_lib.verdicts`): they are",
        "`reproduced`, `not reproduced` or `inconclusive`. Over several seeds a verdict is",
        "decided only when every seed is on the same side of its threshold, else",
        "`inconclusive (the seeds disagree)`; one seed's verdict says `(one seed)`, and is",
        "`inconclusive (one seed)` where its margin to the threshold is smaller than the seed",
        "spread measured for that kind of run (listed below where one was measured). Verdicts",
        "on measured costs (step times, FLOPs, memory) rest on the measurement they name.",
        "",
    ]
    tables = _load_tables(reports_dir)
    spreads = measured_spreads(tables)
    if spreads:
        lines += ["Seed spreads measured here, used by the one-seed verdicts of that kind:", ""]
        lines += [
            f"- {TABLES[kind].title}: {spread:.2f} points ({where})."
            for kind, (spread, where) in spreads.items()
        ] + [""]
    for kind, meta, table in tables:
        provenance_line = ", ".join(f"{k}: {v}" for k, v in meta.items())
        spec = TABLES[kind]
        lines += [f"## {spec.title} — {meta['dataset']}, {meta['profile']} profile", ""]
        lines += [f"_{provenance_line}_", "", to_markdown(table), ""]
        tag = f"{meta['dataset']}_{meta['profile']}"
        figures = [
            f"[{label}](figures/{name}_{tag}.png)"
            for label, name in spec.figures
            if (reports_dir / "figures" / f"{name}_{tag}.png").exists()
        ]
        if figures:
            lines += ["Figures: " + ", ".join(figures) + ".", ""]
        if spec.claim is not None and meta["profile"] == "smoke":
            lines += [SMOKE_NOTE, ""]
        elif spec.claim is not None:
            try:
                if spec.judged_by is not None:
                    claims = spec.claim(table, spreads.get(spec.judged_by, (None, ""))[0])
                else:
                    claims = spec.claim(table)
            except (KeyError, IndexError, ValueError) as error:
                claims = f"(claims not evaluated: {error})"
            heading = "What we measured:" if spec.study else "Claims of the report:"
            ours = [c for c in claims.splitlines() if c.startswith(OUR_CHECK)]
            theirs = [c for c in claims.splitlines() if not c.startswith(OUR_CHECK)]
            lines += [heading, ""] + [f"- {claim}" for claim in theirs] + [""]
            if ours:  # checks of ours, listed apart from the report's claims
                lines += ["Our checks (not claims of the report):", ""]
                checks = [claim.removeprefix(OUR_CHECK) for claim in ours]
                lines += [f"- {claim[0].upper()}{claim[1:]}" for claim in checks] + [""]
    lines += _NOT_TESTABLE
    path = reports_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


_NOT_TESTABLE = [
    "## Claims that are not numbers",
    "",
    '- *"The segmentation maps produced by U-Net look much more natural than those of '
    'Seq2Seg"* (Sec. 2.3): a judgement on images, not testable by a number; see Figure 1 '
    "(`figures/figure1_*.png`): Seq2Seg's maps are built from 16x16 (8x8 in the `cpu` profile) "
    "blocks, one transposed-convolution kernel per patch.",
    "- Training-step durations: the report's 0.2 s / 0.3 s were measured on its GPU with the "
    "paper-size models; ours are measured on the stated device with the profile's models. Only "
    "the ratio Seq2Seg / U-Net is comparable, and only loosely across devices.",
    "",
]
