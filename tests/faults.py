"""Fault cases with real processes: the helpers `tests/test_faults.py` uses, and `make faults`,
the full sweep (every fault point × SIGKILL / SIGTERM / SIGINT, then the environment's
faults), which prints a table of what happened.

A kill case starts a real `m3-profiles` process (`.venv/bin/python -m pipeline ...`) beside a
previous output, with the runner's test hook `M3_FAULT_AT=<point>:<SIGNAL>` (the process
sends itself the signal at that point: no timing). Then it checks that `--out` holds the
previous output byte for byte or the new one, runs a probe (an ingest of a broken export:
it recovers what the killed run left, under the lock, then fails with exit 3 before
touching `--out`) and checks `--out` again, byte for byte, then a clean run, which must
succeed and leave no stray folder.

    python tests/faults.py            # the sweep: about 15 minutes on 2 cores
    python tests/faults.py --points swap-synced,swap-exchanged --signals KILL
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.runner import FAULT_POINTS  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():  # pragma: no cover - a checkout without the Makefile's venv
    PYTHON = Path(sys.executable)
REF = dt.date(2024, 6, 30)
# KILL: the run's process alone (the kernel's OOM killer picks it), which the command's
# supervisor reports; KILL@group: the run and its supervisor (kill -9 of the job, a power
# cut), which the next start puts right
SIGNALS = ("KILL", "KILL@group", "TERM", "INT")
EXIT = {"KILL": 128 + signal.SIGKILL, "KILL@group": -signal.SIGKILL,
        "TERM": 128 + signal.SIGTERM, "INT": 128 + signal.SIGINT,
        "ABRT": 128 + signal.SIGABRT}  # a library's abort (Arrow's, when malloc fails)
# the points an `ingest` alone passes (the fast tests run ingest; the sweep runs `run`)
INGEST_POINTS = ("start", "stage-ingest", "ingest-read", "ingest-validate", "ingest-query",
                 "stages-done", "swap-synced", "swap-renamed-away", "swap-exchanged",
                 "swap-database", "history", "done")
# a signal at these points is honoured once the new output is in place (from the first
# rename of a swap, no signal stops it half-way)
PUBLISHED = ("swap-renamed-away", "swap-exchanged", "swap-database", "history", "done")
STRAY = re.compile(r"^\..*\.(tmp|old)-")


def cli(
    *args: str, env: dict[str, str] | None = None, prefix: Sequence[str] = (), timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """`m3-profiles ARGS` as a real process (optionally behind `prefix`, e.g. prlimit)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("M3_")}
    full.update(env or {})
    # a session of its own: a fault hook's signal to the process group stays in it
    return subprocess.run(
        [*prefix, str(PYTHON), "-m", "pipeline", *args],
        capture_output=True, text=True, env=full, cwd=ROOT, timeout=timeout,
        start_new_session=True,
    )


def export(folder: Path, citizens: int = 150, seed: int = 7) -> Path:
    """A demo export (citizens.csv, episodes.csv) of `citizens` citizens."""
    from pipeline.demo import write_demo

    write_demo(folder, n=citizens, seed=seed, reference_date=REF)
    return folder


