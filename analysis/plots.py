"""The report's plots as inline SVG strings, drawn with matplotlib.

matplotlib is imported inside the functions, never at module level, so that a web
process that only serves stored reports never loads it. Figures are made with
`matplotlib.figure.Figure` and the SVG canvas, without pyplot: no global figure
registry and no GUI backend, so two threads (the embedded worker runs two) can draw
at once. The SVG keeps text as text (smaller, selectable), carries no date, and gets
element ids salted by the plot's name, so that several plots inline in one page
never share an id and the same data always give the same bytes.

Every text that comes from a user (generator, series, metric and setting names) goes
through `literal`: matplotlib would read it as math text between two `$` and fail the
whole report on a name such as ``$x^$``.
"""

from __future__ import annotations

import html
import io
import math
import re

import numpy as np

# Colours: with exclusions (the headline), without, and references.
INK = "#1f4e79"
FAINT = "#9aa7b4"
ACCENT = "#c0392b"
FORM_COLOURS = {"saturating": "#1f77b4", "free": "#e67e22", "joint_gap": "#2e8b57"}
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
# matplotlib styles each element with a style attribute, and all of them with one
# <style> rule; a page's Content-Security-Policy (style-src without 'unsafe-inline')
# refuses both in a plot inline in the page. The same properties as SVG presentation
# attributes draw the same and are no style to the policy.
_STYLE_RULE = re.compile(r"\s*<defs>\s*<style[^>]*>\s*\*\s*\{([^}]*)\}\s*</style>\s*</defs>")
_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')
_TAG = re.compile(r"<[^>]*>")
# A name has no length limit and a plot has a width: longer labels end in an ellipsis
# (the report's tables show them whole).
LABEL_CHARS = 40
# Explicit bidirectional formatting characters (Unicode UAX #9, section 2).
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ISOLATE, _END_ISOLATE = "\u2068", "\u2069"


