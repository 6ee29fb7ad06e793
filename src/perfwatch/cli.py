"""The `perfwatch` command line: parse, load settings, call one service, render.

Heavy libraries (pandas, nannyml, lightgbm, sklearn) are imported only inside the
commands that need them: `status` and `history` must answer in well under a second.
"""

import csv
import json
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from perfwatch import logs, stopping
from perfwatch.config import Settings, config_path, load_settings
from perfwatch.errors import ConfigError, PerfwatchError

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Engine

    from perfwatch.services.ingestion import FileOutcome
    from perfwatch.services.labels import LabelFileOutcome
    from perfwatch.services.monitor import CycleReport

app = typer.Typer(
    help="perfwatch keeps production ML models honest without waiting for labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
FLEET = 5  # more models than this: `status` shows one table, not a screen each
ModelName = Annotated[str, typer.Argument(help="The model (as named in the config).")]
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state: dict[str, Any] = {"config": None, "log_format": "text"}


class LogFormat(StrEnum):
    text = "text"
    json = "json"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (else $PERFWATCH_CONFIG, else config/perfwatch.toml).",
        show_default=False,
    ),
]


@app.callback()
def _global(
    config: ConfigOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step to stderr.")
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="Log lines for people (text) or one JSON object a line."),
    ] = LogFormat.text,
) -> None:
    _state["config"], _state["log_format"] = config, log_format.value
    logs.configure(verbose=verbose, fmt=log_format.value)


def _settings() -> Settings:
    return load_settings(config_path(_state["config"]))


def _engine(settings: Settings, *, migrate: bool = False) -> "Engine":
    from perfwatch.store import db

    engine = db.open_engine(settings.store)
    if migrate:
        db.migrate(engine)
    else:
        db.require_current_schema(engine)
    return engine


@app.command()
def init(
    example: Annotated[
        bool,
        typer.Option("--example", help="Print the commented example config (every key) and exit."),
    ] = False,
) -> None:
    """Write a commented config if none exists, then create or migrate the store."""
    from perfwatch.services.workspace import example_config, write_example_config

    if example:
        print(example_config(), end="")
        return
    path = config_path(_state["config"])
    if not path.exists():
        write_example_config(path)
        out.print(f"wrote {path}: edit it to describe your models, then run `perfwatch init` again")
        return
    settings = _settings()
    _engine(settings, migrate=True)
    for model in settings.models:
        for folder in (model.inbox, model.labels_inbox):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
    from perfwatch.store.db import safe_url

    out.print(f"store ready: {safe_url(settings.store)}")
    from perfwatch.services.preflight import preflight

    for model in settings.models:  # what the first cycle would trip on, said now
        result = preflight(model)
        for finding in result.findings:
            if not finding.ok:
                err.print(f"warning: {model.name}: {finding.check}: {finding.detail}", markup=False)
                if finding.fix:
                    err.print(f"  fix: {finding.fix}", markup=False)
        if not result.ok:
            err.print(f"  (`perfwatch check {model.name}` checks again)", markup=False)