def broken_export(folder: Path) -> Path:
    """An export refused before the warehouse is touched (exit 3): no episodes file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "citizens.csv").write_text("citizen_id;birth_year\nC1;1980\n", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (hidden ones too), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def strays(folder: Path) -> list[str]:
    """Work folders, renamed-away outputs and working copies left beside an output."""
    return sorted(p.name for p in folder.iterdir() if STRAY.match(p.name))


def traceback_in(text: str) -> bool:
    return "Traceback" in text or "╭─" in text


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def run_id(out: Path) -> str | None:
    try:
        return json.loads((out / "run.json").read_text("utf-8"))["run_id"]
    except (OSError, ValueError, KeyError):
        return None


@dataclasses.dataclass
class Setup:
    """A previous output to copy beside each case: `out` (and an outside warehouse `db`)."""

    command: str
    input_dir: Path
    out: Path
    db: Path | None
    bad_input: Path

    def args(self, out: Path, input_dir: Path | None = None, db: Path | None = None) -> list[str]:
        args = [self.command, "--input", str(input_dir or self.input_dir), "--out", str(out),
                "--reference-date", REF.isoformat()]
        if db is not None:
            config = out.parent / "config.toml"
            config.write_text(f'database = "{db}"\n', encoding="utf-8")
            args += ["--config", str(config)]
        return args


def make_setup(base: Path, command: str, citizens: int = 150, database: bool = False) -> Setup:
    """Run `command` once, in process, to make the previous output the cases start from."""
    from pipeline.config import Config
    from pipeline.runner import STAGES, run_stages

    input_dir = export(base / "input", citizens)
    db = base / "db" / "m3.duckdb" if database else None
    cfg = Config(reference_date=REF, database=str(db) if db else "")
    stages = STAGES if command == "run" else (command,)
    run_stages(stages, base / "out", cfg, input_dir=input_dir)
    return Setup(command, input_dir, base / "out", db, broken_export(base / "broken"))


@dataclasses.dataclass
class KillOutcome:
    point: str
    signal: str
    exit_code: int
    after: str  # what --out held after the stopped run: previous / new / missing / MIXED
    after_probe: str  # ... after the next start recovered what the run left
    recovered: list[str]  # what the next start said it did
    next_exit: int
    left: list[str]  # stray folders after the next run
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _state(out: Path, before: dict[str, str], before_id: str | None) -> str:
    if not out.exists():
        return "missing"
    now = snapshot(out)
    if now == before:
        return "previous"
    manifest = json.loads((out / "run.json").read_text("utf-8")) if (out / "run.json").exists() \
        else {}
    if manifest.get("run_id") not in (None, before_id) and manifest.get("outcome") == "success":
        return "new"
    return "MIXED"


def kill_case(setup: Setup, root: Path, point: str, sig: str) -> KillOutcome:
    """Stop a real run at `point` with `sig` beside a copy of the previous output; probe; run
    again. Every problem found is listed in the outcome."""
    root.mkdir(parents=True)
    out = root / "out"
    shutil.copytree(setup.out, out)
    db = None
    if setup.db is not None:
        db = root / "db" / setup.db.name
        db.parent.mkdir()
        shutil.copyfile(setup.db, db)
    before, before_id = snapshot(out), run_id(out)
    db_before = snapshot(db.parent) if db else {}
    env = {"M3_FAULT_AT": f"{point}:{sig}"}
    if point == "swap-renamed-away":
        env["M3_SWAP"] = "rename"
    problems: list[str] = []
    stopped = cli(*setup.args(out, db=db), env=env)
    expected = EXIT[sig]
    if stopped.returncode != expected:
        problems.append(f"exit {stopped.returncode}, expected {expected}: {stopped.stderr[-800:]}")
    if traceback_in(stopped.stderr):
        problems.append("a traceback on the terminal")
    after = _state(out, before, before_id)
    group = sig.endswith("@group")
    allowed = {"previous", "new", "missing"} if group else {"previous", "new"}
    if after not in allowed:
        problems.append(f"--out holds {after} after the stopped run")
    if not group and stopped.returncode == expected:
        said = f"stopped by SIG{sig}" if sig in ("TERM", "INT") else f"was killed by SIG{sig}"
        lines = error_lines(stopped.stderr)
        if len(lines) != 1 or said not in lines[0]:
            problems.append(f"not one error line saying {said!r}: {lines}")
        if strays(root):
            problems.append(f"left beside --out by the stopped run: {strays(root)}")
        if after == "previous":
            failed = root / "out.failed"
            kept = sorted(p.name for p in failed.iterdir()) if failed.exists() else []
            if kept != ["run.json", "run.log"]:
                problems.append(f"out.failed holds {kept}, expected the log and manifest only")
            elif said not in (failed / "run.log").read_text("utf-8"):
                problems.append("out.failed/run.log does not say what stopped the run")
    new = snapshot(out) if after == "new" else None
    # the next start, under the lock, puts right what the run left; a broken export then
    # stops it before --out is touched
    probe = cli(*setup.args(out, setup.bad_input, db=db))
    if probe.returncode != 3:
        problems.append(f"probe exit {probe.returncode}: {probe.stderr[-800:]}")
    recovered = [line.split(" ", 1)[1] for line in probe.stderr.splitlines()
                 if re.match(r"\d\d:\d\d:\d\d (restored|removed|finished|left|kept)", line)]
    after_probe = "missing" if not out.exists() else (
        "previous" if snapshot(out) == before else "new" if snapshot(out) == new else "MIXED")
    if after_probe not in ("previous", "new") or (after != "missing" and after_probe != after):
        problems.append(f"--out holds {after_probe} after the next start (was {after})")
    if db is not None:
        db_now = snapshot(db.parent)
        db_files = {k: v for k, v in db_now.items() if not k.endswith(".lock")}
        if after_probe == "previous" and db_files != {
            k: v for k, v in db_before.items() if not k.endswith(".lock")
        }:
            problems.append("the outside warehouse changed, the output did not")
        if after_probe == "new" and db_files.get(db.name) == db_before.get(db.name):
            problems.append("the output is new, the outside warehouse is not")
    if strays(root) or (db and strays(db.parent)):
        problems.append(f"left after the next start: {strays(root)}")
    again = cli(*setup.args(out, db=db))
    if again.returncode != 0:
        problems.append(f"next run exit {again.returncode}: {again.stderr[-800:]}")
    left = strays(root) + (strays(db.parent) if db else [])
    if left:
        problems.append(f"stray folders after the next run: {left}")
    extra = sorted({p.name for p in root.iterdir()} - {"out", "out.failed", ".out.lock", "db",
                                                          "config.toml", "out.history"})
    if extra:
        problems.append(f"beside --out after the next run: {extra}")
    return KillOutcome(point, sig, stopped.returncode, after, after_probe, recovered,
                       again.returncode, left, problems)


# --- the environment's faults --------------------------------------------------------------


@dataclasses.dataclass
class FaultOutcome:
    fault: str
    exit_code: int
    message: str
    untouched: bool  # the previous output (or the user's files) byte for byte
    left: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True)


def unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=False)


def _outcome(fault: str, done: subprocess.CompletedProcess[str], expected: int,
             message: str, untouched: bool, root: Path) -> FaultOutcome:
    problems = []
    lines = error_lines(done.stderr)
    if done.returncode != expected:
        problems.append(f"exit {done.returncode}, expected {expected}: {done.stderr[-800:]}")
    if traceback_in(done.stderr):
        problems.append("a traceback on the terminal")
    if len(lines) != 1 or message not in lines[0]:
        problems.append(f"not one error line saying {message!r}: {lines}")
    if not untouched:
        problems.append("the previous output or the user's files changed")
    left = strays(root) if root.exists() else []
    if left:
        problems.append(f"stray folders: {left}")
    return FaultOutcome(fault, done.returncode, lines[0] if lines else "", untouched, left,
                        problems)


def disk_full(base: Path) -> FaultOutcome:
    """The output's disk fills up during a run (a tmpfs just larger than the previous
    output): exit 5, one line naming the cause, the previous output untouched, the space
    given back."""
    disk = base / "disk"
    mount_tmpfs(disk, "64m")
    try:
        small = export(base / "small", 30, seed=1)
        first = cli("ingest", "--input", str(small), "--out", str(disk / "out"),
                    "--reference-date", REF.isoformat())
        assert first.returncode == 0, first.stderr
        used = sum(p.stat().st_size for p in disk.rglob("*") if p.is_file())
        # room for the lock, the log and the manifest; not for a second warehouse
        subprocess.run(["mount", "-o", f"remount,size={used + 512 * 1024}", str(disk)],
                       check=True)
        before = snapshot(disk / "out")
        done = cli("ingest", "--input", str(export(base / "big", 2000, seed=2)), "--out",
                   str(disk / "out"), "--reference-date", REF.isoformat())
        outcome = _outcome("disk full (tmpfs)", done, 5, "no space left on the device",
                           snapshot(disk / "out") == before, disk)
        kept = sorted(p.name for p in (disk / "out.failed").iterdir()) \
            if (disk / "out.failed").exists() else []
        if kept != ["run.json", "run.log"]:
            outcome.problems.append(f"out.failed holds {kept}")
        return outcome
    finally:
        unmount(disk)


def unreadable_input(base: Path) -> FaultOutcome:
    """An input file the user running the pipeline may not read (mode 000; root runs without
    CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, as root otherwise reads anything): exit 5, one
    line naming the file."""
    setup = make_setup(base / "setup", "ingest", 30)
    locked_in = export(base / "locked", 30, seed=3)
    (locked_in / "citizens.csv").chmod(0)
    before = snapshot(setup.out)
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] \
        if is_root() else []
    done = cli("ingest", "--input", str(locked_in), "--out", str(setup.out),
               "--reference-date", REF.isoformat(), prefix=prefix)
    return _outcome("unreadable input file (mode 000)", done, 5,
                    f"{locked_in / 'citizens.csv'}: permission denied",
                    snapshot(setup.out) == before, setup.out.parent)


def read_only_output(base: Path) -> FaultOutcome:
    """The output's disk is read-only (a tmpfs remounted ro): exit 5, nothing changes."""
    disk = base / "ro"
    mount_tmpfs(disk, "64m")
    try:
        small = export(base / "small", 30, seed=1)
        first = cli("ingest", "--input", str(small), "--out", str(disk / "out"),
                    "--reference-date", REF.isoformat())
        assert first.returncode == 0, first.stderr
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        before = snapshot(disk / "out")
        done = cli("ingest", "--input", str(small), "--out", str(disk / "out"),
                   "--reference-date", REF.isoformat())
        return _outcome("read-only output disk", done, 5, "read-only file system",
                        snapshot(disk / "out") == before, disk)
    finally:
        unmount(disk)


