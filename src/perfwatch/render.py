"""Rich renderings of what the services report, for people (the JSON is for scripts)."""

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _day(iso: str | None) -> str:
    return "–" if iso is None else iso[:16].replace("T", " ")


def service_line(service: dict[str, Any]) -> Text:
    """The daemon (alive, or when last seen) and any webhook messages still waiting."""
    daemon = service["daemon"]
    line = Text("daemon: ", style="bold")
    if daemon["state"] == "never_started":
        line.append("never started on this store (`perfwatch run`)")
    elif daemon["state"] == "running":
        line.append("running", style="green")
        line.append(
            f" (pid {daemon['pid']} on {daemon['host']}, heartbeat {_at(daemon['heartbeat_at'])})"
        )
    else:
        style = "yellow" if daemon["state"] == "stopped" else "red"
        line.append(daemon["state"], style=style)
        line.append(
            f" · last seen {_at(daemon['heartbeat_at'])} (pid {daemon['pid']} on {daemon['host']})"
        )
    for standby in service["standby"]:
        line.append(f" · standby on {standby['host']} (pid {standby['pid']})", style="cyan")
    backlog = service["notifications"]
    if backlog["pending"]:
        line.append(
            f"\nnotifications: {backlog['pending']} waiting since {_at(backlog['oldest'])}",
            style="yellow",
        )
        if backlog["last_error"]:
            line.append(f" · last error: {backlog['last_error']}")
    return line


def _at(iso: str | None) -> str:
    return f"{iso[:19].replace('T', ' ')} UTC" if iso else "-"


def status_screen(item: dict[str, Any]) -> RenderableType:
    """One model's status: header lines, the estimate tables, alerts, findings."""
    parts: list[RenderableType] = [_header(item)]
    complete, latest = item["latest_complete_estimate"], item["latest_estimate"]
    if complete is None and latest is None:
        parts.append(Text("no estimates yet: drop batch files into the inbox and run a cycle"))
    if complete is not None:
        parts.append(_estimate_table("latest complete chunk", complete, item.get("trend")))
    if latest is not None and latest["provisional"]:
        parts.append(_estimate_table("current chunk (incomplete: never alerts)", latest))
    if item["latest_realized"] is not None:
        parts.append(_realized_table(item["latest_realized"]))
    if item["labels"] is not None:
        parts.append(_labels_line(item["labels"]))
    if item["feature_drift"] is not None:
        parts.append(_drift_line(item["feature_drift"]))
    retrain = item["retrain"]
    if retrain.get("reason") and retrain["state"] != "healthy":
        state = retrain["state"].replace("_", " ")
        parts.append(Text(f"retrain: {state} · {retrain['reason']}", style="bold"))
    if retrain["last"] is not None:
        last = retrain["last"]
        outcome = (
            f"failed: {last['error']} (the champion stays)"
            if last["status"] == "failed"
            else f"{last['decision']}" + (f" as v{last['version']}" if last["version"] else "")
        )
        parts.append(Text(f"last retrain ({last['trigger']}): {outcome}"))
    if item["alerts"]:
        parts.append(Text("open alerts", style="bold red"))
        parts += [
            Text(f"  {a['kind']} · {a['subject']}: {a['message']}", style="red")
            for a in item["alerts"]
        ]
    if item["data_quality"]:
        findings = ", ".join(
            f"{f['column']} {f['kind'].replace('_', ' ')} ×{f['count']}"
            for f in item["data_quality"]
        )
        parts.append(Text(f"data quality (newest chunk): {findings}", style="yellow"))
    if item["quarantined"]:
        parts.append(
            Text(f"quarantined files ({item['batches_quarantined']}, newest first)", style="yellow")
        )
        parts += [
            Text(f"  {q['file']}: {q['reason']}")
            if not q.get("fixed_at")
            else Text(f"  {q['file']}: fixed copy ingested {_day(q['fixed_at'])} UTC", style="dim")
            for q in item["quarantined"]
        ]
    return Group(*parts, Text(""))


