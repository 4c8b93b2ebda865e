"""The report: every finished experiment, its verdict, numbers, tests and figures, as HTML and Markdown.

``write_report(root)`` reads ``<root>/<name>/<profile>/result.json`` of every registered
experiment (the ``full`` profile where it has finished, else the ``quick`` one) and writes
``<root>/report.html`` and the Markdown report beside the folder, named after it
(``docs/experiments`` -> ``docs/experiments.md``).  Figures and results files are linked by
relative paths, so the folder and its Markdown page can be moved or published together.  Every
number comes from the results files; nothing is typed by hand.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from deeper.experiments.base import NOTES, list_experiments
from deeper.experiments.results import RESULT_FILE, load_result
from deeper.fileio import write_text_atomic

BADGE = {"supported": "#1a7f37", "not supported": "#cf222e", "inconclusive": "#9a6700"}


def fmt(v) -> str:
    """A number as the report prints it (4 significant digits; integers with thousands separators)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def chosen_results(root: str | os.PathLike) -> list[tuple[object, dict | None, dict | None]]:
    """``(experiment, shown result, quick result)`` for every registered experiment: the full result when it
    has finished, else the quick one (``None`` when neither has)."""
    out = []
    for exp in list_experiments():
        full, quick = load_result(root, exp.name, "full"), load_result(root, exp.name, "quick")
        out.append((exp, full or quick, quick))
    return out


def _test_effect(t: dict) -> str:
    parts = []
    for key in ("mean_diff", "rho", "ratio_b_over_a", "value", "mean"):
        if t.get(key) is not None:
            parts.append(f"{key.replace('_', ' ')} {fmt(t[key])}")
            break
    if t.get("ci") and None not in t["ci"]:
        parts.append(f"bounds {fmt(t['ci'][0])} .. {fmt(t['ci'][1])}")
    if t["test"].startswith(("exact", "measured")):  # a fact or a figure: the numbers it compared
        parts += [
            f"{k.replace('_', ' ')} {fmt(v)}" for k, v in t.items() if k not in _TEST_KEYS and _number(v)
        ]
    return ", ".join(parts)


#: the fields every test has (not numbers it compared)
_TEST_KEYS = {"test", "what", "verdict", "value", "limit", "above", "n", "claim", "alpha", "delta"}


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _test_p(t: dict) -> str:
    keys = ("p_greater", "p_less", "p_increasing", "p_decreasing", "p_two_sided")
    ps = [f"{k[2:].replace('_', ' ')} {fmt(t[k])}" for k in keys if t.get(k) is not None]
    return "; ".join(ps)


def _status(doc: dict | None) -> str:
    if doc is None:
        return "not run"
    if doc["profile"] == "full":
        return "full profile" + (", from the benchmark's committed results" if doc.get("reused") else "")
    return "quick profile; no full results yet"


def _tally(rows) -> str:
    """How many experiments have results, and their verdicts."""
    done = [d["verdict"] for _, d, _ in rows if d is not None]
    counts = ", ".join(f"{done.count(v)} {v}" for v in ("supported", "not supported", "inconclusive"))
    return f"{len(done)} of {len(rows)} experiments have results: {counts}."


# ------------------------------------------------------------------------------------ Markdown


def default_markdown(root: str | os.PathLike) -> Path:
    """Where the Markdown report of ``root`` goes: beside the folder, named after it."""
    root = Path(os.path.normpath(root))
    if root.name in ("", ".", ".."):
        root = Path(os.path.abspath(root))
    return root.parent / f"{root.name}.md"