def memory_cap(base: Path, cap: int = 1 << 30, input_dir: Path | None = None,
               citizens: int = 150, command: str = "ingest") -> FaultOutcome:
    """`command` under a 1 GiB address-space cap (`prlimit --as`): it finishes, or fails with
    exit 5 and one line; never a kill, never a stray folder."""
    setup = make_setup(base / "setup", "ingest", 30)
    before = snapshot(setup.out)
    input_dir = input_dir or export(base / "input", citizens, seed=4)
    done = cli(command, "--input", str(input_dir), "--out", str(setup.out),
               "--reference-date", REF.isoformat(), prefix=["prlimit", f"--as={cap}"])
    fault = f"memory cap {cap >> 20} MiB (prlimit --as), {command}"
    if done.returncode == 0:
        return FaultOutcome(fault, 0, "", True, strays(base / "setup"),
                            [] if not strays(base / "setup") else ["stray folders"])
    # where the allocation fails decides who reports it: the run (a MemoryError, a thread
    # that cannot start: exit 5) or its supervisor (Arrow's abort: 134; glibc's "cannot
    # allocate memory for thread-local data": 127)
    expected = done.returncode if done.returncode in (5, 127, 134) else 5
    outcome = _outcome(fault, done, expected, "memory", snapshot(setup.out) == before,
                       setup.out.parent)
    failed = setup.out.parent / "out.failed"
    if not (failed / "run.log").exists():
        outcome.problems.append("no run.log in out.failed")
    return outcome