STATE_WORDS = {
    "failing": "CYCLE FAILING",
    "alert": "ALERT",
    "under_bar": "UNDER THE BAR",
    "unreliable": "ESTIMATE UNRELIABLE",
    "ok": "ok",
    "new": "no cycle yet",
}
STATE_STYLES = {"failing": "bold red", "alert": "bold red", "under_bar": "bold red"}
STATE_STYLES |= {"unreliable": "bold yellow", "ok": "green", "new": "yellow"}


def fleet_table(report: list[dict[str, Any]]) -> RenderableType:
    """Many models on one screen: a row each, those that need a look first."""
    order = list(STATE_WORDS)
    table = Table(title=f"{len(report)} models (`perfwatch status MODEL` for one)")
    for column in ("model", "state", "champion", "worst metric vs its bar", "open alerts"):
        table.add_column(column)
    for item in sorted(report, key=lambda i: (order.index(i["state"]), i["name"])):
        kinds = sorted({a["kind"] for a in item["alerts"]})
        champion = item["champion_version"]
        table.add_row(
            item["name"],
            Text(STATE_WORDS[item["state"]], style=STATE_STYLES[item["state"]]),
            f"v{champion}" if champion else "–",
            _worst(item["latest_complete_estimate"]),
            f"{len(item['alerts'])} ({', '.join(kinds)})" if kinds else "–",
        )
    states = {s: sum(i["state"] == s for i in report) for s in order}
    counts = " · ".join(f"{n} {STATE_WORDS[s]}" for s, n in states.items() if n)
    return Group(table, Text(counts))


def _worst(estimate: dict[str, Any] | None) -> str:
    """The metric with the least room over its bar (else its threshold)."""
    rooms = []
    for metric, figures in (estimate or {}).get("metrics", {}).items():
        floor = figures["bar"] if figures["bar"] is not None else figures["threshold"]
        if figures["value"] is not None and floor is not None:
            rooms.append((figures["value"] - floor, metric, figures["value"], floor))
    if not rooms:
        return "–"
    _, metric, value, floor = min(rooms)
    return f"{metric} {_num(value)} (bar {_num(floor)})"


def _last_failure(failure: dict[str, Any]) -> str:
    """`last failure: 31 cycles 07:40-07:41 UTC · error: the store was unreachable: ...`"""
    first, last = _day(failure["first_at"]), _day(failure["last_at"])
    span = f"{first}-{last[-5:] if first[:-5] == last[:-5] else last}" if first != last else last
    cycles = f"{failure['cycles']} cycles" if failure["cycles"] > 1 else "a cycle"
    return f"last failure: {cycles} at {span} UTC · error: {failure['error']}"


def _header(item: dict[str, Any]) -> Text:
    state = item.get("state", "ok")
    champion = item["champion_version"]
    header = Text.assemble(
        (item["name"], "bold"), (f" {STATE_WORDS[state]}", STATE_STYLES[state]), "\n"
    )
    lines = [f"champion: {'v' + str(champion) if champion else 'none registered yet'}"]
    cycle = item["last_cycle"]
    if cycle and cycle["status"] == "failed":
        streak = cycle.get("failed_in_a_row", 1)
        lines.append(
            f"last cycle: FAILED at {_day(cycle['finished_at'] or cycle['started_at'])} UTC"
            + (
                f" ({streak} in a row, since {_day(cycle['failing_since'])} UTC)"
                if streak > 1
                else ""
            )
            + f" · error: {cycle['error']}"
        )
    elif cycle:
        when = _day(cycle["finished_at"] or cycle["started_at"])
        error = f" · error: {cycle['error']}" if cycle["error"] else ""
        lines.append(f"last cycle: {cycle['status']} at {when} UTC{error}")
        if item.get("last_failure"):
            lines.append(_last_failure(item["last_failure"]))
    else:
        lines.append("last cycle: never (run `perfwatch run --once`)")
    lines.append(
        f"ingested: {item['batches_ingested']} batches, {item['rows_ingested']:,} rows"
        f" · quarantined: {item['batches_quarantined']}"
    )
    waiting = item.get("waiting")
    if waiting and (waiting["batches"] or waiting["labels"]):
        lines.append(
            f"waiting: {waiting['batches']} batch file(s), {waiting['labels']} label file(s)"
            f" in the inboxes (oldest {_day(waiting['oldest'])} UTC)"
        )
    return header + Text("\n".join(lines))