def literal(value, *, limit: int = LABEL_CHARS) -> str:
    """`value` as text that matplotlib draws as written (cut to `limit` characters).

    matplotlib takes a text with an even number of unescaped ``$`` for math text and
    draws ``\\$`` as a plain ``$``, so every ``$`` gets a backslash: the text then holds
    no unescaped ``$`` and is never parsed, whatever the backslashes around it. The
    SVG keeps text as text and the browser lays it out, so a name with bidirectional
    controls (a right-to-left override) is wrapped in an isolate that ends them with
    the name, not at the end of the title it sits in.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    if _BIDI_CONTROLS.search(text):
        text = _ISOLATE + text + _END_ISOLATE
    return text.replace("$", r"\$")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=72, layout="constrained")


def _svg(figure, name: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"parity-{name}"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = _METADATA.sub("", _PROLOGUE.sub("", buffer.getvalue(), count=1))
    text = _presentation_attributes(text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(name)}" class="plot" ', 1)


def _attributes(declarations: str) -> str:
    """`fill: none; stroke: #000` as ` fill="none" stroke="#000"`."""
    pairs = (part.split(":", 1) for part in declarations.split(";") if part.strip())
    return "".join(f' {name.strip()}="{value.strip()}"' for name, value in pairs)


def _presentation_attributes(svg: str) -> str:
    """matplotlib's SVG without a style attribute or element (see `_STYLE_RULE`).

    Its one rule applies to every element; on the root instead, the elements inherit it,
    and those that set the property themselves still do.
    """
    rule = _STYLE_RULE.search(svg)
    if rule is not None:
        svg = svg[:rule.start()] + svg[rule.end():]
        svg = svg.replace("<svg ", "<svg" + _attributes(rule.group(1)) + " ", 1)
    # Inside tags only: a text's content may hold ` style="…"` too (a name); matplotlib
    # escapes < and > there and in attribute values, so a tag is all from < to >.
    return _TAG.sub(lambda tag: _STYLE_ATTRIBUTE.sub(lambda match: _attributes(match.group(1)), tag[0]), svg)


def _finite(*arrays):
    return np.all([np.isfinite(np.asarray(a, dtype=float)) for a in arrays], axis=0)


def forest_plot(names, rate, low, high, rate_all=None, low_all=None, high_all=None, *, title: str = "") -> str:
    """Rates with intervals, one row per generator, and the parity line at 0.5.

    The headline rates (exclusions applied) are filled; those on all judgments, when
    given, are hollow and drawn just below; a rate without an interval is a cross.
    """
    n = len(names)
    figure = _figure(7.5, 1.2 + 0.32 * max(n, 1))
    ax = figure.add_subplot()
    y = np.arange(n)[::-1].astype(float)
    series = [(rate, low, high, 0.0, INK, "exclusions applied", "o", INK)]
    if rate_all is not None:
        series.append((rate_all, low_all, high_all, -0.25, FAINT, "all judgments", "o", "white"))
    for values, lo, hi, offset, colour, label, marker, face in series:
        values, lo, hi = (np.asarray(a, dtype=float) for a in (values, lo, hi))
        ok = _finite(values, lo, hi)
        ax.errorbar(values[ok], y[ok] + offset, xerr=[values[ok] - lo[ok], hi[ok] - values[ok]], fmt=marker,
                    color=colour, markerfacecolor=face, capsize=2, label=label)
        # A flagged rate (`stats.rates.RATE_FLAGS`) has no interval: its point alone, marked apart.
        bare = _finite(values) & ~ok
        if bare.any():
            ax.plot(values[bare], y[bare] + offset, "x", color=colour, label=f"{label}, no interval")
    ax.axvline(0.5, color=ACCENT, linestyle="--", linewidth=1, label="parity (0.5)")
    ax.set_yticks(y, [literal(name) for name in names])
    ax.set_ylim(-0.8, n - 0.4)
    ax.set_xlabel("preference rate (share of judgments won by the generated image)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(literal(title))
    ax.legend(loc="lower right", fontsize="small")
    return _svg(figure, "forest")


def category_forest_plot(values, names, rate, low, high, adjusted_low, adjusted_high, *, n=None,
                         title: str = "") -> str:
    """One small forest plot per category value (two columns), the parity line in each.

    rate, low, high, adjusted_* : (values, generators). Each rate's interval is drawn
    over its Bonferroni-adjusted one (thin and faint); a rate without an interval is a
    cross; a generator without judgments of the value is left out of its panel.
    """
    values, names = list(values), list(names)
    rate, low, high, adjusted_low, adjusted_high = (np.asarray(a, float).reshape(len(values), len(names))
                                                    for a in (rate, low, high, adjusted_low, adjusted_high))
    counts = np.ones_like(rate) if n is None else np.asarray(n, float).reshape(rate.shape)
    columns = 2 if len(values) > 1 else 1
    rows = math.ceil(len(values) / columns) if values else 1
    figure = _figure(7.5, rows * (0.9 + 0.26 * max(len(names), 1)))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False, sharex=True)).ravel()
    y = np.arange(len(names))[::-1].astype(float)
    for ax, v in zip(axes, range(len(values))):
        judged = counts[v] > 0
        ok = _finite(rate[v], low[v], high[v]) & judged
        wide = _finite(rate[v], adjusted_low[v], adjusted_high[v]) & judged
        ax.hlines(y[wide], adjusted_low[v][wide], adjusted_high[v][wide], color=FAINT, linewidth=1)
        ax.errorbar(rate[v][ok], y[ok], xerr=[rate[v][ok] - low[v][ok], high[v][ok] - rate[v][ok]], fmt="o",
                    color=INK, capsize=2, markersize=4)
        bare = _finite(rate[v]) & judged & ~ok
        ax.plot(rate[v][bare], y[bare], "x", color=INK)
        ax.axvline(0.5, color=ACCENT, linestyle="--", linewidth=1)
        ax.set_yticks(y, [literal(name, limit=24) for name in names], fontsize="x-small")
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(literal(values[v], limit=30), fontsize="small")
    for ax in axes[len(values):]:
        ax.set_axis_off()
    # The last panel of each column carries the scale, whichever row it is in.
    for ax in axes[max(len(values) - columns, 0):len(values)]:
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("preference rate (thin: Bonferroni-adjusted)", fontsize="x-small")
    if title:
        figure.suptitle(literal(title), fontsize="small")
    return _svg(figure, f"categories-{title}")


def _curve(form: str, params: dict, grid: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """The form at x = grid (and D = other for the joint form), from natural parameters (arrays broadcast)."""
    def term(coefficient, exponent, x):
        with np.errstate(all="ignore"):
            return np.exp(np.log(np.asarray(coefficient, float))[..., None]
                          - np.asarray(exponent, float)[..., None] * np.log(x))

    top = np.asarray(params["p_inf"], float)[..., None] if form == "free" else 0.5
    value = top - term(params["A"], params["alpha"], grid)
    if form == "joint_gap":
        value = value - term(params["B"], params["beta"], other)
    return value


def _band(form: str, fit, grid: np.ndarray, other=None) -> tuple[np.ndarray, np.ndarray] | None:
    replicates = {name: np.asarray(fit.replicates[name], float) for name in fit.params if name in fit.replicates}
    if len(replicates) != len(fit.params) or not len(next(iter(replicates.values()))):
        return None
    draws = _curve(form, replicates, grid, other)
    draws[~np.isfinite(draws)] = np.nan
    tail = (1 - fit.level) / 2 * 100
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def scaling_plot(series_fit, names, rate, low, high, *, targets=(0.05, 0.01), axis_label: str = "") -> str:
    """One series along one axis: data with intervals, fitted forms with bands, extrapolation to parity.

    The fitted curves run past the largest generator up to where the saturating fit
    closes the smallest target gap (at most 10,000 times the largest x, at least 10
    times); the scale at each target gap is marked with its interval.
    """
    x = np.asarray(series_fit.x, float)
    joint = x.ndim == 2
    along = x[:, 0] if joint else x
    rate, low, high = (np.asarray(a, float) for a in (rate, low, high))
    figure = _figure(7.5, 4.6)
    ax = figure.add_subplot()
    x_max = float(along.max())
    reach = x_max * 10
    saturating = series_fit.fits.get("saturating")
    if saturating is not None:
        for target in targets:
            point = saturating.x_at_gap.get(target, (math.inf,))[0]
            if math.isfinite(point):
                reach = max(reach, min(point * 1.5, x_max * 1e4))
    grid = np.geomspace(float(along.min()) / 1.5, reach, 200)
    for form, fit in series_fit.fits.items():
        colour = FORM_COLOURS.get(form, INK)
        if joint:
            for d in sorted(set(x[:, 1].tolist()))[:4]:
                other = np.full_like(grid, d)
                ax.plot(grid, _curve(form, fit.params, grid, other), color=colour, linewidth=1,
                        label=f"{form}, D = {d:.3g}")
            continue
        band = _band(form, fit, grid)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color=colour, alpha=0.15, linewidth=0)
        ax.plot(grid, _curve(form, fit.params, grid), color=colour, linewidth=1.5, label=f"{form} fit")
    ok = _finite(rate, low, high)
    ax.errorbar(along[ok], rate[ok], yerr=[rate[ok] - low[ok], high[ok] - rate[ok]], fmt="o", color=INK,
                capsize=3, label="generators (exclusions applied)", zorder=5)
    for xi, yi, name in zip(along[ok], rate[ok], np.asarray(names, dtype=object)[ok]):
        ax.annotate(literal(name), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize="x-small")
    ax.axhline(0.5, color=ACCENT, linestyle="--", linewidth=1, label="parity (0.5)")
    for target in targets:
        level = 0.5 - target
        ax.axhline(level, color=FAINT, linestyle=":", linewidth=1)
        if saturating is None or target not in saturating.x_at_gap:
            continue
        point, lo, hi = saturating.x_at_gap[target]
        if math.isfinite(point) and point <= grid[-1]:
            lo = lo if math.isfinite(lo) else point
            hi = min(hi if math.isfinite(hi) else grid[-1], grid[-1])
            ax.errorbar([point], [level], xerr=[[max(point - lo, 0)], [max(hi - point, 0)]], fmt="D",
                        color=FORM_COLOURS["saturating"], markersize=5, capsize=3)
            ax.annotate(f"gap {target:g} at {point:.3g}", (point, level), textcoords="offset points",
                        xytext=(4, 4), fontsize="x-small")
    ax.set_xscale("log")
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(min(0.0, float(np.nanmin(low[ok])) - 0.02) if ok.any() else 0.0, 0.6)
    if joint:
        ax.set_xlabel(literal(axis_label) if axis_label else "params (N); one curve per train_images (D)")
        ax.set_title(f"{literal(series_fit.series)}: joint fit over params and train_images")
    else:
        ax.set_xlabel(literal(axis_label or series_fit.axis))
        ax.set_title(f"{literal(series_fit.series)}: rate along {literal(series_fit.axis)}")
    ax.set_ylabel("preference rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="x-small")
    return _svg(figure, f"scaling-{series_fit.series_id}-{series_fit.axis}")


def calibration_plot(rows, annotator_n, annotator_share, flagged, excluded, simulated) -> str:
    """Left: calibration rate and share of left choices, each with and without exclusions, against 0.5.
    Right: each annotator's share of left choices against their judgments (flagged side bias in red;
    excluded hollow; simulated as triangles).

    rows : (label, value, low, high) tuples for the left panel.
    """
    figure = _figure(7.5, 3.4)
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.2])
    y = np.arange(len(rows))[::-1]
    for yi, (label, value, lo, hi) in zip(y, rows):
        if all(v is not None and math.isfinite(v) for v in (value, lo, hi)):
            left.errorbar([value], [yi], xerr=[[value - lo], [hi - value]], fmt="o", color=INK, capsize=3)
    left.axvline(0.5, color=ACCENT, linestyle="--", linewidth=1)
    left.set_yticks(y, [literal(row[0]) for row in rows], fontsize="small")
    left.set_xlim(0.2, 0.8)
    left.set_ylim(-0.6, len(rows) - 0.4)
    left.set_xlabel("rate (expected 0.5)")
    left.grid(axis="x", alpha=0.3)
    n = np.asarray(annotator_n, float)
    share = np.asarray(annotator_share, float)
    shown = (n > 0) & np.isfinite(share)
    for mask, marker in ((~np.asarray(simulated, bool), "o"), (np.asarray(simulated, bool), "^")):
        for bad, colour in ((False, INK), (True, ACCENT)):
            pick = shown & mask & (np.asarray(flagged, bool) == bad)
            kept = pick & ~np.asarray(excluded, bool)
            gone = pick & np.asarray(excluded, bool)
            right.scatter(n[kept], share[kept], s=12, marker=marker, color=colour)
            right.scatter(n[gone], share[gone], s=12, marker=marker, facecolors="none", edgecolors=colour)
    right.axhline(0.5, color=ACCENT, linestyle="--", linewidth=1)
    if shown.any():
        right.set_xscale("log")
    right.set_ylim(-0.02, 1.02)
    right.set_xlabel("judgments of the annotator")
    right.set_ylabel("share of left choices")
    right.grid(alpha=0.3)
    return _svg(figure, "calibration")


def alignment_plot(metrics: dict, names, rate, low, high, correlations: dict) -> str:
    """For each metric (at most six), the generators' metric values against their rates."""
    shown = list(metrics)[:6]
    columns = min(3, max(len(shown), 1))
    rows = math.ceil(len(shown) / columns) if shown else 1
    figure = _figure(7.5, 2.6 * rows)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    rate, low, high = (np.asarray(a, float) for a in (rate, low, high))
    # The width of one panel.
    limit = 48 // columns
    for ax, name in zip(axes, shown):
        values = np.asarray(metrics[name], float)
        ok = _finite(values, rate, low, high)
        ax.errorbar(values[ok], rate[ok], yerr=[rate[ok] - low[ok], high[ok] - rate[ok]], fmt="o", color=INK,
                    capsize=2)
        for xi, yi, label in zip(values[ok], rate[ok], np.asarray(names, dtype=object)[ok]):
            ax.annotate(literal(label, limit=limit), (xi, yi), textcoords="offset points", xytext=(3, 3),
                        fontsize="xx-small")
        rho = correlations.get(name)
        ax.set_title(f"{literal(name, limit=limit)}\n(Spearman {rho:.2f})" if rho is not None and math.isfinite(rho)
                     else literal(name, limit=limit), fontsize="small")
        ax.set_xlabel(literal(name, limit=limit), fontsize="small")
        ax.set_ylabel("preference rate", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    return _svg(figure, "alignment")


def timeline_plot(names, mean_time, share, low, high, *, limit: int = 12) -> str:
    """Each generator's raw share per time block against the block's mean date (at most
    `limit` generators, the most judged first is the caller's order), with Wilson bars."""
    from datetime import UTC, datetime

    from matplotlib import dates

    figure = _figure(7.5, 3.6)
    ax = figure.add_subplot()
    mean_time, share = np.asarray(mean_time, float), np.asarray(share, float)
    low, high = np.asarray(low, float), np.asarray(high, float)
    for row, name in enumerate(names[:limit]):
        shown = _finite(mean_time[row], share[row], low[row], high[row])
        if not shown.any():
            continue
        when = [datetime.fromtimestamp(t, UTC) for t in mean_time[row][shown]]
        value = share[row][shown]
        ax.errorbar(when, value, yerr=[value - low[row][shown], high[row][shown] - value], fmt="o-", capsize=2,
                    markersize=3, linewidth=1, label=literal(name, limit=30))
    ax.axhline(0.5, color=ACCENT, linestyle="--", linewidth=1)
    ax.xaxis.set_major_formatter(dates.DateFormatter("%Y-%m-%d"))
    ax.set_ylim(0, 1)
    ax.set_ylabel("share won by the generated image")
    ax.set_xlabel("mean submission date of the block (UTC)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="upper left", fontsize="x-small", ncols=2)
    return _svg(figure, "timeline")