def wait_stopped(pid: int) -> None:
    """Until process `pid` is stopped (SIGSTOP) or gone."""
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.02)


def _holder(lock: Path, deadline: float) -> dict:
    """The holder a lock file names, once it names one."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            holder = json.loads(lock.read_text("utf-8") or "{}")
            if holder:
                return holder
        time.sleep(0.02)
    raise TimeoutError(f"{lock} names no holder")


def lock_held(base: Path) -> FaultOutcome:
    """A second run while a first one (stopped by SIGSTOP at a point, holding the lock) is
    going: exit 4, the message names the holder's run id and pid."""
    setup = make_setup(base / "setup", "ingest", 30)
    full = {k: v for k, v in os.environ.items() if not k.startswith("M3_")}
    first = subprocess.Popen(
        [str(PYTHON), "-m", "pipeline", *setup.args(setup.out)],
        env={**full, "M3_FAULT_AT": "stage-ingest:STOP"}, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    holder: dict = {}
    try:
        # the run is the supervisor's child: the lock names its pid
        holder = _holder(setup.out.parent / ".out.lock", time.monotonic() + 120)
        wait_stopped(holder["pid"])
        before = snapshot(setup.out)
        done = cli(*setup.args(setup.out))
        outcome = _outcome("lock held by another run", done, 4,
                           f"held by run {holder['run_id']}, pid {holder['pid']} on ",
                           snapshot(setup.out) == before, base / "nothing")
    finally:
        if holder:
            os.kill(holder["pid"], signal.SIGCONT)
        else:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=120)
    if first.returncode != 0:
        outcome.problems.append(f"the first run, continued, exit {first.returncode}")
    return outcome