def _estimate_table(
    title: str, estimate: dict[str, Any], trend: dict[str, Any] | None = None
) -> RenderableType:
    caption = Text(
        f"{title}: {_day(estimate['chunk_start'])} → {_day(estimate['chunk_end'])}"
        f" · {estimate['rows']:,} rows",
        style="bold",
    )
    table = Table(expand=False)
    early = [f for f in estimate["metrics"].values() if f.get("adjusted_reason") is None]
    adjusted = not estimate["provisional"] and any(f.get("adjusted") is not None for f in early)
    # the bar, where it is the threshold, says nothing new: its column goes (80 columns)
    distinct = any(f.get("bar") != f["threshold"] for f in estimate["metrics"].values())
    bar = distinct or not adjusted
    columns = ["metric", "estimate", *(["adjusted"] if adjusted else []), "band", "threshold"]
    columns += [*(["bar"] if bar else []), "state", *(["trend"] if trend else [])]
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in ("estimate", "adjusted", "threshold", "bar") else "left",
        )
    unreliable = estimate.get("reliable") is False
    for metric, figures in estimate["metrics"].items():
        if figures["alert"]:
            state = "[red]ALERT[/]"
        elif figures.get("adjusted_alert"):  # it alerts after 2 chunks under (alert_on)
            state = "[yellow]adj. under[/]"
        elif figures.get("under_bar"):
            state = "[yellow]under the bar[/]"
        elif unreliable:  # an estimate nobody should trust is never plainly "ok"
            state = "[yellow]unreliable[/]"
        else:  # an incomplete chunk's trust is not measured yet
            state = "provisional" if estimate["provisional"] else "ok"
        cells = [
            metric,
            _num(figures["value"]),
            *([_adjusted_cell(figures)] if adjusted else []),
            f"{_num(figures['lower'])}–{_num(figures['upper'])}",
            _num(figures["threshold"]),
            *([_num(figures.get("bar"))] if bar else []),
            state,
        ]
        if trend:
            cells.append(_trend_cell(trend.get(metric)))
        table.add_row(*cells)
    notes = []
    if unreliable:
        notes.append(Text(f"estimate unreliable: {estimate['trust_reason']}", style="yellow"))
    reasons = {f.get("adjusted_reason") for f in estimate["metrics"].values()} - {None}
    if adjusted:
        labels = max(f.get("adjusted_labels") or 0 for f in early)
        notes.append(Text(f"adjusted: CBPE corrected by the {labels:,} labels arrived so far"))
    elif reasons and not estimate["provisional"]:
        notes.append(Text(f"adjusted estimate: CBPE's ({', '.join(sorted(reasons))})"))
    return Group(caption, table, *notes)


def _adjusted_cell(figures: dict[str, Any]) -> str:
    """The delay-adjusted estimate ("–" where it is CBPE's)."""
    if figures.get("adjusted") is None or figures.get("adjusted_reason"):
        return "–"
    return _num(figures["adjusted"])


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], low: float, high: float) -> str:
    """One character per value, scaled between low and high; a gap where there is none."""
    span = (high - low) or 1.0
    return "".join(
        " " if v is None else SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))]
        for v in values
    )


def _trend_cell(trend: dict[str, list[float | None]] | None) -> Text:
    """The newest complete chunks: estimated (blue) over realized where known (green),
    on one scale, so a gap between the two lines reads as concept drift."""
    if not trend:
        return Text("")
    known = [v for v in (*trend["estimated"], *trend["realized"]) if v is not None]
    low, high = min(known), max(known)
    cell = Text(sparkline(trend["estimated"], low, high), style="blue")
    if any(v is not None for v in trend["realized"]):
        cell.append("\n" + sparkline(trend["realized"], low, high), style="green")
    return cell


