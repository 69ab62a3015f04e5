"""The analyst notebook (notebooks/1.0-fe-profile-tables.ipynb): it runs on a small real
warehouse, leaves the warehouse untouched, and its course-history-by-age counts equal an
independent plain-Python count from citizens.parquet. It is stored without outputs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import nbclient
import nbformat
import pyarrow.parquet as pq
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from pipeline.config import Config
from pipeline.demo import write_demo
from pipeline.runner import STAGES, run_stages

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "1.0-fe-profile-tables.ipynb"
REF = dt.date(2024, 6, 30)
PROFILE = "physically_ill"  # the notebook's PROFILE
# definitions §4 (default bands, as lower bound -> code) and §2, written out here on purpose:
# the expected counts must not come from the code under test.
AGE_BANDS = ((60, "60_plus"), (50, "50_59"), (40, "40_49"), (30, "30_39"), (25, "25_29"))
BAND_CODES = ("under_25", "25_29", "30_39", "40_49", "50_59", "60_plus")
COURSE_CLASSES = ("long_continuous", "short_continuous", "several_separate", "no_history")


def age_band(age: int) -> str:
    for lower, code in AGE_BANDS:
        if age >= lower:
            return code
    return "under_25"


def expected_counts(citizens_parquet: Path, profile: str) -> dict[str, dict[str, int]]:
    """{age band or total: {course class or total: citizens}} by a loop over the rows."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in pq.read_table(citizens_parquet).to_pylist():
        if row["profile"] != profile:
            continue
        for band in (age_band(row["age"]), "total"):
            for course_class in (row["course_class"], "total"):
                counts[band, course_class] += 1
    return {
        band: {c: counts[band, c] for c in (*COURSE_CLASSES, "total")}
        for band in (*BAND_CODES, "total")
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A warehouse and citizens.parquet from a full pipeline run on 1,000 demo citizens."""
    write_demo(tmp_path / "in", n=1_000, seed=5, reference_date=REF)
    run_stages(STAGES, tmp_path / "out", Config(reference_date=REF), input_dir=tmp_path / "in")
    return tmp_path / "out" / "warehouse.duckdb"


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel `python3` = this interpreter (the venv's), whatever kernels the machine has."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (test)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable


def test_notebook_runs_and_counts_course_history_by_age(warehouse, venv_kernel, monkeypatch):
    monkeypatch.setenv("M3_WAREHOUSE", str(warehouse))
    before = sha256(warehouse)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError if any cell fails

    # read-only: the warehouse is byte-identical and DuckDB left no write-ahead log
    assert sha256(warehouse) == before
    assert not warehouse.with_name(warehouse.name + ".wal").exists()

    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    printed = "".join(o.text for o in last.outputs if o.get("name") == "stdout")
    result = json.loads(printed)
    expected = expected_counts(warehouse.with_name("citizens.parquet"), PROFILE)
    assert result["profile"] == PROFILE
    assert result["course_history_by_age"] == expected
    # not a vacuous comparison: a sizeable profile spread over several bands and classes
    assert expected["total"]["total"] >= 100
    assert sum(1 for band in BAND_CODES if expected[band]["total"]) >= 4
    assert sum(1 for c in COURSE_CLASSES if expected["total"][c]) >= 2


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"
