"""Rendering an evaluation result as Markdown and as a self-contained HTML page.

Every string that comes from data (scenario name and description, policy labels and specs, item
titles and ids) goes through :func:`html.escape` in HTML and through :func:`md_text` in Markdown,
so a catalog item titled ``<script>alert(1)</script>`` is shown as text, never run. Plots are
embedded in the HTML as base64 ``data:`` URIs, so the page opens offline with no other files.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_write
from .bootstrap import gap_text

if TYPE_CHECKING:
    from .plots import Plot
    from .runner import EvaluationResult

__all__ = [
    "METRIC_LABELS",
    "atomic_write",
    "fmt_interval",
    "md_text",
    "render_html",
    "render_markdown",
    "top_items",
]

#: Short human description of each metric (the full definitions are in docs/evaluation.md).
METRIC_LABELS: dict[str, str] = {
    "return": "return (sum of rewards per episode)",
    "ctr": "click-through rate of a session (its clicks / its steps), averaged over sessions",
    "mean_rating": "mean rating (1-5) of a session's clicked items, averaged over sessions",
    "mean_dwell": "mean dwell per step of a session (seconds), averaged over sessions",
    "session_length": "session length (steps)",
    "churned": "churn rate (the user left: patience ran out, on the last step too)",
    "catalog_coverage": "catalog coverage (share of items ever recommended)",
    "gini": "exposure Gini (0 = equal exposure)",
    "long_tail_share": "share of recommendations from the long tail",
    "novelty": "novelty (mean -log2 popularity)",
    "intra_list_diversity": "intra-session diversity (mean pairwise cosine distance)",
    "new_user_return_k": "return over a new user's first k steps",
    "new_user_ctr_k": "click-through over a new user's first k steps",
    "new_item_share": "exposure share of new items",
    "ctr_before_drift": "click-through before drift events",
    "ctr_after_drift": "click-through after drift events",
    "recovery_steps": "steps to recover click-through after drift",
    "precision_at_k": "precision@k against the hidden-taste ranking",
    "recall_at_k": "recall@k against the hidden-taste ranking",
    "ndcg_at_k": "NDCG@k against the hidden-taste ranking",
}


_ONLY_REFERENCE = (
    "No other policy was evaluated: {reference} is the reference, so there is nothing to compare "
    "(add a policy, or choose another reference)."
)


# Markdown that data text must not form: code spans, emphasis, table pipes, and the brackets of
# links and images ("[text](url)", "[text][ref]", "![alt](src)"). A bracket that does not open
# or close one ("0.50 [0.41, 0.60]") is left as it is, so the report's Markdown stays readable.
_MARKDOWN_SPECIAL = re.compile(
    r"([\\`*~|])"  # code spans, emphasis, strikethrough, table pipes
    r"|((?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))"  # "_x_" emphasis; "ctr_before_drift" is not
    r"|(\](?=[(\[]))|(!(?=\[))|(\[(?=[^\]]*\]\s*[(\[:]))"  # links and images
)


def md_text(value: Any) -> str:
    """A data string made safe for Markdown, a table cell included: HTML-escaped (so no raw HTML
    or <autolink>), on one line, with backslashes before the characters that would make it a
    code span, emphasis, a table pipe, a link or an image: ``[x](javascript:...)`` or
    ``![](http://...)`` in an item title or a description shows as written."""
    text = " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), html.escape(text, quote=False))


def decimals_for(values: Any) -> int:
    """Decimals that print the largest finite magnitude in ``values`` to four or five
    significant figures (1 from 100 up, 2 from 10, else 3), judged after rounding (9.9996 is
    ``10.00``, not ``10.000``); one count for a whole row keeps its cells aligned."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))]
    ax = max(finite, default=0.0)
    d = 1 if ax >= 100 else 2 if ax >= 10 else 3
    if d > 1 and round(ax, d) >= (100 if d == 2 else 10):
        d -= 1
    return d


def _fixed(x: float, d: int, *, signed: bool = False) -> str:
    """``x`` to ``d`` decimals, a ``+`` before a positive one when ``signed``; what rounds to zero
    prints as ``0.000``, without a sign (never ``-0.000`` or ``+0.000``)."""
    text = f"{float(x):.{d}f}"
    if float(text) == 0:
        return text.lstrip("-")
    return f"+{text}" if signed and x > 0 else text


def _num(x: float, d: int | None = None) -> str:
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    return _fixed(x, decimals_for([x]) if d is None else d)


def fmt_interval(
    mid: float, low: float, high: float, *, signed: bool = False, decimals: int | None = None
) -> str:
    """``"1.23 [1.01, 1.45]"``, the estimate and its bounds to the same ``decimals`` (by default
    :func:`decimals_for` the three); ``"n/a"`` when the estimate is not finite."""
    if mid is None or not math.isfinite(float(mid)):
        return "n/a"
    d = decimals_for([mid, low, high]) if decimals is None else decimals
    return f"{_fixed(mid, d, signed=signed)} [{_num(low, d)}, {_num(high, d)}]"


def _display(result: EvaluationResult, label: str) -> str:
    return f"{label} (privileged)" if result.policies[label].privileged else label


def scenario_parameters(result: EvaluationResult) -> list[tuple[str, str]]:
    """(key, value) pairs of the scenario parameters a reader needs to interpret the numbers."""
    sc, world = result.scenario, result.world
    drift = sc.users.drift
    # Only for slates: single-item reports keep their table.
    slate = (
        [
            (
                "items per step (slate size L)",
                f"{sc.candidates.slate_size}; the user clicks at most one; item metrics count "
                "every item shown",
            )
        ]
        if sc.candidates.slate_size > 1
        else []
    )
    return [
        (
            "catalog",
            f"{world.n_items} items, {world.n_topics} topics (source: {sc.catalog.source})",
        ),
        ("encoder", f"{sc.encoder.model} ({world.dim} dims, projected to {world.project_dim})"),
        ("state mode", _state_mode(sc)),
        ("candidates per step (K)", str(sc.candidates.k)),
        *slate,
        (
            "nearest candidates by",
            ("the visible state" if sc.candidates.nearest_to == "visible" else "the pooled history")
            + f" ({sc.candidates.index} search)",
        ),
        ("horizon", f"{sc.episode.horizon} steps"),
        ("reward", str(sc.reward.name)),
        ("new users", f"{sc.users.new_user_fraction:.0%}"),
        ("new items", f"{sc.catalog.new_items.fraction:.0%}"),
        ("interest drift", str(drift.kind)),
        (
            "popularity",
            "the catalog's own prior"
            if sc.catalog.popularity.zipf_exponent is None
            else f"Zipf, exponent {sc.catalog.popularity.zipf_exponent}",
        ),
        ("popularity bias in choice (gamma)", str(sc.response.gamma)),
        ("world seed", str(sc.seed)),
        ("evaluation seeds", ", ".join(str(s) for s in result.settings["seeds"])),
        ("episodes per seed", str(result.settings["episodes"])),
    ]


def _state_mode(sc: Any) -> str:
    """The state mode, with the history a language-model state reads."""
    st = sc.state
    if st.mode == "pooled":
        return f"pooled (recency decay {st.recency_decay})"
    events = "clicks" if st.text_events == "clicks" else "events"
    return (
        f"{st.mode} (the last {st.history_window} {events}, cut to {sc.encoder.max_length} tokens)"
    )


def top_items(result: EvaluationResult, label: str, n: int = 5) -> list[tuple[str, str, float]]:
    """The ``n`` items ``label`` recommended most: (item id, title, share of its recommendations)."""
    counts = result.exposure(label)
    total = counts.sum()
    order = np.argsort(-counts, kind="stable")[:n]
    cat = result.world.catalog
    return [
        (str(cat.item_ids[i]), str(cat.titles[i]), float(counts[i] / total) if total else 0.0)
        for i in order
        if counts[i] > 0
    ]


def _top_rows(result: EvaluationResult, label: str, n: int = 5) -> list[list[str]]:
    """The table rows of :func:`top_items`, and a last row saying how many more items were
    recommended exactly as often as the last one shown (the cut at ``n`` breaks that tie by
    catalog order, which means nothing)."""
    items = top_items(result, label, n)
    rows = [[i, t, f"{share:.1%}"] for i, t, share in items]
    if len(items) == n:
        counts = result.exposure(label)
        order = np.argsort(-counts, kind="stable")  # top_items' order
        more = int(np.count_nonzero(counts[order[n:]] == counts[order[n - 1]]))
        if more > 0:
            rows.append(["", f"and {more} more item(s) recommended as often", rows[-1][2]])
    return rows


def _summary_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    from .runner import event_episodes, metric_counts

    labels = list(result.summary["policy"])
    header = ["metric", *[_display(result, p) for p in labels]]
    rows = []
    table = result.summary.set_index("policy")
    events = event_episodes(result.steps)
    for metric in result.metric_order:
        columns = [metric, f"{metric}_low", f"{metric}_high"]
        d = decimals_for(table.loc[labels, columns].to_numpy(float).ravel())
        cells = [fmt_interval(*table.loc[p, columns], decimals=d) for p in labels]
        counts = metric_counts(metric, result.episodes, events)
        if counts is not None:
            # A metric some episodes do not have (a new-user metric needs a new user, a drift
            # metric a drift event) rests on fewer episodes than the policy ran: say on how many.
            for i, p in enumerate(labels):
                have = int(counts.get(p, 0))
                if cells[i] != "n/a" and have < int(table.at[p, "n"]):
                    cells[i] += f"; n={have}"
        rows.append([metric, *cells])
    return header, rows


def _comparison_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    cmp = result.comparison
    labels = [p for p in result.summary["policy"] if p != result.reference]
    header = ["metric", *[f"{_display(result, p)} − {result.reference}" for p in labels]]
    n_runs = result.summary.set_index("policy")["n"]
    rows = []
    for metric in result.metric_order:
        cells = []
        mine = cmp[(cmp["metric"] == metric) & cmp["policy"].isin(labels)]
        d = decimals_for(mine[["difference", "low", "high"]].to_numpy(float).ravel())
        for p in labels:
            hit = mine[mine["policy"] == p]
            if hit.empty:
                cells.append("n/a")
                continue
            r = hit.iloc[0]
            cell = fmt_interval(r["difference"], r["low"], r["high"], signed=True, decimals=d)
            if cell != "n/a" and int(r["n_pairs"]) < int(n_runs[p]):
                cell += f"; n={int(r['n_pairs'])}"
            cells.append(cell)
        rows.append([metric, *cells])
    return header, rows


_COMPARISON_NOTE = (
    "Difference (policy minus reference) on the same users and random numbers, with its "
    'interval. "; n=N": the difference rests on the N paired episodes where both policies have '
    "the metric (mean_rating needs a click in both), fewer than all episodes; for the drift "
    "metrics, which pool each policy's own drift events (its sessions still going when the taste "
    "changed), N is the episodes with an event under either policy."
)


_GAP_NOTE = (
    "(policy − random) / (oracle − random) of the mean returns over the same episodes, with a "
    "paired bootstrap interval: 0% is random, 100% the oracle, which reads the hidden taste "
    "(RESULTS.md's measure of learning quality)."
)


def _gap_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]] | None:
    """The table of the share of the random-to-oracle gap, or None without both baselines."""
    gap = result.gap_shares()
    if gap is None or gap.empty:
        return None
    rows = [
        [
            _display(result, r.policy),
            gap_text(r.gap_closed, r.low, r.high) or "n/a (the oracle does not beat random)",
        ]
        for r in gap.itertuples()
    ]
    return ["policy", "share of the random-to-oracle gap closed"], rows


_POSITIONS_NOTE = (
    "Click-through at each slate position (clicks over the steps where the position showed an "
    "item), and in brackets the position's share of the policy's clicks. Positions are numbered "
    "from 0, the top of the slate, as in positions.csv and the step log."
)


def _position_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]] | None:
    """The table of clicks by slate position, or None on a single-item scenario."""
    table = result.position_clicks()
    if table is None:
        return None
    n_pos = int(table["position"].max()) + 1
    header = ["policy", *[f"position {j}" for j in range(n_pos)]]
    rows = []
    for label in result.policies:
        cells = [
            "n/a"
            if not np.isfinite(r.ctr)
            else f"{r.ctr:.3f} ({r.click_share:.0%})"
            if np.isfinite(r.click_share)
            else f"{r.ctr:.3f}"
            for r in table[table["policy"] == label].sort_values("position").itertuples()
        ]
        rows.append([_display(result, label), *cells])
    return header, rows


def _table_sections(
    result: EvaluationResult,
) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    """The report's sections that only some evaluations have, as (title, note, table): the share
    of the random-to-oracle gap (random and oracle evaluated) and clicks by slate position."""
    sections = []
    gap = _gap_rows(result)
    if gap is not None:
        sections.append(("Share of the random-to-oracle gap", _GAP_NOTE, gap))
    positions = _position_rows(result)
    if positions is not None:
        sections.append(("Clicks by slate position", _POSITIONS_NOTE, positions))
    return sections


def _missing_values_note(result: EvaluationResult) -> str:
    window = result.settings["drift_window"]
    return (
        "n/a: the metric has no value for that policy: mean_rating needs a click, "
        "intra_list_diversity a session of at least 2 steps, the drift metrics a drift event, the "
        'new-user metrics a new user; "; n=N": the value and its interval rest on the N '
        "episodes that have it, fewer than the policy ran. recovery_steps is censored: a policy "
        f"whose click-through does not recover within the {window} steps after a drift event "
        f"counts {window + 1}."
    )


def _privileged_note(result: EvaluationResult) -> str | None:
    priv = [p for p, info in result.policies.items() if info.privileged]
    if not priv:
        return None
    return (
        f"{', '.join(priv)} read(s) the simulator's hidden user taste: an upper bound on what a "
        "recommender could achieve, not a competitor."
    )


def _settings_line(result: EvaluationResult) -> str:
    s = result.settings
    k = result.scenario.candidates.k
    # With no more candidates than k, every policy's top k holds every valid candidate.
    whole = (
        f"; with {k} candidates per step that is all of them, so precision and recall at k are "
        "the same for every policy"
        if k <= s["ranking_k"]
        else ""
    )
    return (
        f"Intervals: {s['confidence']:.0%} percentile bootstrap ({s['n_resamples']} resamples) over "
        "episodes; coverage and the drift metrics are recomputed on resampled episodes (the "
        "resamples' spread placed around the estimate), the Gini's interval is a delete-a-group "
        "jackknife over episodes (Student's t). "
        f"Comparisons are paired by (seed, episode). k = {s['ranking_k']} for ranking metrics "
        f"(relevant set: top {s['ranking_relevant']} candidates by hidden affinity{whole}), "
        f"k = {s['new_user_k']} for new-user metrics, drift window ±{s['drift_window']} steps, "
        f"recovery: forward {s['drift_smooth']}-step mean within {s['drift_tolerance']}."
    )


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |"]
    lines.append("|" + "|".join(["---"] * len(header)) + "|")
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(result: EvaluationResult, plots: Sequence[Plot]) -> str:
    """The report as Markdown; plots are linked as ``<name>.png`` next to the report."""
    sc = result.scenario
    out = [
        f"# Policy evaluation: {md_text(sc.name)}",
        "",
        md_text(sc.description or "(no description)"),
        "",
    ]
    out += ["## Scenario", "", *_md_table(["parameter", "value"], scenario_parameters(result)), ""]
    out += ["## Policies", ""]
    out += _md_table(
        ["label", "spec", "privileged"],
        [[p, info.spec, "yes" if info.privileged else "no"] for p, info in result.policies.items()],
    )
    note = _privileged_note(result)
    if note:
        out += ["", f"**Privileged:** {md_text(note)}"]
    for warning in result.warnings:
        out += ["", f"**Warning:** {md_text(warning)}"]
    out += ["", "## Summary", "", md_text(_settings_line(result)), ""]
    out += [
        f"Metrics this scenario is about come first: {md_text(', '.join(sc.evaluation.metrics))}.",
        "",
    ]
    out += _md_table(*_summary_rows(result))
    out += ["", f"## Paired comparison with {md_text(result.reference)}", ""]
    if len(result.comparison):
        out += [md_text(_COMPARISON_NOTE), ""]
        out += _md_table(*_comparison_rows(result))
    else:
        out += [_ONLY_REFERENCE.format(reference=md_text(result.reference))]
    for title, note, (header, rows) in _table_sections(result):
        out += ["", f"## {title}", "", md_text(note), ""]
        out += _md_table(header, rows)
    out += ["", "## Plots", ""]
    for plot in plots:
        out += [f"### {plot.title}", "", plot.caption, "", f"![{plot.title}]({plot.name}.png)", ""]
    out += ["## Most recommended items", ""]
    for label in result.policies:
        out += [f"### {md_text(_display(result, label))}", ""]
        rows = _top_rows(result, label)
        out += [*_md_table(["item", "title", "share"], rows), ""]
    out += ["## Metrics", ""]
    out += [f"- `{m}`: {METRIC_LABELS[m]}" for m in result.metric_order]
    out += ["", md_text(_missing_values_note(result)), ""]
    out += ["Definitions and formulas: docs/evaluation.md.", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.first td { background: #fbfbf2; }
.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; }
.small { color: #555; font-size: 0.85rem; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
"""


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, first_rows: int = 0
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        cls = ' class="first"' if r < first_rows else ""
        cells = "".join(
            f"<td{' class=num' if c > 0 else ''}>{html.escape(str(v))}</td>"
            for c, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(result: EvaluationResult, plots: Sequence[Plot]) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNG)."""
    sc = result.scenario
    esc = html.escape
    n_first = len([m for m in sc.evaluation.metrics if m in result.metric_order])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Policy evaluation: {esc(sc.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Policy evaluation: {esc(sc.name)}</h1>",
        f"<p>{esc(sc.description or '(no description)')}</p>",
        "<h2>Scenario</h2>",
        _html_table(["parameter", "value"], scenario_parameters(result)),
        "<h2>Policies</h2>",
        _html_table(
            ["label", "spec", "privileged"],
            [
                [p, info.spec, "yes" if info.privileged else "no"]
                for p, info in result.policies.items()
            ],
        ),
    ]
    note = _privileged_note(result)
    if note:
        parts.append(f'<p class="note"><strong>Privileged:</strong> {esc(note)}</p>')
    for warning in result.warnings:
        parts.append(f'<p class="note"><strong>Warning:</strong> {esc(warning)}</p>')
    parts += [
        "<h2>Summary</h2>",
        f'<p class="small">{esc(_settings_line(result))} Highlighted rows are the metrics this '
        "scenario is about.</p>",
        _html_table(*_summary_rows(result), first_rows=n_first),
        f"<h2>Paired comparison with {esc(result.reference)}</h2>",
    ]
    if len(result.comparison):
        parts += [
            f"<p>{esc(_COMPARISON_NOTE)}</p>",
            _html_table(*_comparison_rows(result), first_rows=n_first),
        ]
    else:
        parts.append(f"<p>{_ONLY_REFERENCE.format(reference=esc(result.reference))}</p>")
    for title, note, (header, rows) in _table_sections(result):
        parts += [f"<h2>{esc(title)}</h2>", f"<p>{esc(note)}</p>", _html_table(header, rows)]
    parts += [
        "<h2>Plots</h2>",
    ]
    for plot in plots:
        data = base64.b64encode(plot.png).decode("ascii")
        parts += [
            f"<figure><h3>{esc(plot.title)}</h3>",
            f'<img src="data:image/png;base64,{data}" alt="{esc(plot.title, quote=True)}">',
            f"<figcaption class=small>{esc(plot.caption)}</figcaption></figure>",
        ]
    parts.append("<h2>Most recommended items</h2>")
    for label in result.policies:
        rows = _top_rows(result, label)
        parts += [
            f"<h3>{esc(_display(result, label))}</h3>",
            _html_table(["item", "title", "share"], rows),
        ]
    parts.append("<h2>Metrics</h2><ul>")
    parts += [
        f"<li><code>{esc(m)}</code>: {esc(METRIC_LABELS[m])}</li>" for m in result.metric_order
    ]
    parts.append(f"</ul><p class=small>{esc(_missing_values_note(result))}</p>")
    parts.append("<p class=small>Definitions and formulas: docs/evaluation.md.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