def refusals(base: Path) -> list[FaultOutcome]:
    """Paths a run may not replace, each given to a real `m3-profiles ingest`: exit 2, one
    line saying why, nothing read or written (the user's files byte for byte, no lock file,
    no work folder)."""
    base.mkdir(parents=True)
    data = base / "data"
    raw = export(data / "raw", 30)
    home = base / "home"
    home.mkdir()
    (home / "thesis.txt").write_text("three years of work\n")
    (base / "afile").write_text("a file\n")
    text = base / "elsewhere" / "notes.txt"
    text.parent.mkdir()
    text.write_text("my notes\n")
    other = base / "elsewhere" / "app.duckdb"
    import duckdb

    con = duckdb.connect(str(other))
    con.execute("create table accounts as select 1 as id")
    con.close()
    victim = base / "precious.txt"
    victim.write_text("do not truncate\n")
    (base / "lockdir").mkdir()
    (base / "lockdir" / ".out.lock").symlink_to(victim)

    def config(db: Path) -> list[str]:
        path = base / f"{db.name}.toml"
        path.write_text(f'database = "{db}"\n', encoding="utf-8")
        return ["--config", str(path)]

    cases = [
        ("--out: a folder of the user's (a home folder)", home, []),
        ("--out = --input", raw, []),
        ("--out = the parent of --input", data, []),
        ("--out inside --input", raw / "out", []),
        ("--out: a file", base / "afile", []),
        ("config database: a text file", base / "out1", config(text)),
        ("config database: another program's DuckDB file", base / "out2", config(other)),
        ("a symlink at the lock path", base / "lockdir" / "out", []),
    ]
    outcomes = []
    for fault, out, extra in cases:
        before = snapshot(base)
        names = sorted(p.name for p in base.rglob("*"))
        done = cli("ingest", "--input", str(raw), "--out", str(out), "--reference-date",
                   REF.isoformat(), *extra)
        unchanged = snapshot(base) == before and sorted(p.name for p in base.rglob("*")) == names
        outcomes.append(_outcome(fault, done, 2, "", unchanged, base))
    return outcomes


def environment_cases(base: Path) -> list[FaultOutcome]:
    outcomes = refusals(base / "refusals")
    outcomes += [unreadable_input(base / "unreadable"), lock_held(base / "lock")]
    if is_root():
        outcomes += [disk_full(base / "full"), read_only_output(base / "ro")]
    outcomes.append(memory_cap(base / "memory", command="run"))
    return outcomes


# --- the sweep ------------------------------------------------------------------------------


def sweep(points: Sequence[str], signals: Sequence[str], jobs: int, citizens: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="m3-faults-") as tmp:
        base = Path(tmp)
        print(f"previous outputs: `run` on {citizens:,} citizens", flush=True)
        plain = make_setup(base / "plain", "run", citizens)
        outside = make_setup(base / "outside", "run", citizens, database=True)
        cases = [(p, s) for p in points for s in signals]
        started = time.monotonic()

        def one(case: tuple[str, str]) -> KillOutcome:
            point, sig = case
            setup = outside if point == "swap-database" else plain
            o = kill_case(setup, base / "cases" / f"{point}-{sig}", point, sig)
            print(f"  {point:18} SIG{sig:4} {'ok' if o.ok else 'FAILED'}", flush=True)
            return o

        with ThreadPoolExecutor(jobs) as pool:
            results = list(pool.map(one, cases))
        print(f"\n{len(cases)} kill cases in {time.monotonic() - started:.0f} s\n")
        by = {(o.point, o.signal): o for o in results}
        print("| point | " + " | ".join(f"SIG{s}" for s in signals) + " |")
        print("|---|" + "---|" * len(signals))
        for p in points:
            cells = []
            for s in signals:
                o = by[(p, s)]
                cell = f"exit {o.exit_code}, {o.after}"
                if o.after_probe != o.after:
                    cell += f" → {o.after_probe}"
                cells.append(cell + (" ✓" if o.ok else " ✗"))
            print(f"| {p} | " + " | ".join(cells) + " |")
        env = environment_cases(base / "env")
        print("\n| fault | exit | message | previous output untouched | ok |")
        print("|---|---|---|---|---|")
        for f in env:
            message = f.message.replace(str(base / "env"), "…")
            print(f"| {f.fault} | {f.exit_code} | {message} | "
                  f"{'yes' if f.untouched else 'NO'} | {'✓' if f.ok else '✗'} |")
        failures = [o for o in results if not o.ok] + [f for f in env if not f.ok]
        for o in failures:
            name = f"{o.point} SIG{o.signal}" if isinstance(o, KillOutcome) else o.fault
            print(f"\nFAILED {name}:\n  " + "\n  ".join(o.problems))
        return not failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default=",".join(FAULT_POINTS))
    parser.add_argument("--signals", default=",".join(SIGNALS))
    parser.add_argument("--jobs", type=int, default=2, help="cases run side by side")
    parser.add_argument("--citizens", type=int, default=500)
    a = parser.parse_args()
    ok = sweep(a.points.split(","), a.signals.split(","), a.jobs, a.citizens)
    print("\nall fault cases passed" if ok else "\nSOME FAULT CASES FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