def markdown(root: str | os.PathLike, base: str = "") -> str:
    """The Markdown report; ``base``: the path from the page's folder to ``root`` (links are prefixed with it)."""
    base = f"{base.rstrip('/')}/" if base and base != "." else ""
    rows = chosen_results(root)
    lines = [
        "# The claims of the notes, as experiments",
        "",
        "Each claim of the notes is an experiment of `deeper experiment` with a verdict: **supported**, "
        "**not supported** or **inconclusive**, decided by the statistical test shown (declared before the "
        "measurement, in the experiment's profile). The `full` profile is shown where it has been run, else the "
        "`quick` one (small data, a few seeds: mostly inconclusive by design). Regenerate with "
        "`deeper experiment report`; rerun one with the command under it.",
        "",
        f"{_tally(rows)}",
        "",
        "The notes: " + "; ".join(f"note {v}" for v in NOTES.values()) + ".",
        "",
        "| experiment | claim | verdict | profile |",
        "|---|---|---|---|",
    ]
    for exp, doc, _ in rows:
        v = f"**{doc['verdict']}**" if doc else "-"
        lines.append(f"| [{exp.name}](#{exp.name}) | {exp.title} | {v} | {_status(doc)} |")
    for exp, doc, quick in rows:
        lines += ["", f'<a id="{exp.name}"></a>', "", f"## {exp.title} (`{exp.name}`)", ""]
        lines += [f"**Claim.** {exp.claim}", ""]
        lines += [
            "**Source in the notes.** " + "; ".join(f"note {s.note} ({s.section})" for s in exp.sources),
            "",
        ]
        if doc is None:
            lines += ["Not run yet: `deeper experiment run " + exp.name + " --profile quick`.", ""]
            continue
        lines += [f"**Verdict: {doc['verdict']}** ({_status(doc)}). {doc['because']}", ""]
        if doc.get("rule"):
            lines += [f"*Decided by:* {doc['rule']}.", ""]
        lines += [f"**Method.** {doc['method']}", ""]
        lines += [f"**Profile `{doc['profile']}`:** {doc['profile_description']}.", ""]
        for f in doc["figures"]:
            rel = f"{base}{exp.name}/{doc['profile']}/{f['file']}"
            lines += [f"![{f['caption']}]({rel})", "", f"*{f['caption']}*", ""]
        if doc["profile"] == "full" and quick is not None:
            lines += [f"Quick profile: **{quick['verdict']}**. {quick['because']}", ""]
        lines += ["| test | what | n | effect | p | verdict |", "|---|---|---|---|---|---|"]
        for t in doc["tests"]:
            what = t.get("what", "").replace("|", "/")
            lines.append(
                f"| {t['test']} | {what} | {fmt(t.get('n', ''))} | {_test_effect(t)} | {_test_p(t)} | {t['verdict']} |"
            )
        lines.append("")
        if doc["numbers"]:
            lines += ["| number | value |", "|---|---:|"]
            lines += [f"| {k} | {fmt(v)} |" for k, v in doc["numbers"].items()]
            lines.append("")
        for n in doc.get("notes", []):
            lines += [f"> {n}", ""]
        if doc.get("evidence"):
            lines += ["Results read: " + ", ".join(f"`{e}`" for e in doc["evidence"]) + ".", ""]
        m = doc["machine"]
        lines += [f"Measured on: {m['description']} ({m['torch_threads']} torch thread(s)); {fmt(doc['seconds'])} s; "
                  f"`{doc['command']}`; results: [{exp.name}/{doc['profile']}/{RESULT_FILE}]"
                  f"({base}{exp.name}/{doc['profile']}/{RESULT_FILE}).", ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;line-height:1.45;color:#1f2328}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #d0d7de;padding:.25em .5em;
vertical-align:top}th{background:#f6f8fa}img{max-width:100%;border:1px solid #d0d7de;margin:.5em 0}
.badge{color:#fff;padding:.1em .5em;border-radius:.8em;font-weight:600;white-space:nowrap}
section{border-top:2px solid #d0d7de;margin-top:2em}.muted{color:#656d76;font-size:.9em}
blockquote{border-left:4px solid #d0d7de;margin:.5em 0;padding:.1em .8em;color:#59636e}
"""


def _badge(verdict: str | None) -> str:
    if verdict is None:
        return '<span class="muted">not run</span>'
    return f'<span class="badge" style="background:{BADGE[verdict]}">{html.escape(verdict)}</span>'


def render_html(root: str | os.PathLike) -> str:
    e = html.escape
    rows = chosen_results(root)
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>deeper: the claims of the notes, as experiments</title>", f"<style>{CSS}</style></head><body>",
           "<h1>The claims of the notes, as experiments</h1>",
           "<p>Each claim of the notes is an experiment of <code>deeper experiment</code> with a verdict: "
           "<b>supported</b>, <b>not supported</b> or <b>inconclusive</b>, decided by the statistical test shown "
           "(declared before the measurement, in the experiment's profile). The <code>full</code> profile is shown "
           "where it has been run, else the <code>quick</code> one (small data, a few seeds: mostly inconclusive by "
           "design). Regenerate with <code>deeper experiment report</code>.</p>",
           f"<p>{e(_tally(rows))}</p>",
           "<p>The notes: " + e("; ".join(f"note {v}" for v in NOTES.values())) + ".</p>",
           "<table><tr><th>experiment</th><th>claim</th><th>verdict</th><th>profile</th></tr>"]  # fmt: skip
    for exp, doc, _ in rows:
        out.append(f'<tr><td><a href="#{e(exp.name)}">{e(exp.name)}</a></td><td>{e(exp.title)}</td>'
                   f"<td>{_badge(doc['verdict'] if doc else None)}</td><td>{e(_status(doc))}</td></tr>")  # fmt: skip
    out.append("</table>")
    for exp, doc, quick in rows:
        out.append(f'<section id="{e(exp.name)}"><h2>{e(exp.title)} <code>{e(exp.name)}</code> '
                   f"{_badge(doc['verdict'] if doc else None)}</h2>")  # fmt: skip
        out.append(f"<p><b>Claim.</b> {e(exp.claim)}</p>")
        out.append("<p><b>Source in the notes.</b> " + "; ".join(
            f"note {e(s.note)} ({e(s.section)})" for s in exp.sources) + "</p>")  # fmt: skip
        if doc is None:
            out.append(
                f"<p>Not run yet: <code>deeper experiment run {e(exp.name)} --profile quick</code>.</p></section>"
            )
            continue
        out.append(f"<p><b>Verdict: {e(doc['verdict'])}</b> ({e(_status(doc))}). {e(doc['because'])}</p>")
        if doc.get("rule"):
            out.append(f"<p><i>Decided by:</i> {e(doc['rule'])}.</p>")
        out.append(f"<p><b>Method.</b> {e(doc['method'])}</p>")
        out.append(
            f"<p><b>Profile <code>{e(doc['profile'])}</code>:</b> {e(doc['profile_description'])}.</p>"
        )
        for f in doc["figures"]:
            rel = f"{exp.name}/{doc['profile']}/{f['file']}"
            out.append(f'<figure><img src="{e(rel)}" alt="{e(f["caption"])}"><figcaption class="muted">'
                       f"{e(f['caption'])}</figcaption></figure>")  # fmt: skip
        if doc["profile"] == "full" and quick is not None:
            out.append(
                f'<p class="muted">Quick profile: {_badge(quick["verdict"])} {e(quick["because"])}</p>'
            )
        out.append(
            "<table><tr><th>test</th><th>what</th><th>n</th><th>effect</th><th>p</th><th>verdict</th></tr>"
        )
        for t in doc["tests"]:
            out.append(f"<tr><td>{e(t['test'])}</td><td>{e(t.get('what', ''))}</td><td>{e(fmt(t.get('n', '')))}</td>"
                       f"<td>{e(_test_effect(t))}</td><td>{e(_test_p(t))}</td><td>{_badge(t['verdict'])}</td></tr>")  # fmt: skip
        out.append("</table>")
        if doc["numbers"]:
            out.append("<table><tr><th>number</th><th>value</th></tr>")
            out += [f"<tr><td>{e(k)}</td><td>{e(fmt(v))}</td></tr>" for k, v in doc["numbers"].items()]
            out.append("</table>")
        out += [f"<blockquote>{e(n)}</blockquote>" for n in doc.get("notes", [])]
        if doc.get("evidence"):
            out.append(
                "<p>Results read: " + ", ".join(f"<code>{e(x)}</code>" for x in doc["evidence"]) + ".</p>"
            )
        m = doc["machine"]
        out.append(f'<p class="muted">Measured on: {e(m["description"])} ({m["torch_threads"]} torch thread(s)); '
                   f"{e(fmt(doc['seconds']))} s; <code>{e(doc['command'])}</code>; results: "
                   f'<a href="{e(exp.name)}/{e(doc["profile"])}/{RESULT_FILE}">{e(exp.name)}/{e(doc["profile"])}/{RESULT_FILE}</a>'
                   "</p></section>")  # fmt: skip
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(root: str | os.PathLike, markdown_path: str | os.PathLike | None = None) -> dict:
    """Write ``<root>/report.html`` and the Markdown report (``markdown_path``, default :func:`default_markdown`);
    what was written and how much had finished."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    md_path = Path(markdown_path) if markdown_path is not None else default_markdown(root)
    base = os.path.relpath(os.path.abspath(root), os.path.abspath(md_path.parent)).replace(os.sep, "/")
    md, page = markdown(root, base), render_html(root)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(md_path, md)
    write_text_atomic(root / "report.html", page)
    rows = chosen_results(root)
    return {
        "html": str(root / "report.html"),
        "markdown": str(md_path),
        "registered": len(rows),
        "finished": sum(1 for _, d, _ in rows if d is not None),
        "verdicts": {exp.name: (d["verdict"], d["profile"]) if d else None for exp, d, _ in rows},
    }
