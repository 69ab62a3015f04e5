"""The `m3-profiles` command line: parse options, call one library function, map the
library's named errors to exit codes (interface: 0 ok, 1 internal error, 2 usage, 3 input
rejected, 4 locked; README *When a run fails*: 5 the environment — disk full, permission
denied, out of memory —, 130 / 143 stopped by SIGINT / SIGTERM). Diagnostics go to stderr,
one line for every failure but an internal error; the summary to stdout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from pipeline import privacy, progress
from pipeline.config import Config, ConfigError, load_config, parse_date
from pipeline.errors import (
    EnvironmentFault,
    InputError,
    LockedError,
    OutputError,
    RejectedError,
    Stopped,
)
from pipeline.privacy import PseudonymKeyError

if TYPE_CHECKING:
    from pipeline.rules import Rules

class _FlagsAsFlags:
    """Typer 0.29 lists a flag with a type, `--dirty <bool>`, `--help <bool>`, as if it took a
    value (`--dirty true` is refused): a flag's help shows no type."""

    def get_params(self, ctx):  # noqa: ANN001, ANN201 - typer's own signature
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_FlagsAsFlags, TyperCommand):
    pass


class _Group(_FlagsAsFlags, TyperGroup):
    pass


app = typer.Typer(
    cls=_Group,
    help="Faxe-style profile analysis of match-group-3 citizens, from an anonymised export.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold personal data
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_LOCKED, EXIT_ENVIRONMENT = 1, 2, 3, 4, 5
EXIT_SIGNAL = 128  # + the signal's number: 130 SIGINT, 143 SIGTERM (the shell's convention)


class Lang(StrEnum):
    da = "da"
    en = "en"


_DEFAULTS = Config()


def _option(*decls: str, shown: str | None = None, **kw: Any) -> Any:  # noqa: ANN401
    """An option whose help shows its default: `shown` for an option whose default is
    "whatever the config says" (None here), which typer would leave blank."""
    return typer.Option(*decls, show_default=shown if shown is not None else True, **kw)


InputOpt = Annotated[
    Path,
    typer.Option(
        "--input", help="Folder with the citizens and episodes files (.csv, .xlsx or .parquet)."
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (replaced atomically).")]
# the commands that only read an output folder
ReadOutOpt = Annotated[
    Path, typer.Option("--out", help="Output folder of an earlier run (read, never written).")
]
ConfigOpt = Annotated[
    Path | None,
    _option("--config", shown="none: every key at its default",
            help="TOML config file (see m3-profiles.example.toml)."),
]
RulesOpt = Annotated[
    Path | None,
    _option("--rules", shown="the shipped rules",
            help="Profile rules file replacing the shipped one."),
]
WorklistOpt = Annotated[
    Path | None,
    _option("--worklist", shown="the shipped worklist",
            help="Re-review worklist rules replacing the shipped ones (internal list)."),
]


def _reference_date(text: str) -> dt.date:
    """--reference-date: a calendar date written year-month-day, said plainly when not."""
    try:
        return parse_date(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date written YYYY-MM-DD (year-month-day), e.g. 2024-06-30"
        ) from None


def _ref_option(shown: str) -> Any:  # noqa: ANN401
    return _option("--reference-date", shown=shown, parser=_reference_date,
                   metavar="YYYY-MM-DD", help="Day the analysis describes.")


RefOpt = Annotated[dt.date | None, _ref_option("config reference_date, else today")]
MinCellOpt = Annotated[
    int | None,
    _option("--min-cell", shown=f"config min_cell, else {_DEFAULTS.min_cell}", min=0,
            help="Smallest count shown in published tables; 0 = off."),
]
LangOpt = Annotated[
    Lang | None,
    _option("--lang", shown=f"config lang, else {_DEFAULTS.lang}", help="Language of labels."),
]
# the options of `run` a stage alone has no use for: still accepted, so a script may give
# every stage the same options (interface), but not listed in the stage's help
IgnoredRulesOpt = Annotated[Path | None, typer.Option("--rules", hidden=True)]
IgnoredMinCellOpt = Annotated[int | None, typer.Option("--min-cell", min=0, hidden=True)]
IgnoredLangOpt = Annotated[Lang | None, typer.Option("--lang", hidden=True)]


def _config(
    config: Path | None,
    reference_date: dt.date | None = None,
    min_cell: int | None = None,
    lang: Lang | None = None,
    resolve: bool = True,
) -> Config:
    cfg = load_config(config).with_overrides(
        reference_date=reference_date,
        min_cell=min_cell,
        lang=lang.value if lang else None,
    )
    # `report` alone keeps "not given": it then takes the date segment used (runner)
    return cfg.resolved() if resolve else cfg


class _Steps:
    """A command's progress. On a terminal: a spinner naming the step, and under it a bar
    for each count that is under way (the rows of each input file read, the models of each
    stage built), with each step and each finished count as a line above them. Elsewhere
    (a pipe, a log, cron): only those lines, `HH:MM:SS what`, one per step or finished
    count (interface: "a progress bar on a terminal and plain log lines when not")."""

    def __init__(self, quiet: bool = False) -> None:
        # quiet (cron, or JSON log lines that the runner writes to stderr itself): nothing
        self.quiet = quiet
        self.tty = err.is_terminal and not quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.counts: dict[tuple[str, str], TaskID] = {}
        self.lock = threading.Lock()  # counts come from ingest's reader threads too
        self.listening = progress.listening(self.count)

    def __enter__(self) -> _Steps:
        if self.tty:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting", total=None, figures="")
        self.listening.__enter__()
        return self

    def _line(self, message: str) -> None:
        if self.quiet:
            return
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        if self.progress is not None:
            err.print(f"[dim]{stamp}[/] {escape(message)}", highlight=False, soft_wrap=True)
        else:
            print(f"{stamp} {message}", file=sys.stderr, flush=True)

    def __call__(self, message: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=message)
        self._line(message)

    def count(self, task: str, done: int, total: int | None, unit: str) -> None:
        """`progress`'s listener: a bar per (task, unit) while under way, a line when done."""
        complete = total is not None and done >= total
        with self.lock:
            if self.progress is not None:
                key = (task, unit)
                figures = f"{done:,}/{total:,} {unit}" if total is not None else unit
                if key not in self.counts:
                    self.counts[key] = self.progress.add_task(task, total=total, figures="")
                self.progress.update(self.counts[key], completed=done, total=total,
                                     figures=figures)
                self.progress.refresh()  # every count drawn, however fast the step
                if complete:
                    self.progress.remove_task(self.counts.pop(key))
            if complete:
                self._line(f"{task}: {total:,} {unit}")

    def __exit__(self, *exc: object) -> None:
        self.listening.__exit__(None, None, None)
        if self.progress is not None:
            self.progress.stop()


# log_format = "json" (README, Scheduling): the error line is a JSON event like the log's,
# with the run id of the run that failed (set by `_run_here`)
_json_errors = False
_failed_run_id: str | None = None


def _fail(code: int, message: str) -> typer.Exit:
    # the message is text, not markup: "[[rule]]" or "[columns.citizens]" must show as written;
    # a path or a header in it may hold a CPR number (a folder's name): masked like notes
    if _json_errors:
        from pipeline.operations import json_event

        print(json_event("error", privacy.mask_name(message), _failed_run_id, exit_code=code),
              file=sys.stderr, flush=True)
        return typer.Exit(code=code)
    err.print(f"[bold red]error:[/] {escape(privacy.mask_name(message))}", highlight=False,
              soft_wrap=True)
    return typer.Exit(code=code)


@contextlib.contextmanager
def _environment() -> Iterator[None]:
    """A disk full, a file that may not be read or written, memory running out: one line and
    exit 5, never a traceback (the run's own commands get this from the runner)."""
    try:
        yield
    except (OSError, MemoryError, RuntimeError) as e:
        from pipeline.runner import environment_fault

        fault = environment_fault(e)
        if fault is None:
            raise
        raise _fail(EXIT_ENVIRONMENT, str(fault)) from None


@contextlib.contextmanager
def _stoppable(state: str) -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM in a command that is no run (`validate`, `demo`): one line
    saying what was left (`state`) and exit 130 / 143, as `run` gives, never click's
    "Aborted!" or a traceback. The handler raises `Stopped` at once; whatever a library
    makes of it on the way out (DuckDB's InterruptException, pandas' KeyboardInterrupt) is
    taken for the signal that caused it."""
    received: list[int] = []

    def handle(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            raise Stopped(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    except (Exception, KeyboardInterrupt, Stopped) as e:
        if not received and not isinstance(e, KeyboardInterrupt | Stopped):
            raise
        signum = received[0] if received else signal.SIGINT
        raise _fail(
            EXIT_SIGNAL + signum, f"stopped by {signal.Signals(signum).name}: {state}"
        ) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_counts(result) -> None:  # noqa: ANN001 - an IngestResult
    t = Table(title="Rows per table (read = loaded + quarantined)")
    for c in ("table", "file", "read", "loaded", "quarantined", "CPR masked"):
        t.add_column(c, justify="right" if c not in ("table", "file") else "left")
    for name, c in result.counts.items():
        t.add_row(
            name, c.file, f"{c.read:,}", f"{c.loaded:,}", f"{c.quarantined:,}", f"{c.cpr_masked:,}"
        )
    console.print(t)
    if result.problems_by_reason:
        console.print(
            "Quarantine reasons: "
            + ", ".join(f"{k} {v:,}" for k, v in result.problems_by_reason.items())
        )
    if result.pseudonymised:
        console.print("Citizen ids pseudonymised with HMAC-SHA256 (keyed).")


def _print_summary(st) -> None:  # noqa: ANN001 - a RunState
    lines: list[str] = []
    if st.report is not None:
        # a run that made a report prints only what it publishes (a terminal's output is
        # copied into e-mails): no count of the export, no unsuppressed share. Those are in
        # run.json and run.log
        if "ingest" in st.stages:
            lines.append("Ingest: the export's row counts and quarantine reasons are internal:"
                         " run.json, run.log, quarantine.csv.")
        if st.segment is not None:
            lines += st.segment.summary_lines(internal=False)
        release = getattr(st, "release", None)
        if release is not None and not release.published:
            # the new release was not published: none of its numbers is printed
            lines.append(release.line)
        else:
            lines += st.report.summary_lines()
            if release is not None and release.previous is not None:
                lines.append(release.line)
    else:
        # a stage on its own prints what it computed, unsuppressed and labelled internal
        if st.ingest is not None:
            console.print("INTERNAL, not for publication (counts of the export):",
                          highlight=False)
            _print_counts(st.ingest)
        if st.segment is not None:
            lines += st.segment.summary_lines(internal=True)
    for line in lines:
        # soft_wrap: a line is never broken inside a figure, on a terminal or in a log
        console.print(line, highlight=False, soft_wrap=True)


def _supervisable() -> bool:
    """Whether this command is a process of its own with a terminal or files for its output
    (not a CliRunner in a test's process) on a platform with fork."""
    if not hasattr(os, "fork") or os.environ.get("M3_SUPERVISE") == "0":
        return False
    try:
        sys.stdout.fileno(), sys.stderr.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _supervise() -> None:
    """Fork: the child returns and runs the command; this process waits for it and exits
    with its code. The run can die where it cannot say so itself — the kernel's out-of-memory
    killer sends SIGKILL, a library aborts when memory runs out — and then this small
    process says what happened in one line, keeps the run's log as `<out>.failed/run.log`
    and removes its work folder (`runner.after_killed`), so no stray folder of personal data
    waits for the next run. SIGTERM and SIGINT sent here are passed on to the run."""
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        from pipeline import runner

        os.close(read)
        runner.announce_to(write)
        return
    os.close(write)

    def pass_on(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, pass_on)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code in _EXIT_CODES:
        raise typer.Exit(code=code)
    with os.fdopen(read, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    _died(code, json.loads(lines[-1]) if lines else None)


# what the command itself exits with (typer's usage errors are 2): any other end is a death
_EXIT_CODES = {0, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_LOCKED, EXIT_ENVIRONMENT,
               EXIT_SIGNAL + signal.SIGINT, EXIT_SIGNAL + signal.SIGTERM}


def _died(code: int, announced: dict | None) -> None:
    """The run's process died (`code` < 0: by that signal; else an exit code the command never
    gives, e.g. glibc's 127 when it cannot allocate a thread): say so in one line, after
    `runner.after_killed` kept its log and removed its work folder."""
    from pipeline.runner import after_killed

    if code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
        cause = (
            "the kernel's out-of-memory killer (see dmesg) or kill -9"
            if -code == signal.SIGKILL
            else "a library aborted, most often as memory ran out: see the lines above"
        )
    else:
        how = f"ended abruptly with exit code {code}"
        cause = "a library gave up, most often as memory ran out: see the lines above"
    published = False
    where = ""
    if announced is not None:
        try:
            done, published = after_killed(announced, how)
        except Exception as e:  # noqa: BLE001 - the next run puts it right; say so
            done = [f"could not clean up ({type(e).__name__}: {e}); the next run will"]
        for line in done:
            print(f"{dt.datetime.now():%H:%M:%S} {line}", file=sys.stderr, flush=True)
        log = "/run.log" if published else ".failed/run.log"
        where = f"; the run's log is in {announced['out']}{log}"
    state = (
        "the new output was already in place"
        if published
        else "nothing was published, the previous output is untouched"
    )
    exit_code = EXIT_SIGNAL - code if code < 0 else code
    raise _fail(exit_code, f"the run {how} ({cause}): {state}{where}")


class _Watch:
    """What the operator watches besides the exit code (pipeline.operations): the dead man's
    switch pinged at start and end, and the metrics file written at the end of every run,
    success or failure. Both happen in the process that knows the exit code: the supervisor
    when there is one (so a run killed by the kernel is reported too), else this one."""

    def __init__(self, cfg: Config, out_dir: Path) -> None:
        from pipeline import operations

        self.ops = operations
        self.metrics = Path(cfg.metrics_file) if cfg.metrics_file else None
        if self.metrics is not None:
            try:
                operations.check_metrics_file(self.metrics)
            except operations.MetricsFileError as e:
                raise _fail(EXIT_USAGE, str(e)) from None
        self.json_lines = cfg.log_format == "json"
        self.heartbeat = operations.Heartbeat(cfg.ping_url, self.json_lines)
        self.out_dir = out_dir.resolve()
        self.started = time.time()
        self.since = dt.datetime.now().replace(microsecond=0)

    def start(self) -> None:
        self.heartbeat.start()

    def end(self, code: int) -> None:
        manifest = self.ops.run_manifest(self.out_dir, since=self.since)
        run_id = manifest.get("run_id") if manifest else None
        if self.metrics is not None:
            self.ops.write_metrics(
                self.metrics, outcome="success" if code == 0 else "failed", exit_code=code,
                started=self.started, manifest=manifest, json_lines=self.json_lines,
                run_id=run_id,
            )
        self.heartbeat.end(code, run_id)


def _run(stages: tuple[str, ...], out_dir: Path, cfg: Config, *, quiet: bool = False,
         **kw) -> None:  # noqa: ANN003
    global _json_errors
    _json_errors = cfg.log_format == "json"
    watch = _Watch(cfg, out_dir)
    watch.start()
    if _supervisable():
        try:
            _supervise()  # returns in the run's process only; before the heavy imports
        except typer.Exit as e:  # the supervisor, with the run's exit code
            watch.end(e.exit_code)
            raise
        _run_here(stages, out_dir, cfg, quiet, **kw)  # the run's process: its parent reports
        return
    try:
        _run_here(stages, out_dir, cfg, quiet, **kw)
    except typer.Exit as e:
        watch.end(e.exit_code)
        raise
    except BaseException:
        watch.end(EXIT_INTERNAL)
        raise
    watch.end(0)


@contextlib.contextmanager
def _json_stderr(cfg: Config, quiet: bool) -> Iterator[None]:
    """log_format = "json": the run's events on stderr, one JSON object a line, masked like
    run.log (a log collector or journald reads them); with --quiet only warnings and
    errors (cron mails whatever is printed)."""
    import logging

    from pipeline.operations import JsonLines

    class Masked(logging.StreamHandler):
        def format(self, record: logging.LogRecord) -> str:
            return privacy.mask_name(super().format(record))

    if cfg.log_format != "json":
        yield
        return
    handler = Masked(sys.stderr)
    handler.setFormatter(JsonLines())
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    logger = logging.getLogger("m3_profiles")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _run_here(stages: tuple[str, ...], out_dir: Path, cfg: Config, quiet: bool,
              **kw) -> None:  # noqa: ANN003
    from pipeline.rules import RulesError
    from pipeline.runner import run_stages

    global _failed_run_id
    try:
        try:
            with _Steps(quiet or cfg.log_format == "json") as steps, _json_stderr(cfg, quiet):
                st = run_stages(stages, out_dir, cfg, step=steps, **kw)
        except BaseException as e:
            _failed_run_id = getattr(e, "run_id", None)
            raise
    except Stopped as e:
        if e.published:
            raise _fail(
                EXIT_SIGNAL + e.signum,
                f"stopped by {e.name} after the new output was in place: {out_dir} holds "
                "this run's output",
            ) from None
        raise _fail(
            EXIT_SIGNAL + e.signum,
            f"stopped by {e.name}: nothing was published, the previous output is untouched; "
            f"the run's log is in {out_dir}.failed/run.log",
        ) from None
    except EnvironmentFault as e:
        raise _fail(
            EXIT_ENVIRONMENT, f"{e}. Nothing was published; the previous output is untouched."
        ) from None
    except OutputError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    except LockedError as e:
        raise _fail(EXIT_LOCKED, str(e)) from None
    except RejectedError as e:
        if e.result is not None:
            _print_counts(e.result)
        raise _fail(
            EXIT_INPUT,
            f"input rejected: {e}. Quarantine kept in "
            f"{out_dir}.failed/; the previous output is untouched.",
        ) from None
    except InputError as e:
        raise _fail(EXIT_INPUT, f"input rejected: {e}") from None
    except (ConfigError, RulesError, PseudonymKeyError) as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    if quiet:
        return
    _print_summary(st)
    console.print(
        f"Output in {privacy.mask_name(str(out_dir))} (run {st.run_id}, reference date"
        f" {st.cfg.reference_date}).",
        highlight=False,
    )


def _checked_config(config: Path | None, **kw) -> Config:  # noqa: ANN003
    try:
        return _config(config, **kw)
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None


def _check_worklist(worklist: Path | None) -> int | None:
    """Parse and validate a `--worklist` file before any data is read, as `--rules`; the
    number of its reasons (None: no file given)."""
    if worklist is None:
        return None
    from pipeline.worklist import WorklistError, load_worklist

    try:
        return len(load_worklist(worklist).reasons)
    except WorklistError as e:
        raise _fail(EXIT_USAGE, str(e)) from None


def _check_rules(rules: Path | None) -> Rules | None:
    """Parse and validate a `--rules` file before any data is read: a typo is a usage error
    (exit 2) at once, not after the export has been ingested. None (the shipped rules,
    checked by the tests) gives None."""
    if rules is None:
        return None
    from pipeline.rules import RulesError, load_rules

    try:
        return load_rules(rules)
    except RulesError as e:
        raise _fail(EXIT_USAGE, str(e)) from None


@app.command(cls=_Command)
def run(
    input: InputOpt,
    out: OutOpt,
    config: ConfigOpt = None,
    rules: RulesOpt = None,
    reference_date: RefOpt = None,
    min_cell: MinCellOpt = None,
    lang: LangOpt = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet/--no-quiet", "-q",
                     help="Print nothing but errors (for cron and timers)."),
    ] = False,
    worklist: WorklistOpt = None,
) -> None:
    """Run every stage: ingest -> segment -> report.

    Example: m3-profiles run --input data/raw --out data/out
    """
    from pipeline.runner import STAGES

    cfg = _checked_config(config, reference_date=reference_date, min_cell=min_cell, lang=lang)
    _check_rules(rules)
    _check_worklist(worklist)
    _run(STAGES, out, cfg, quiet=quiet, input_dir=input, rules_path=rules, config_path=config,
         worklist_path=worklist)


@app.command(cls=_Command)
def ingest(
    input: InputOpt,
    out: OutOpt,
    config: ConfigOpt = None,
    reference_date: RefOpt = None,
    rules: IgnoredRulesOpt = None,
    min_cell: IgnoredMinCellOpt = None,
    lang: IgnoredLangOpt = None,
) -> None:
    """Load the export into the warehouse's raw, staging and quarantine layers.

    Example: m3-profiles ingest --input data/raw --out data/out
    """
    cfg = _checked_config(config, reference_date=reference_date, min_cell=min_cell, lang=lang)
    _check_rules(rules)
    _run(("ingest",), out, cfg, input_dir=input, rules_path=rules, config_path=config)


@app.command(cls=_Command)
def segment(
    out: OutOpt,
    config: ConfigOpt = None,
    rules: RulesOpt = None,
    reference_date: RefOpt = None,
    min_cell: IgnoredMinCellOpt = None,
    lang: IgnoredLangOpt = None,
    input: Annotated[Path | None, typer.Option("--input", hidden=True)] = None,
) -> None:
    """Assign profiles, courses and time in M3 from what ingest stored.

    Example: m3-profiles segment --out data/out --rules my-rules.toml
    """
    cfg = _checked_config(config, reference_date=reference_date, min_cell=min_cell, lang=lang)
    _check_rules(rules)
    _run(("segment",), out, cfg, rules_path=rules, config_path=config)


@app.command(cls=_Command)
def report(
    out: OutOpt,
    config: ConfigOpt = None,
    rules: Annotated[
        Path | None,
        _option("--rules", shown="the rules segment used",
                help="Profile rules file; refused unless it is the one segment used."),
    ] = None,
    reference_date: RefOpt = None,
    min_cell: MinCellOpt = None,
    lang: LangOpt = None,
    input: Annotated[Path | None, typer.Option("--input", hidden=True)] = None,
    worklist: WorklistOpt = None,
) -> None:
    """Count, suppress and publish the profile tables from what segment stored; write the
    internal re-review worklist.

    Example: m3-profiles report --out data/out --min-cell 5 --lang en
    """
    cfg = _checked_config(config, reference_date=reference_date, min_cell=min_cell, lang=lang,
                          resolve=False)
    _check_rules(rules)
    _check_worklist(worklist)
    _run(("report",), out, cfg, rules_path=rules, config_path=config, worklist_path=worklist)


@app.command(cls=_Command)
def explain(
    citizen_id: Annotated[str, typer.Argument(help="The citizen's id, as in citizens.parquet.")],
    out: ReadOutOpt,
    config: ConfigOpt = None,
    lang: LangOpt = None,
) -> None:
    """Say why a citizen has their profile: the rules' flags, or the model's evidence per flag
    (the note's words and the history that weighed most, with their weights).

    Example: m3-profiles explain B0000042 --out data/out --lang en
    """
    import duckdb

    from pipeline import model
    from pipeline.runner import DB_NAME

    cfg = _checked_config(config, lang=lang)
    db = Path(cfg.database) if cfg.database else Path(out) / DB_NAME
    if not db.exists():
        raise _fail(2, f"{db}: no warehouse here; run m3-profiles first")
    con = duckdb.connect(str(db), read_only=True)
    try:
        typer.echo(model.explain_text(con, citizen_id, cfg.lang), nl=False)
    except KeyError as e:
        raise _fail(1, e.args[0]) from None
    finally:
        con.close()


@app.command(cls=_Command)
def validate(
    input: Annotated[
        Path | None,
        _option(
            "--input", shown="none",
            help="Folder with the citizens and episodes files (.csv, .xlsx or .parquet) to check.",
        ),
    ] = None,
    config: ConfigOpt = None,
    rules: Annotated[
        Path | None,
        _option("--rules", shown="none",
                help="Profile rules file to check (checked before the export)."),
    ] = None,
    reference_date: RefOpt = None,
    worklist: Annotated[
        Path | None,
        _option("--worklist", shown="none",
                help="Worklist rules file to check (before the export)."),
    ] = None,
) -> None:
    """Check an export, a rules file or both without writing anything: exit 0 if they would
    load, 2 if the rules file (or config) is invalid, 3 if the export would be refused.

    --rules alone reads no data; with both, the rules are checked first. --worklist checks a
    worklist rules file the same way.

    Example: m3-profiles validate --input path/to/export --rules my-rules.toml
    """
    if input is None and rules is None and worklist is None:
        raise _fail(EXIT_USAGE, "nothing to check: give --input FOLDER, --rules FILE or both")
    reasons = _check_worklist(worklist)
    if reasons is not None:
        console.print(f"The worklist file {escape(privacy.mask_name(str(worklist)))} is valid:"
                      f" {reasons} reasons.", highlight=False, soft_wrap=True)
    with _stoppable("the check did not finish (validate writes nothing)"):
        _validate(input, config, rules, reference_date)


def _validate(
    input: Path | None, config: Path | None, rules: Path | None, reference_date: dt.date | None
) -> None:
    checked = _check_rules(rules)
    if checked is not None:
        console.print(
            f"The rules file {escape(privacy.mask_name(str(rules)))} is valid: version"
            f" {checked.version}, "
            f"{len(checked.rules)} rules, {len(checked.base_rules)} base rules.",
            highlight=False,
            soft_wrap=True,
        )
    if input is None:
        if config is not None:
            _checked_config(config, reference_date=reference_date)
        return
    from pipeline.ingest import validate as validate_input

    cfg = _checked_config(config, reference_date=reference_date)
    try:
        with _Steps() as steps, _environment():
            result, rows = validate_input(cfg, input, steps)
    except RejectedError as e:
        if e.result is not None:
            _print_counts(e.result)
        raise _fail(EXIT_INPUT, f"would be rejected: {e}") from None
    except InputError as e:
        raise _fail(EXIT_INPUT, f"would be rejected: {e}") from None
    except PseudonymKeyError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    _print_counts(result)
    if rows:
        t = Table(title=f"Quarantined rows ({len(rows):,} problems)")
        for c in ("table", "file", "line", "column", "value", "reason"):
            t.add_column(c)
        for r in rows[:200]:
            t.add_row(*(str(v) if v is not None else "" for v in r))
        console.print(t)
        if len(rows) > 200:
            console.print(f"... and {len(rows) - 200:,} more.")
    console.print("The export would load.")


@app.command(cls=_Command)
def history(
    out: ReadOutOpt,
    config: ConfigOpt = None,
) -> None:
    """List the nights the history keeps, the profile changes between the last two, and
    the cohort of the first night: how many are still in scope 1, 3, 6 and 12 months later.

    Internal: the counts are not suppressed (the history is per person). Reads the history
    folder (config history_dir, default <out>.history) and writes nothing.

    Example: m3-profiles history --out data/out
    """
    from pipeline import history as history_mod

    cfg = _checked_config(config)
    folder = history_mod.folder(cfg, out)
    try:
        history_mod.check(folder)
    except OutputError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    with _environment():
        kept = history_mod.nights(folder)
        moved = history_mod.changes(folder)
        across = history_mod.cohort(folder)
    if not kept:
        console.print(f"No nights in {escape(privacy.mask_name(str(folder)))} yet: each "
                      "successful run adds its night.", highlight=False, soft_wrap=True)
        return
    t = Table(title=f"Nights kept in {privacy.mask_name(str(folder))} (internal)")
    sources = sorted({k for n in kept for k in n.by_source})
    for c in ("reference date", "run", "citizens", "in scope", *sources):
        t.add_column(c, justify="left" if c in ("reference date", "run") else "right")
    for n in kept:
        t.add_row(n.reference_date.isoformat(), n.run_id, f"{n.citizens:,}", f"{n.in_scope:,}",
                  *(f"{n.by_source.get(k, 0):,}" for k in sources))
    console.print(t)
    if moved is None:
        return
    before, after, rows = moved
    t = Table(title=f"From {before} to {after}: citizens by profile (internal, unsuppressed)")
    for c in ("from", "to", "citizens"):
        t.add_column(c, justify="right" if c == "citizens" else "left")
    for f, to, n in rows:
        t.add_row(f, to, f"{n:,}", style=None if f != to else "dim")
    console.print(t)
    if across is not None:
        console.print(_cohort_table(across))


def _cohort_table(across: Any) -> Table:
    """`history`'s cohort across nights: per state on the first night, its citizens still in
    scope at each horizon, and where the others are on the latest night."""
    from pipeline import history as history_mod

    count: dict[tuple[str, str, str], int] = {(h, s, st): n for h, s, st, n in across.rows}
    states = sorted({s for _, s, _, _ in across.rows})
    t = Table(title=f"The cohort of {across.start} (in scope that night): where its citizens "
                    "are on later nights (internal, unsuppressed)")
    t.add_column(f"on {across.start}")
    t.add_column("citizens", justify="right")
    for h, night in across.nights:
        t.add_column(f"in scope {'on ' if h == history_mod.LATEST else h + ', '}{night}",
                     justify="right")
    t.add_column("out of scope, latest", justify="right")
    t.add_column("not in the export, latest", justify="right")
    first = across.nights[0][0]
    for s in states:
        n = sum(v for (h, st, _), v in count.items() if h == first and st == s)
        cells = []
        for h, _ in across.nights:
            k = count.get((h, s, history_mod.IN_M3), 0)
            cells.append(f"{k:,} ({k / n:.0%})")
        t.add_row(s, f"{n:,}", *cells,
                  *(f"{count.get((history_mod.LATEST, s, st), 0):,}"
                    for st in (history_mod.NOT_IN_M3, history_mod.NOT_IN_EXPORT)))
    return t


@app.command(cls=_Command)
def movement(
    out: ReadOutOpt,
) -> None:
    """Who leaves match group 3, from which profile, and how fast (definitions §8).

    The cohort in M3 a year before the reference date, by profile: its status 1, 3, 6 and
    12 months later with 95 % intervals; and the time to leave M3 (Kaplan-Meier). Reads
    the warehouse segment built; internal (unsuppressed counts); writes nothing.

    Example: m3-profiles movement --out data/out
    """
    import duckdb

    from pipeline import movement as mv
    from pipeline.runner import DB_NAME

    db = out / DB_NAME
    if not db.is_file():
        raise _fail(EXIT_INPUT, f"{db}: no warehouse; run 'm3-profiles run' first")
    with _environment():
        con = duckdb.connect(str(db), read_only=True)
        try:
            cohort = mv.cohort_status(con)
            spells = mv.survival(con)
        finally:
            con.close()
    if cohort is None:
        console.print("No citizen with a profile was in M3 on the cohort date.")
    else:
        t = Table(title=f"Citizens in M3 on {cohort.cohort_date}, by profile: status later "
                  "(share, 95 % interval; internal, unsuppressed)")
        t.add_column("profile")
        t.add_column("cohort", justify="right")
        for h, day in cohort.horizons:
            t.add_column(f"{h} ({day})")
        for profile, n in cohort.cohort.items():
            cells = []
            for h, _ in cohort.horizons:
                parts = []
                for st in mv.STATUSES:
                    s = cohort.shares[(profile, h, st)]
                    if s.n:
                        parts.append(f"{st} {100 * s.share:.0f}% ({100 * s.low:.0f}-"
                                     f"{100 * s.high:.0f})")
                cells.append("\n".join(parts))
            t.add_row(profile, f"{n:,}", *cells)
        console.print(t)
    t = Table(title="Time to leave M3 by profile, Kaplan-Meier (days; internal)")
    for c in ("profile", "spells", "left", "still in M3 after 1 year", "25 % left",
              "median", "75 % left"):
        t.add_column(c, justify="left" if c == "profile" else "right")
    for profile, s in spells.items():
        est, lo, hi = s.after_1y
        q = [f"{mv.fmt_days(e)} ({mv.fmt_days(a)}-{mv.fmt_days(b)})"
             for e, a, b in (s.quartiles[k] for k in ("q25", "median", "q75"))]
        t.add_row(profile, f"{s.spells:,}", f"{s.left:,}",
                  f"{100 * est:.0f}% ({100 * lo:.0f}-{100 * hi:.0f})", *q)
    console.print(t)


@app.command(cls=_Command)
def demo(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for citizens.csv and episodes.csv (made if missing)."),
    ],
    citizens: Annotated[int, typer.Option("--citizens", min=1, help="Citizens to make.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    scenario: Annotated[str, typer.Option("--scenario", help="Calibration scenario.")] = "faxe",
    reference_date: Annotated[dt.date | None, _ref_option("today")] = None,
    unreviewed_share: Annotated[
        float,
        typer.Option(
            "--unreviewed-share",
            min=0.0,
            max=1.0,
            help="Share of citizens whose case was not reviewed (reviewed = nej, flags empty).",
        ),
    ] = 0.2,
    dirty: Annotated[
        bool,
        typer.Option("--dirty/--no-dirty",
                     help="Add a few bad rows of each kind in the data contract."),
    ] = False,
    series: Annotated[
        int,
        typer.Option("--series", min=0, help="Write this many exports of one evolving "
                     "population, one folder per reference date, the last on "
                     "--reference-date (0: one export)."),
    ] = 0,
    every: Annotated[
        int, typer.Option("--every", min=1, help="Days between the exports of --series.")
    ] = 30,
) -> None:
    """Write a synthetic export calibrated to the Faxe report (citizens.csv, episodes.csv).

    Example: m3-profiles demo --out data/raw --citizens 10000 --seed 42

    A series, for the history (README, History): m3-profiles demo --out data/series
    --series 12 --every 30 writes data/series/<date>/ for 12 nights 30 days apart.
    """
    from pipeline.demo import write_demo

    if scenario != "faxe":
        raise _fail(EXIT_USAGE, f"unknown scenario {scenario!r}; expected faxe")
    ref = reference_date or dt.date.today()
    where = privacy.mask_name(str(out))
    if series:
        with _stoppable(f"the series is not whole; {where} holds the nights written so far"):
            _demo_series(out, citizens, seed, ref, series, every, unreviewed_share)
        return
    with _stoppable(f"no demo files were written; {where} is as it was"), _Steps() as steps, \
            _environment():
        steps(f"generating {citizens:,} citizens (seed {seed}, reference date {ref})")
        result = write_demo(
            out,
            n=citizens,
            seed=seed,
            reference_date=ref,
            unreviewed_share=unreviewed_share,
            dirty=dirty,
            scenario=scenario,
        )
    t = Table(title="Demo calibration: achieved vs target")
    for c in ("item", "target", "achieved"):
        t.add_column(c, justify="left" if c == "item" else "right")
    for item in result.calibration:
        t.add_row(item.name, f"{item.target:.0%}", f"{item.achieved:.1%}")
    console.print(t)
    console.print(
        f"Wrote {result.n_citizens:,} citizens and {result.n_episodes:,} episodes to {out}.",
        highlight=False,
    )


def _demo_series(out: Path, citizens: int, seed: int, ref: dt.date, nights: int, every: int,
                 unreviewed_share: float) -> None:
    from pipeline.demo_series import write_series

    with _Steps() as steps, _environment():
        steps(f"generating {nights} exports of {citizens:,} citizens, {every} days apart, the "
              f"last on {ref} (seed {seed})")
        written = write_series(out, citizens, seed, ref, nights, every, unreviewed_share)
    t = Table(title="Demo series: one population over time")
    for c in ("reference date", "in M3", "left M3", "entered", "reviewed", "diagnosed"):
        t.add_column(c, justify="left" if c == "reference date" else "right")
    for n in written:
        t.add_row(n.reference_date.isoformat(), f"{n.in_m3:,}", f"{n.left:,}",
                  f"{n.entered:,}", f"{n.reviewed:,}", f"{n.diagnosed:,}")
    console.print(t)
    console.print(f"Wrote {len(written)} exports to {out}/<reference date>/.", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()
