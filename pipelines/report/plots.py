"""The study report's plots: plain frames in, one inline ``<svg>`` element out.

Drawn with matplotlib's object API (``Figure``, never ``pyplot``), so no global figure state is
touched and a plot needs no display. Each SVG is meant to go straight into an HTML page: the XML
prolog and DOCTYPE (which name a remote DTD) are cut, its internal references (``xlink:href``)
point at ids inside the same element, and text stays text in the reader's own sans-serif font,
so the page fetches nothing: no web font, no image file.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

EVENT_STYLES = {  # event kind -> (colour, line style) on a trajectory
    "endpoint: occurred": ("#a4262c", "-"),
    "endpoint: did not occur": ("#4c566a", "-"),
    "anomaly": ("#d83b01", ":"),
    "anomaly alert": ("#d83b01", "--"),
    "NEWS2 alert": ("#8a3ffc", "--"),
}
_STATUS_COLOURS = {"curated": "#107c10", "quarantined": "#a4262c", "failed": "#8a3ffc"}
_RC = {"font.size": 8, "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False,
       "svg.fonttype": "none"}


def inline_svg(figure, key: str) -> str:
    """Serialise a matplotlib figure as an ``<svg>`` element.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    key : str
        Seeds the element ids (``svg.hashsalt``): the same key gives the same SVG text, and
        different keys keep the ids of several plots in one page apart.
    """
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": key}):
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):].strip()


def _figure(width_in: float, height_in: float):
    """A figure of this size in inches; create it and its artists inside ``rc_context(_RC)``,
    where matplotlib reads its settings."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in))


def quality_plot(counts: pd.DataFrame) -> str:
    """Files per source and outcome as horizontal stacked bars.

    Parameters
    ----------
    counts : DataFrame indexed by source, one column of file counts per status
        (``curated``, ``quarantined``, ``failed``; others are drawn in grey).
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure = _figure(6.5, 0.32 * len(counts) + 1.0)
        axes = figure.subplots()
        left = np.zeros(len(counts))
        for status in counts.columns:
            values = counts[status].to_numpy(dtype=float)
            axes.barh(counts.index, values, left=left, label=status, color=_STATUS_COLOURS.get(status, "#9aa0a6"))
            left += values
        axes.invert_yaxis()  # sources read top to bottom in the table's order
        axes.set_xlabel("files (latest version of each)")
        axes.legend(loc="lower right", frameon=False)
    return inline_svg(figure, "quality")


def distribution_plot(values: pd.DataFrame, biomarker: str, groupings: dict[str, str]) -> str:
    """Box plots of one biomarker, one panel per grouping (arm, site), every subject as a point.

    Parameters
    ----------
    values : DataFrame with ``value`` (one per subject, in the biomarker's unit) and the grouping columns
    biomarker : str
        The biomarker's name, which carries its unit (``resting_heart_rate_1d_bpm``).
    groupings : dict
        Column of ``values`` -> what it is called on the plot, e.g. ``{"arm": "arm", "site_id": "site"}``.
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure = _figure(3.3 * len(groupings), 2.6)
        panels = np.atleast_1d(figure.subplots(1, len(groupings), sharey=True))
        for axes, (column, label) in zip(panels, groupings.items(), strict=True):
            groups = {str(name): group["value"].to_numpy(dtype=float)
                      for name, group in values.groupby(column, sort=True)}
            axes.boxplot(list(groups.values()), tick_labels=[f"{name}\n(n={len(v)})" for name, v in groups.items()],
                         widths=0.5, showfliers=False, medianprops={"color": "#1d2433"})
            for position, points in enumerate(groups.values(), start=1):
                # spread evenly, not at random: the same data draw the same picture
                offsets = np.linspace(-0.12, 0.12, len(points)) if len(points) > 1 else np.zeros(1)
                axes.scatter(position + offsets, points, s=9, color="#2b6cb0", alpha=0.7, zorder=3)
            axes.set_title(f"by {label}")
        panels[0].set_ylabel(biomarker)
        figure.suptitle(biomarker, fontsize=9)
    return inline_svg(figure, f"distribution-{biomarker}")


def trajectory_plot(subject_id: str, series: pd.DataFrame, events: pd.DataFrame) -> str:
    """One subject's biomarkers over time, one panel each, with its events as vertical lines.

    Parameters
    ----------
    subject_id : str
        The study subject code.
    series : DataFrame with ``event_timestamp`` (UTC), ``biomarker`` and ``value``
    events : DataFrame with ``time`` (UTC), ``kind`` (a key of ``EVENT_STYLES``) and ``label``
    """
    import matplotlib

    names = list(dict.fromkeys(series["biomarker"]))
    with matplotlib.rc_context(_RC):
        figure = _figure(7.0, 1.15 * len(names) + 0.9)
        panels = np.atleast_1d(figure.subplots(len(names), 1, sharex=True))
        for axes, name in zip(panels, names, strict=True):
            rows = series[series["biomarker"] == name].sort_values("event_timestamp")
            axes.plot(rows["event_timestamp"].dt.tz_convert(None), rows["value"], marker="o", markersize=3,
                      linewidth=1, color="#2b6cb0")
            axes.set_ylabel(name, rotation=0, ha="right", va="center")
            for event in events.itertuples():
                colour, style = EVENT_STYLES[event.kind]
                axes.axvline(event.time.tz_convert(None), color=colour, linestyle=style, linewidth=1.2,
                             label=event.kind)
        handles, labels = panels[0].get_legend_handles_labels()
        shown = dict(zip(labels, handles, strict=True))  # one legend entry per kind of event
        if shown:
            panels[0].legend(shown.values(), shown.keys(), loc="lower left", bbox_to_anchor=(0, 1.02),
                             ncols=len(shown), frameon=False)
        panels[-1].set_xlabel("time (UTC)")
        figure.autofmt_xdate()
        figure.suptitle(subject_id, fontsize=9, x=0.02, ha="left")
    return inline_svg(figure, f"trajectory-{subject_id}")
