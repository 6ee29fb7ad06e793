"""The HTML report of one model: one self-contained page (plotly's JavaScript inlined once,
no CDN, works offline), charts first, tables after.

Every chart is a plotly figure in a <div class="chart">; a small script counts the
charts that rendered and records JavaScript errors on the page itself, so a headless
browser (and a person) can tell the page works.
"""

import html
from datetime import datetime
from typing import Any

from perfwatch.services.report import ReportData

RETRAIN_COLOURS = {"promoted": "#2e7d32", "rejected": "#c62828", "candidate": "#ef6c00"}


def page(data: ReportData) -> str:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    charts = []
    if data.estimates:
        charts += [(f"Estimated {m}", _metric_chart(go, data, m)) for m in data.metrics]
        charts.append(("Label coverage", _coverage_chart(go, data)))
    if data.drift:
        charts.append(("Feature drift", _drift_chart(go, data)))
    if data.findings:
        charts.append(("Data quality", _findings_chart(go, data)))
    body = [
        f"<h1>{_e(data.model)}</h1>",
        f'<p class="headline">{_e(data.headline)}</p>',
        *(f'<p class="note">{_e(n)}</p>' for n in data.notes),
    ]
    if not data.estimates:
        body.append('<p class="empty">No chunks estimated yet: nothing to chart.</p>')
    for number, (title, figure) in enumerate(charts):
        figure.update_layout(
            title=title,
            height=360,
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
            template="plotly_white",
        )
        body.append(
            figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{number}",
                config={"displaylogo": False, "responsive": True},
            ).replace("<div>", '<div class="chart">', 1)
        )
    body += [
        _alignment_table(data),
        _quarantine_table(data),
        _versions_table(data),
        _alerts_table(data),
    ]
    return _TEMPLATE.format(
        title=_e(f"perfwatch · {data.model}"),
        plotly=get_plotlyjs(),
        body="\n".join(body),
        charts=len(charts),
        generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )


def _lines(name: str, line: dict[str, Any], mode: str = "lines") -> dict[str, Any]:
    return {"mode": mode, "name": name, "line": line}


def _markers(name: str, color: str, size: int, symbol: str) -> dict[str, Any]:
    return {
        "mode": "markers",
        "name": name,
        "marker": {"color": color, "size": size, "symbol": symbol},
    }


def _metric_chart(go: Any, data: ReportData, metric: str) -> Any:
    rows = [r for r in data.estimates if r["metric"] == metric]
    judged = [r for r in rows if r["realized"] is not None]

    def line(chosen: list[dict[str, Any]], value: str, **style: Any) -> Any:
        return go.Scatter(
            x=[r["chunk_start"] for r in chosen], y=[r[value] for r in chosen], **style
        )

    band = {"mode": "lines", "line": {"width": 0}, "hoverinfo": "skip"}
    shaded = {"fill": "tonexty", "fillcolor": "rgba(33,150,243,0.15)"}
    bar = {"color": "#212121", "dash": "dot", "width": 1}
    traces: list[tuple[list[dict[str, Any]], str, dict[str, Any]]] = [  # rows, column, style
        (rows, "upper", {**band, "showlegend": False}),
        (rows, "lower", {**band, **shaded, "name": "confidence band"}),
        (rows, "estimated", _lines("estimated (CBPE)", {"color": "#1565c0"})),
        (
            [r for r in rows if r.get("adjusted") is not None],
            "adjusted",
            _lines("adjusted (early labels)", {"color": "#00838f", "dash": "dot"}),
        ),
        (rows, "threshold", _lines("threshold", {"color": "#c62828", "dash": "dash"})),
        (
            [r for r in rows if r.get("bar") is not None],
            "bar",
            _lines("bar (version 1's threshold)", bar),
        ),
        (judged, "realized", _lines("realized (labels)", {"color": "#2e7d32"}, "lines+markers")),
        ([r for r in rows if r["alert"]], "estimated", _markers("alert", "#c62828", 9, "x")),
        (
            [r for r in rows if r.get("reliable") is False],
            "estimated",
            _markers("unreliable (extrapolation)", "#f9a825", 10, "circle-open"),
        ),
        (
            [r for r in judged if r["concept_drift"]],
            "realized",
            _markers("concept drift", "#6a1b9a", 11, "diamond"),
        ),
    ]
    figure = go.Figure()
    for chosen, value, style in traces:
        figure.add_trace(line(chosen, value, **style))
    for run in data.retrains:
        when = run["data_time"].isoformat()
        label = f"retrain {run['decision'] or run['status']}" + (
            f" → v{run['version']}" if run["version"] else ""
        )
        colour = RETRAIN_COLOURS.get(run["decision"] or "", "#757575")
        figure.add_vline(x=when, line={"color": colour, "dash": "dot"})
        figure.add_annotation(
            x=when,
            y=1,
            yref="paper",
            text=label,
            showarrow=False,
            font={"color": colour},
            textangle=-90,
            xanchor="right",
        )
    return figure


def _coverage_chart(go: Any, data: ReportData) -> Any:
    first = data.metrics[0]
    rows = [r for r in data.estimates if r["metric"] == first]
    return go.Figure(
        go.Bar(
            x=[r["chunk_start"] for r in rows],
            y=[r["label_coverage"] or 0 for r in rows],
            name="labeled share of the chunk",
            marker={"color": "#546e7a"},
        )
    ).update_yaxes(range=[0, 1], tickformat=".0%")