@app.command()
def check(
    model: ModelName,
    sample: Annotated[
        Path | None,
        typer.Option(
            "--sample",
            help="A production batch file: checked against the contract, and compared with"
            " the training data and the reference.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check a model before its first cycle: files, the model scoring its reference as a
    cycle would feed it, the training data, a sample batch. With --sample, also whether the
    model is aligned with where it is deployed: the sample against the training data and
    the reference (per-feature tests, support, time coverage, expected performance).
    Exit 1 with every problem, or when the sample is misaligned."""
    from perfwatch.services.preflight import preflight

    result = preflight(_settings().model(model), sample)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print_preflight(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_preflight(result: Any) -> None:
    from perfwatch.render import alignment_screen

    for finding in result.findings:
        mark = "ok     " if finding.ok else "PROBLEM"
        out.print(f"{mark} {finding.check}: {finding.detail}", markup=False)
        if finding.fix:
            out.print(f"        fix: {finding.fix}", markup=False)
    if result.alignment is not None:
        out.print(alignment_screen(result.alignment.to_json()))


@app.command()
def run(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="What one daemon tick does, then exit: a cycle for every model, then the"
            " retrains the policy says are due.",
        ),
    ] = False,
    no_retrain: Annotated[
        bool, typer.Option("--no-retrain", help="With --once: cycles only, no retrain.")
    ] = False,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Only this model (repeatable).", show_default=False),
    ] = None,
    standby: Annotated[
        bool,
        typer.Option(
            "--standby",
            help="When another daemon leads on this store, stand by (shown in status) and"
            " take over within a heartbeat of its lease lapsing, instead of exiting 2.",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Recompute every estimate, realized metric and feature-drift figure with"
            " nannyml too and fail the cycle on a difference above 1e-9 (slower; also"
            " PERFWATCH_VERIFY=1).",
        ),
    ] = False,
) -> None:
    """Run the monitoring daemon (or one tick with --once). Exit 1 if a cycle or a retrain
    failed.

    The daemon holds the store: a second one on the same store refuses to start (exit 2),
    or with --standby waits to take over.
    SIGTERM or Ctrl-C stops it after the current step (exit 0); a second one at once."""
    settings = _settings()
    names = model or [m.name for m in settings.models]
    for name in names:
        settings.model(name)
    if verify:  # read by the cycles, and by the retrain workers the daemon starts
        os.environ["PERFWATCH_VERIFY"] = "1"
    engine = _engine(settings, migrate=True)
    told = bool(settings.webhooks) or settings.lineage is not None
    if told:
        from perfwatch.services.notify import deliver, watch

        watch(engine, settings)
    if once:
        from perfwatch.executor import open_executor
        from perfwatch.services.lease import ensure_free

        ensure_free(engine)
        executor = open_executor(engine, settings)
        try:
            reports = executor.cycles(names)
            for report in reports:
                _print_cycle(report)
            runs = [] if no_retrain else executor.retrains(names)
        finally:
            executor.close()
        for name, retrain_run in runs:
            summary = _retrain_outcome(engine, name, retrain_run)["summary"]
            out.print(f"{name}: {summary}", markup=False)
        if told:  # cron-friendly: what the cycles opened or closed goes out now
            sent = deliver(engine, settings)
            if sent.delivered or sent.failed:
                out.print(
                    f"notifications: {sent.delivered} delivered, {sent.failed} failed"
                    + (" (kept, retried on the next run)" if sent.failed else "")
                )
        failed = any(r.status not in ("ok", "skipped") for r in reports) or any(
            r.status == "failed" for _, r in runs
        )
        raise typer.Exit(1 if failed else 0)
    from perfwatch.daemon import serve

    if logging.getLogger().level > logging.INFO:  # a service says what it does
        logging.getLogger().setLevel(logging.INFO)
    serve(
        engine,
        settings,
        names,
        config=config_path(_state["config"]),
        log_format=_state["log_format"],
        standby=standby,
    )


def _print_cycle(report: "CycleReport") -> None:
    ingested = sum(1 for f in report.files if f.status == "ingested")
    outcomes: list[FileOutcome | LabelFileOutcome] = [*report.files, *report.label_files]
    quarantined = [f for f in outcomes if f.status == "quarantined"]
    labels = sum(f.stored for f in report.label_files)
    line = (
        f"{report.model}: {report.status} · {ingested} batch(es), {report.rows:,} rows ·"
        f" {labels:,} label(s) · {len(quarantined)} quarantined ·"
        f" {report.chunks_estimated} chunk(s) estimated, {report.judged.judged} judged"
    )
    out.print(line, markup=False)
    for outcome in quarantined:
        out.print(f"  quarantined {outcome.file_name}: {outcome.reason}", markup=False)
    for alert in report.alerts.opened:
        out.print(f"  alert opened: {alert.kind} · {alert.subject}: {alert.message}", markup=False)
    for alert in report.alerts.closed:
        out.print(f"  alert closed: {alert.kind} · {alert.subject}", markup=False)
    if report.error:
        err.print(f"error: {report.model}: {report.error}")


@app.command()
def status(
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 while an alert is open, a last cycle failed, or a model is under its bar.",
        ),
    ] = False,
) -> None:
    """One screen per model: estimates, realized metrics, drift, alerts, retrain state.
    More than 5 models: one table, a row per model (`status MODEL` for one)."""
    from perfwatch.services.status import model_status, service_status

    settings = _settings()
    names = [settings.model(model).name] if model else [m.name for m in settings.models]
    engine = _engine(settings)
    inboxes = {m.name: (m.inbox, m.labels_inbox) for m in settings.models}
    report, service = model_status(engine, names, inboxes), service_status(engine)
    if as_json:
        print(json.dumps({"models": report} | service, indent=2))
    else:
        from perfwatch.render import fleet_table, service_line, status_screen

        out.print(service_line(service))
        if len(report) > FLEET:
            out.print(fleet_table(report))
        for item in report if len(report) <= FLEET else []:
            out.print(status_screen(item))
    if check and any(item["state"] in ("alert", "failing", "under_bar") for item in report):
        raise typer.Exit(1)


@app.command()
def history(
    model: Annotated[str, typer.Argument(help="The model.")],
    metric: Annotated[str | None, typer.Option("--metric", help="Only this metric.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of rows.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """One row per chunk and metric: estimate, band, threshold, alert, realized, coverage."""
    from perfwatch.services.status import history as load_history

    if as_json and as_csv:
        raise ConfigError("--json and --csv exclude each other", hint="pick one")
    settings = _settings()
    config = settings.model(model)
    if metric is not None and metric not in config.metrics:
        raise ConfigError(
            f"model {model!r} does not measure {metric!r}",
            hint=f"its metrics: {', '.join(config.metrics)}",
        )
    rows = load_history(_engine(settings), model, metric)
    if as_json:
        print(json.dumps(rows, indent=2))
    elif as_csv:
        fields = list(rows[0]) if rows else ["chunk_start", "metric", "estimated"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        from perfwatch.render import history_table

        out.print(history_table(model, rows))


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="The model.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="The HTML file (default: perfwatch-MODEL.html here).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start the page at this date (YYYY-MM-DD, UTC).", show_default=False
        ),
    ] = None,
) -> None:
    """Write one self-contained HTML page of a model's history (works offline)."""
    settings = _settings()
    known = {m.name: m.metrics for m in settings.models}
    target = _write_report(_engine(settings), model, known, output, _day_option(since))
    out.print(f"report: {target}")


def _day_option(text: str | None) -> "datetime | None":
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date", hint="write it as YYYY-MM-DD"
        ) from None


def _write_report(
    engine: "Engine",
    model: str,
    known: dict[str, list[str]],
    output: Path | None,
    since: "datetime | None",
) -> Path:
    from perfwatch.report_page import page
    from perfwatch.services.report import report_data

    target = (output or Path(f"perfwatch-{model}.html")).absolute()
    if not target.parent.is_dir():
        raise ConfigError(
            f"cannot write the report to {target}: the folder {target.parent} does not exist",
            hint="create the folder first, or choose another path with -o",
        )
    text = page(report_data(engine, model, known, since))
    from perfwatch.files import write_atomically

    try:
        write_atomically(target, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {target}: {exc.strerror or exc}",
            hint="choose a folder you may write to, with -o",
        ) from None
    return target


@app.command()
def register(
    model: ModelName,
    artifact: Annotated[
        Path,
        typer.Option("--model", help="joblib/pickle file of the classifier (with predict_proba)."),
    ],
    reference: Annotated[
        Path,
        typer.Option(
            "--reference",
            help="Labeled reference set (Parquet/CSV) with features, target, timestamp.",
        ),
    ],
    training_data: Annotated[
        Path | None, typer.Option("--training-data", help="The data the model was trained on.")
    ] = None,
    sample: Annotated[
        Path | None,
        typer.Option(
            "--sample",
            help="A production batch file: first check the version against it as"
            " `perfwatch check --sample` does, and keep the check with the version.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --sample: register even when the check fails."),
    ] = False,
) -> None:
    """Add an externally trained version and make it the champion. With --sample, a
    version the check finds misaligned (or that fails a check) is not registered unless
    --force is given."""
    from perfwatch.services.registry import register_version

    settings = _settings()
    config = settings.model(model)
    checked = None
    if sample is not None:
        from perfwatch.services.preflight import preflight

        candidate = config.model_copy(
            update={
                "initial_model": artifact,
                "reference": reference,
                "training_data": training_data or config.training_data,
            }
        )
        checked = preflight(candidate, sample)
        _print_preflight(checked)
        if not checked.ok and not force:
            err.print(f"{model}: not registered: the check failed (--force registers it anyway)")
            raise typer.Exit(1)
    engine = _engine(settings, migrate=True)
    version = register_version(
        engine,
        settings,
        config,
        artifact=artifact,
        reference=reference,
        training_data=training_data,
        source="register",
    )
    if checked is not None and checked.alignment is not None:
        from perfwatch.services.alignment import record_check

        assert sample is not None
        record_check(engine, version, sample, checked.alignment)
    out.print(
        f"{model}: registered version {version.version} as champion"
        f" (sha256 {version.artifact_sha256[:12]}…)"
    )


@app.command()
def retrain(
    model: ModelName,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the decision and the data a retrain would use.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Stand in for the trigger and the cooldown.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Apply the retrain policy now; retrain when it is due (or --force), through the gate."""
    settings = _settings()
    engine = _engine(settings, migrate=True)
    config = settings.model(model)
    if dry_run:
        from perfwatch.services.training_rows import retrain_manifest

        manifest = retrain_manifest(engine, settings, config, force=force)
        if as_json:
            print(json.dumps(manifest.to_json(), indent=2))
            return
        from perfwatch.render import retrain_plan

        out.print(retrain_plan(model, manifest.to_json()))
        return
    import signal

    from perfwatch.services.retrain_job import run_retrain

    # a warm stop (the daemon forwards its SIGTERM): end after the current step, recorded
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.request())
    run = run_retrain(engine, settings, config, force=force)
    outcome = _retrain_outcome(engine, model, run)
    if as_json:
        print(json.dumps(outcome, indent=2))
    else:
        out.print(f"{model}: {outcome['summary']}", markup=False)
    if run is not None and run.status == "failed":
        raise typer.Exit(1)


def _retrain_outcome(engine: Any, model: str, run: Any) -> dict[str, Any]:
    from perfwatch.services.status import model_status

    if run is None:
        retrain = model_status(engine, [model])[0]["retrain"]
        return {"retrained": False, "summary": f"no retrain: {retrain.get('reason')}"}
    gate = json.loads(run.gate or "{}")
    summary = (
        f"retrain failed: {run.error} (the champion stays)"
        if run.status == "failed"
        else f"challenger {run.decision}: {gate.get('reason', '')}"
    )
    return {
        "retrained": True,
        "run": run.id,
        "status": run.status,
        "decision": run.decision,
        "gate": gate,
        "error": run.error,
        "summary": summary,
    }


@app.command()
def models(
    model: ModelName,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A model's versions with their gate results, and the champion's hand-off file."""
    from perfwatch.services.promotion import list_versions

    settings = _settings()
    listed = list_versions(_engine(settings), settings, settings.model(model))
    if as_json:
        print(json.dumps(listed, indent=2))
        return
    from perfwatch.render import versions_table

    out.print(versions_table(listed))


@app.command()
def lineage(
    model: ModelName,
    version: Annotated[int | None, typer.Argument(help="Default: the champion.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A version's chain back to the first: parent, trigger, training data, gate."""
    from perfwatch.services.promotion import lineage as load_lineage

    settings = _settings()
    chain = load_lineage(_engine(settings), settings.model(model), version)
    if as_json:
        print(json.dumps(chain, indent=2))
        return
    from perfwatch.render import lineage_text

    out.print(lineage_text(model, chain), markup=False)


@app.command()
def promote(
    model: ModelName,
    version: Annotated[int, typer.Argument(help="The version to make champion.")],
) -> None:
    """Make a version (a candidate, or an earlier champion) the champion."""
    from perfwatch.services.promotion import promote as promote_version

    settings = _settings()
    previous = promote_version(_engine(settings), settings, settings.model(model), version)
    out.print(f"{model}: version {version} is the champion (was v{previous})")


@app.command()
def rollback(
    model: ModelName,
) -> None:
    """Make the champion's parent (or the newest retired version) the champion again."""
    from perfwatch.services.promotion import rollback as roll_back

    settings = _settings()
    old, new = roll_back(_engine(settings), settings, settings.model(model))
    out.print(f"{model}: rolled back from v{old} to v{new}")


@app.command()
def rebaseline(
    model: ModelName,
) -> None:
    """Make the champion's thresholds the bar (by default the bar stays at version 1's)."""
    from perfwatch.services.promotion import rebaseline as set_bar

    settings = _settings()
    old, new = set_bar(_engine(settings), settings.model(model))
    out.print(
        f"{model}: the bar is now version {new}'s thresholds (was version {old}'s);"
        " estimates from the next cycle on are judged against it"
    )


@app.command()
def demo(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            help="Folder to build the demo in (default: a new temporary folder).",
            show_default=False,
        ),
    ] = None,
    scenario: Annotated[
        str,
        typer.Option(help="stable | covariate_shift | heat_wave | concept_drift | seasons | dirty"),
    ] = "heat_wave",
    days: Annotated[int, typer.Option(help="Days of production to replay.", min=8)] = 45,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 7,
    defects: Annotated[
        bool, typer.Option(help="Mix defective files (the dirty scenario's) into the replay.")
    ] = True,
) -> None:
    """Simulate a machine fleet, train and register a model, replay weeks through real cycles."""
    from perfwatch.services.demo import run_demo
    from perfwatch.services.status import model_status
    from perfwatch.simulate.fleet import SCENARIOS

    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}", hint=f"one of {', '.join(SCENARIOS)}")
    if workspace is not None and workspace.exists() and any(workspace.iterdir()):
        raise ConfigError(
            f"demo workspace {workspace} is not empty",
            hint="name a new folder (or an empty one), or leave out --workspace",
        )
    from perfwatch.render import alignment_screen, demo_day, status_screen

    result = run_demo(
        workspace=workspace,
        scenario=scenario,
        days=days,
        seed=seed,
        defects=defects,
        on_day=lambda day: out.print(demo_day(day)),
        on_check=lambda found: out.print(
            "version 1 checked against the first day's production before it goes out:",
            alignment_screen(found.to_json()),
        ),
        # two weeks of normal operation first (half the run when it is short), so the
        # retrained version has weeks to show its realized performance in
        shift_day=min(14, days // 2),
    )
    for item in model_status(result.engine, [result.model]):
        out.print(status_screen(item))
    from perfwatch.services.demo import after_retrain

    out.print(after_retrain(result.engine), markup=False)
    metrics = load_settings(result.config).model(result.model).metrics
    written = _write_report(
        result.engine, result.model, {result.model: metrics}, result.workspace / "report.html", None
    )
    out.print(
        f"\nworkspace: {result.workspace}\nreport: {written}\n  try: perfwatch --config"
        f" {result.config} history {result.model} --metric roc_auc"
    )


def main() -> None:
    """Entry point: expected failures print `error:` and `hint:`, never a traceback."""
    try:
        app()
    except PerfwatchError as exc:
        err.print(f"error: {exc.message}", markup=False)
        if exc.hint:
            err.print(f"hint: {exc.hint}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