def _realized_table(realized: dict[str, Any]) -> RenderableType:
    coverage = realized["label_coverage"]
    caption = Text(
        f"latest labeled chunk: {_day(realized['chunk_start'])} → {_day(realized['chunk_end'])}"
        f" · {realized['labeled_rows']:,} labeled rows"
        + (f" ({coverage:.0%} coverage)" if coverage is not None else ""),
        style="bold",
    )
    table = Table(expand=False)
    for column in ("metric", "realized", "estimated", "difference", "concept impact", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    for metric, figures in realized["metrics"].items():
        if figures["concept_drift"]:
            verdict = "[red]CONCEPT DRIFT[/]"
        elif figures["out_of_band"]:
            verdict = "[yellow]outside the band[/]"
        else:
            verdict = "as estimated"
        if figures.get("under_bar"):
            verdict += f" · [red]under the bar {_num(figures['bar'])}[/]"
        table.add_row(
            metric,
            _num(figures["value"]),
            _num(figures["estimated"]),
            "–" if figures["magnitude"] is None else f"{figures['magnitude']:+.3f}",
            "–" if figures["impact"] is None else f"{figures['impact']:+.3f}",
            verdict,
        )
    return Group(caption, table)


def _labels_line(labels: dict[str, Any]) -> Text:
    newest = labels["newest_chunk"]
    parts = [f"labels: {labels['stored']:,} stored, {labels['held']:,} held (row not seen yet)"]
    if labels["conflicts"]:
        parts.append(f"{labels['conflicts']} conflicting (recorded, not applied)")
    if labels["files_quarantined"]:
        parts.append(f"{labels['files_quarantined']} label file(s) quarantined")
    if newest is not None and newest["label_coverage"] is not None:
        state = "mature" if newest["mature"] else "not mature yet"
        parts.append(
            f"newest labeled chunk {_day(newest['chunk_start'])}:"
            f" {newest['label_coverage']:.0%} covered, {state}"
        )
    return Text(" · ".join(parts))


def _drift_line(drift: dict[str, Any]) -> Text:
    drifting = [
        ("all features" if name.startswith("__") else name, figures)
        for name, figures in drift["features"].items()
        if figures["alert"]
    ]
    if not drifting:
        return Text(f"feature drift ({_day(drift['chunk_start'])}): none confirmed")
    named = ", ".join(f"{name} {_drift_figure(figures)}" for name, figures in drifting)
    return Text(f"feature drift ({_day(drift['chunk_start'])}): {named}", style="yellow")


def _drift_figure(figures: dict[str, Any]) -> str:
    """A drifting feature's figure: its distance, or its test's statistic and p-value."""
    p_value = figures.get("p_value")
    if p_value is None:
        return f"{figures['value']:.3f}"
    return f"{figures['method']} {figures['value']:.3f} (p {p_value:.2g})"


def history_table(model: str, rows: list[dict[str, Any]]) -> RenderableType:
    """Fits 80 columns: the band is left to --json/--csv and the report; the threshold
    shown is the one in force (never under the bar)."""
    if not rows:
        return Text(f"{model}: no estimates yet")
    table = Table(
        title=f"{model}: history",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        show_edge=False,
    )
    daily = all(r["chunk_start"][11:16] == "00:00" for r in rows)
    for column in ("chunk", "v", "metric", "est.", "thr.", "state", "real.", "cov."):
        table.add_column(
            column,
            justify="left" if column in ("chunk", "metric", "state") else "right",
            no_wrap=True,
        )
    for row in rows:
        marks = ["[red]ALERT[/]"] if row["alert"] else []
        marks += ["[yellow]unreliable[/]"] if row.get("reliable") is False else []
        state = " ".join(marks) or ("provisional" if row["provisional"] else "ok")
        if row["concept_drift"]:
            state += " [red]DRIFT[/]"
        table.add_row(
            row["chunk_start"][:10] if daily else _day(row["chunk_start"])[5:],
            f"v{row['model_version']}",
            row["metric"],
            _num(row["estimated"]),
            _num(row["threshold"]),
            state,
            _num(row["realized"]),
            "–" if row["label_coverage"] is None else f"{row['label_coverage']:.0%}",
        )
    return table


def demo_day(day: Any) -> str:
    """One line per replayed day of the demo."""
    figures = " ".join(f"{metric} {value:.3f}" for metric, value in day.estimates.items())
    figures = figures or "(no complete chunk yet)"
    notes = "".join(f" · [yellow]quarantined {name}[/]" for name in day.quarantined)
    notes += "".join(f" · {name} was a duplicate" for name in day.duplicates)
    alert = " [red]ALERT[/]" if day.alert else ""
    if day.adjusted_auc is not None:
        notes = f" · adjusted roc_auc {day.adjusted_auc:.3f}" + notes
    if day.realized_chunk is not None:
        auc = day.realized.get("roc_auc")
        realized = f"roc_auc {auc:.3f}" if auc is not None else "judged"
        drift = " [red]CONCEPT DRIFT[/]" if day.concept_drift else ""
        notes += f" · labels {day.realized_chunk:%m-%d}: realized {realized}{drift}"
    notes += "".join(f" · [bold]alert opened: {name}[/]" for name in day.opened)
    if day.retrained:
        notes += f" · [bold green]{escape(day.retrained)}[/]"
    return f"{day.day:%Y-%m-%d}  {day.rows:>6,} rows  {figures}{alert}{notes}"


def retrain_plan(model: str, plan: dict[str, Any]) -> RenderableType:
    """`retrain --dry-run`: the policy's decision, and the data a retrain would use."""
    decision = plan["decision"]
    style = "bold red" if decision["retrain"] else "bold"
    lines: list[RenderableType] = [
        Text(f"{model}: {decision['state'].replace('_', ' ')} · {decision['reason']}", style=style)
    ]
    training = plan["training_data"]
    lines.append(
        Text(
            ("not used (concept drift: the window's rows alone) · " if plan["sliding"] else "")
            + f"training set: {training['path'] or 'none registered'}"
            + (f" (sha256 {training['sha256'][:12]}…)" if training["sha256"] else "")
        )
    )
    window = plan["window"]
    learnt = plan["learnt_before"]
    lines.append(
        Text(
            f"appended: {plan['appended_rows']:,} labeled production rows from"
            f" {_day(window['start'])} to {_day(window['end'])}, {len(plan['batches'])} batch(es)"
            + (f"; {learnt:,} others are in the training set already" if learnt else "")
        )
    )
    holdout = plan["holdout"]
    lines.append(
        Text(
            f"held out for the gate: the newest {holdout['chunks']} chunk(s),"
            f" {holdout['rows']:,} labeled rows"
        )
    )
    if plan["problem"]:
        lines.append(Text(f"a retrain would fail now: {plan['problem']}", style="bold red"))
    if plan["extra_training_data"]:
        lines.append(Text(_extra_rows(plan["extra_training_data"])))
    if plan["batches"]:
        table = Table(expand=False)
        columns = ("batch file", "content hash", "labeled rows", "appended", "data from", "to")
        for column in columns:
            table.add_column(column)
        for batch in plan["batches"]:
            table.add_row(
                batch["file"],
                batch["content_hash"][:12] + "…",
                f"{batch['labeled_rows']:,}",
                f"{batch['appended_rows']:,}",
                _day(batch["data_start"]),
                _day(batch["data_end"]),
            )
        lines.append(table)
    return Group(*lines)


def versions_table(listed: dict[str, Any]) -> RenderableType:
    """`models MODEL`: one row per version, with its gate figures."""
    table = Table(title=f"{listed['model']}: versions", title_justify="left")
    for column in ("version", "status", "source", "parent", "trigger", "gate", "sha256"):
        table.add_column(column)
    for v in listed["versions"]:
        gate = v["gate"] or {}
        primary = gate.get("primary")
        figures = (
            f"{v.get('decision')}: {primary} {gate['challenger'][primary]:.3f}"
            f" vs {gate['champion'][primary]:.3f}"
            if primary and gate.get("challenger")
            else "–"
        )
        table.add_row(
            f"v{v['version']}",
            v["status"],
            v["source"],
            f"v{v['parent']}" if v["parent"] else "–",
            (v["trigger"] or {}).get("kind") or "–",
            figures,
            v["artifact_sha256"][:12] + "…",
        )
    champion = listed["champion"]
    return Group(table, Text(f"champion hand-off: {champion['path']} (v{champion['version']})"))


def lineage_text(model: str, chain: list[dict[str, Any]]) -> str:
    """`lineage MODEL`: each version back to the first, with what it learnt from."""
    lines = []
    for step in chain:
        lines.append(f"{model} v{step['version']} ({step['status']}, {step['source']})")
        if step["trigger"] is None:
            lines.append("  registered from outside (no parent)")
            continue
        trigger, data, gate = step["trigger"], step["training_data"], step["gate"]
        lines.append(
            f"  parent: v{step['parent']} · trigger: {trigger['kind']}: {trigger['reason']}"
        )
        alerts = ", ".join(f"#{a['id']} {a['kind']}/{a['subject']}" for a in trigger["alerts"])
        lines.append(f"  open alerts: {alerts or 'none'}")
        lines.append(
            f"  learnt from: {data['original']['rows']:,} original rows"
            f" (sha256 {str(data['original']['sha256'])[:12]}…) + {data['appended_rows']:,}"
            f" production rows from {len(data['batches'])} batch(es),"
            f" {data['window']['start']} → {data['window']['end']}"
        )
        for batch in data["batches"]:
            lines.append(f"    {batch['content_hash'][:16]}…  {batch['rows']:,} rows")
        if data.get("extra_training_data"):
            lines.append(f"  {_extra_rows(data['extra_training_data'])}")
        lines.append(f"  held out: {data['holdout']['rows']:,} rows · gate: {gate['reason']}")
    return "\n".join(lines)


def _extra_rows(check: dict[str, Any]) -> str:
    """The extra training rows' check: the file, its decision and why."""
    figures = [f"{check['rows']:,} rows"] if check.get("rows") else []
    if check.get("sha256"):
        figures.append(f"sha256 {check['sha256'][:12]}…")
    if check.get("domain_auc") is not None:
        figures.append(f"real-vs-extra ROC AUC {check['domain_auc']:.2f}")
    where = f"{check.get('path', '')} ({', '.join(figures)})" if figures else check.get("path", "")
    return f"extra training rows: {where}: {check['decision']}: {check['reason']}"


VERDICT_STYLE = {"aligned": "green", "review": "yellow", "misaligned": "bold red"}


def alignment_screen(alignment: dict[str, Any]) -> RenderableType:
    """`check --sample`'s comparison of the sample with the training data and reference."""
    verdict = alignment["verdict"]
    head = Text("alignment: ", style="bold")
    head.append(verdict.upper(), style=VERDICT_STYLE[verdict])
    head.append(
        f" (a sample of {alignment['rows']:,} rows against the {alignment['compared_with']})"
    )
    reasons = [Text(f"  - {reason}") for reason in alignment["reasons"]]
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for column in ("feature", "test", "p (FDR)", "Jensen-Shannon", "outside support", ""):
        table.add_column(column, justify="left" if column in ("feature", "test") else "right")
    for f in alignment["features"]:
        p = f["p_adjusted"]
        table.add_row(
            escape(f["feature"]),
            f["test"],
            "–" if p != p else ("<0.001" if p < 0.001 else f"{p:.3f}"),
            _num(f["jensen_shannon"], 2),
            f"{f['outside']:.1%}",
            Text("shifted", style="yellow") if f["shifted"] else "",
        )
    lines = [
        f"expect {e['metric']} about {e['estimated']:.3f} in production"
        f" ({e['reference']:.3f} on the reference, threshold {_num(e['threshold'])})"
        for e in alignment["expected"]
    ]
    rate = alignment["positive_rate"]
    training = "–" if rate["training"] is None else f"{rate['training']:.1%}"
    lines.append(
        f"positive rate: {training} in the training data, {rate['reference']:.1%} in the reference"
    )
    coverage = alignment["coverage"]
    if coverage is not None:
        lines.append(
            f"time: training {coverage['training_start'][:10]} to {coverage['training_end'][:10]},"
            f" sample {coverage['sample_start'][:10]} to {coverage['sample_end'][:10]}"
            f" ({coverage['gap_days']:.0f} days later;"
            f" {coverage['unseen_hours']:.0%} at hours of day training never had)"
        )
    outside = (
        f"rows with any value outside the training support: {alignment['outside_support']:.1%}"
    )
    return Group(head, *reasons, table, *(Text(line) for line in [outside, *lines]))