def _drift_chart(go: Any, data: ReportData) -> Any:
    alerting = {d["feature"] for d in data.drift if d["alert"]}
    open_subjects = {a["subject"] for a in data.status["alerts"] if a["kind"] == "feature_drift"}
    features = sorted(
        {d["feature"] for d in data.drift},
        key=lambda f: (f not in open_subjects, f not in alerting, f),
    )
    chunks = sorted({d["chunk_start"] for d in data.drift})
    column = {c: i for i, c in enumerate(chunks)}
    grid: list[list[float | None]] = [[None] * len(chunks) for _ in features]
    for d in data.drift:
        ratio = d["value"] / d["threshold"] if d["threshold"] else None
        grid[features.index(d["feature"])][column[d["chunk_start"]]] = ratio
    labels = [("all features (PCA)" if f == "__all_features__" else f) for f in features]
    return go.Figure(
        go.Heatmap(
            z=grid,
            x=chunks,
            y=labels,
            colorscale="Reds",
            zmin=0,
            zmax=2,
            colorbar={"title": "drift / threshold"},
            hovertemplate="%{y} · %{x}: %{z:.2f}× its threshold<extra></extra>",
        )
    ).update_yaxes(autorange="reversed")


def _findings_chart(go: Any, data: ReportData) -> Any:
    figure = go.Figure()
    for kind in sorted({f["kind"] for f in data.findings}):
        rows = [f for f in data.findings if f["kind"] == kind]
        figure.add_trace(
            go.Bar(
                x=[r["chunk_start"] for r in rows],
                y=[r["count"] for r in rows],
                name=kind.replace("_", " "),
            )
        )
    return figure.update_layout(barmode="stack")


def _table(title: str, header: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f'<h2>{_e(title)}</h2><p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h2>{_e(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _alignment_table(data: ReportData) -> str:
    """The checks of a production sample made before a version was deployed."""
    rows = [
        [
            f"v{c['version']}",
            _when(c["checked_at"]),
            f"{c['sample_name']} ({c['rows']:,} rows)",
            c["verdict"],
            "; ".join(c["figures"]["reasons"]) or "nothing found",
            ", ".join(
                f"{e['metric']} {e['estimated']:.3f} ({e['reference']:.3f} on the reference)"
                for e in c["figures"]["expected"]
            ),
        ]
        for c in data.alignment
    ]
    header = ["version", "checked", "sample", "verdict", "reasons", "expected in production"]
    return _table(
        "Alignment before deployment",
        header,
        rows,
        "No sample was checked (`perfwatch register ... --sample FILE`).",
    )


def _quarantine_table(data: ReportData) -> str:
    rows = [[_when(q["ingested_at"]), q["file_name"], q["reason"]] for q in data.quarantined]
    return _table("Quarantined files", ["at", "file", "reason"], rows, "No file was quarantined.")


def _versions_table(data: ReportData) -> str:
    """Lineage: each retrain, the version it came from and what it learnt from."""
    rows = [
        [
            _when(r["data_time"]),
            f"v{r['parent']}" if r["parent"] else "",
            r["trigger"],
            ""
            if r["appended_rows"] is None
            else f"{r['appended_rows']:,} rows, {r['batches']} batches",
            r["gate"],
            r["decision"] or r["status"],
            f"v{r['version']}" if r["version"] else "",
            r["error"] or "",
        ]
        for r in data.retrains
    ]
    champion = data.status["champion_version"]
    title = f"Retrains and lineage (champion: v{champion})" if champion else "Retrains and lineage"
    header = ["data time", "parent", "trigger", "appended", "gate", "outcome", "version", "error"]
    return _table(title, header, rows, "No retrain yet.")


def _alerts_table(data: ReportData) -> str:
    rows = [
        [
            _when(a["chunk_start"]),
            "closed" if a["closed_at"] else "open",
            a["kind"],
            a["subject"],
            a["message"],
        ]
        for a in reversed(data.alerts)
    ]
    header = ["chunk", "state", "kind", "subject", "message"]
    return _table("Alerts, newest first", header, rows, "No alert.")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #212121; }}
.headline {{ font-size: 1.25rem; font-weight: 600; padding: .6rem .9rem; background: #fff3e0;
  border-left: 5px solid #ef6c00; }}
.note, .empty {{ color: #616161; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; font-size: .9rem; }}
td, th {{ border: 1px solid #e0e0e0; padding: .25rem .5rem; text-align: left;
  vertical-align: top; }}
#page-errors:empty {{ display: none; }}
#page-errors {{ color: #c62828; }}
</style>
<script>
window.addEventListener("error", function (e) {{
  var box = document.getElementById("page-errors");
  if (box) {{ box.textContent += "JavaScript error: " + e.message + "\\n"; }}
}});
</script>
<script type="text/javascript">{plotly}</script>
</head><body data-charts="{charts}">
<pre id="page-errors"></pre>
{body}
<p class="note">Written by perfwatch on {generated} from its store.</p>
<script>
window.addEventListener("load", function () {{
  var drawn = document.querySelectorAll(".chart .js-plotly-plot .main-svg");
  var plots = new Set(Array.from(drawn).map(function (svg) {{ return svg.closest(".chart"); }}));
  document.body.setAttribute("data-rendered", String(plots.size));
}});
</script>
</body></html>
"""
