"""What a user sees does not change by accident: the published outputs of the demo (every
`publish/tables/<id>.csv`, the cell values of `publish/tables.xlsx`, `publish/report.html`
apart from the run id and the embedded chart images; the run id in the workbook too) and the
internal `citizens.parquet`'s rows are compared with a committed fingerprint
(`tests/fingerprints/<name>.json`).

A change that is meant to change the outputs updates the fingerprint in the same commit:

    .venv/bin/python tests/test_fingerprint.py        # rewrites tests/fingerprints/*.json

and the diff of the JSON shows which files changed. The chart images are left out of the
page's fingerprint: their bytes depend on matplotlib's version and fonts, and
`test_report.py` checks them against matplotlib's own renders.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import Config  # noqa: E402
from pipeline.demo import write_demo  # noqa: E402
from pipeline.runner import STAGES, run_stages  # noqa: E402

FOLDER = Path(__file__).resolve().parent / "fingerprints"
REF = dt.date(2024, 6, 30)
# name -> (citizens, seed)
CASES = {"demo-150": (150, 3), "demo-10000": (10_000, 42)}
RUN_ID = re.compile(r"\d{8}T\d{6}Z?-[0-9a-f]{8}")
IMAGE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(out: Path) -> dict[str, str]:
    """SHA-256 of each published output, normalised as the module docstring says."""
    prints: dict[str, str] = {}
    for path in sorted((out / "publish" / "tables").glob("*.csv")):
        prints[f"publish/tables/{path.name}"] = _sha(path.read_bytes())
    book = openpyxl.load_workbook(out / "publish" / "tables.xlsx", read_only=True)
    for sheet in book.worksheets:
        values = [[None if v is None else RUN_ID.sub("<run id>", str(v)) for v in row]
                  for row in sheet.values]
        prints[f"publish/tables.xlsx[{sheet.title}]"] = _sha(json.dumps(values).encode())
    citizens = pq.read_table(out / "citizens.parquet")
    prints["citizens.parquet"] = _sha(
        json.dumps(
            {"schema": [f"{f.name}:{f.type}" for f in citizens.schema],
             "rows": citizens.to_pylist()},
            default=str,
        ).encode()
    )
    page = (out / "publish" / "report.html").read_text("utf-8")
    page = IMAGE.sub("data:image/png;base64,<chart>", RUN_ID.sub("<run id>", page))
    prints["publish/report.html"] = _sha(page.encode())
    return prints


def make(name: str, root: Path) -> dict[str, str]:
    citizens, seed = CASES[name]
    input_dir, out = root / "input", root / "out"
    write_demo(input_dir, n=citizens, seed=seed, reference_date=REF)
    run_stages(STAGES, out, Config(reference_date=REF), input_dir=input_dir)
    return fingerprint(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_published_outputs_match_the_committed_fingerprint(name: str, tmp_path: Path) -> None:
    expected = json.loads((FOLDER / f"{name}.json").read_text("utf-8"))
    assert make(name, tmp_path) == expected


if __name__ == "__main__":
    import tempfile

    FOLDER.mkdir(exist_ok=True)
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            prints = make(case, Path(tmp))
        (FOLDER / f"{case}.json").write_text(json.dumps(prints, indent=2) + "\n", "utf-8")
        print(f"wrote {FOLDER / case}.json ({len(prints)} files)")
