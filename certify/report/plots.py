"""Inline-SVG plots for the HTML report (matplotlib imported lazily, Agg backend, no external URLs).

Every function returns an ``<svg>`` string ready to paste into HTML, or ``None`` when there is
nothing to plot.  :func:`matplotlib_available` lets the HTML renderer say why plots are missing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from certify.results import CheckResult, CheckStatus

_STATUS_COLOR = {
    CheckStatus.PROVED: "#2e7d32",
    CheckStatus.NOT_PROVED: "#f9a825",
    CheckStatus.DISPROVED: "#c62828",
    CheckStatus.NOT_APPLICABLE: "#9e9e9e",
    CheckStatus.ERROR: "#6a1b9a",
}


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (plots are skipped with a note otherwise)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _svg(fig: Any) -> str:
    """Serialise a figure to a bare inline ``<svg>``: no XML prolog, DOCTYPE, metadata or namespace URLs."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "certify"  # deterministic element ids
    return plt.subplots(figsize=(width, height))


def fmt_margin(x: float) -> str:
    """Short label for a margin bar."""
    return f"{x:.3g}"


def margin_chart(checks: Sequence[CheckResult]) -> str | None:
    """Horizontal bar chart of every check's margin (negative is good), coloured by status.

    >>> from certify.results import Property
    >>> c = CheckResult("l0", Property.DELTA_ISS, CheckStatus.PROVED, "x", margin=-0.3, scope="layer0")
    >>> margin_chart([c]).startswith("<svg")
    True
    """
    rows = [c for c in checks if isinstance(c.margin, (int, float)) and abs(float(c.margin)) != float("inf")]
    if not rows:
        return None
    margins = [float(c.margin) for c in rows if c.margin is not None]  # every row has one
    fig, ax = _figure(7.0, 0.45 * len(rows) + 1.2)
    labels = [c.name if c.scope == "model" else f"{c.name} [{c.scope}]" for c in rows]
    ax.barh(range(len(rows)), margins, color=[_STATUS_COLOR[c.status] for c in rows])
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    mags = [abs(m) for m in margins if m != 0.0]
    if mags and max(mags) / min(mags) > 100:  # residuals of 0.85 and 4e3 side by side: symmetric-log axis
        ax.set_xscale("symlog", linthresh=min(mags))
    for i, m in enumerate(margins):
        ax.annotate(fmt_margin(m), (max(m, 0.0), i), xytext=(3, 0),
                    textcoords="offset points", va="center", ha="left", fontsize="small")
    ax.set_xlabel("margin / residual (negative = criterion satisfied; symmetric-log scale when they span decades)")
    ax.set_title("Margins per check")
    return _svg(fig)


def _series(sim: Mapping[str, Any]) -> tuple[list[float] | None, dict[str, list[list[float]]]]:
    """Split a simulation mapping into the time axis and numeric series (each as a list of lines)."""
    t = None
    for key in ("t", "time", "k"):
        if isinstance(sim.get(key), (list, tuple)) or hasattr(sim.get(key), "tolist"):
            t = [float(v) for v in list(sim[key])]
            break
    out: dict[str, list[list[float]]] = {}
    for name, value in sim.items():
        if name in ("t", "time", "k"):
            continue
        value = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(value, (list, tuple)) or not value:
            continue
        try:
            if all(isinstance(v, (list, tuple)) for v in value):  # rows = time steps, columns = channels
                lines = [[float(row[j]) for row in value] for j in range(len(value[0]))]
            else:
                lines = [[float(v) for v in value]]
        except (TypeError, ValueError, IndexError):
            continue
        out[str(name)] = lines
    return t, out


def simulation_chart(sim: Mapping[str, Any] | None) -> str | None:
    """One panel per numeric series of a simulation (``{"t": [...], "y": [[...], ...], ...}``).

    >>> simulation_chart({"t": [0, 1, 2], "y": [0.0, 0.5, 0.25]}).startswith("<svg")
    True
    """
    if not sim:
        return None
    t, series = _series(sim)
    if not series:
        return None
    fig, axes = _figure(7.0, 1.8 * len(series) + 0.6)
    fig.clf()
    for i, (name, lines) in enumerate(series.items()):
        ax = fig.add_subplot(len(series), 1, i + 1)
        for j, line in enumerate(lines):
            x = t if t is not None and len(t) == len(line) else list(range(len(line)))
            ax.plot(x, line, label=f"{name}[{j}]" if len(lines) > 1 else name, linewidth=1.2)
        ax.set_ylabel(name)
        if len(lines) > 1 and len(lines) <= 8:
            ax.legend(fontsize="small", loc="upper right")
    fig.axes[-1].set_xlabel("time step k" if t is None else "time t [s]")
    return _svg(fig)


def counterexample_chart(cex: Any) -> str | None:
    """The witness replayed: the loop's actuator (and plant states) from the witness state, or a
    network's periodic orbit, over time.

    >>> from certify.results import Counterexample
    >>> cex = Counterexample("limit_cycle", "", {"orbit": {"steps": 4, "states": [[0.9], [-0.9], [0.9], [-0.9]]}})
    >>> counterexample_chart(cex).startswith("<svg")
    True
    """
    data = getattr(cex, "data", None) or {}
    tr = data.get("trajectory")
    if tr is not None and hasattr(tr, "get") and tr.get("actuator"):
        Ts = float(tr.get("Ts") or 1.0)
        sim = {"t": [k * Ts for k in range(len(tr["actuator"]))], "actuator": list(tr["actuator"])}
        if tr.get("plant_states"):
            sim["plant states"] = [list(r) for r in tr["plant_states"]]
        return simulation_chart(sim)
    orbit = data.get("orbit")
    if orbit is not None and hasattr(orbit, "get") and orbit.get("states"):
        return simulation_chart({"states": [list(r) for r in orbit["states"]]})
    return None


def verdict_map(kp: Sequence[float], ki: Sequence[float], verdicts: Sequence[Sequence[str]]) -> str | None:
    """A map of verdicts over a grid of PI gains (columns ``kp``, rows ``ki``), coloured by verdict.

    >>> verdict_map([0.1, 0.2], [0.01], [["certified", "not_certified"]]).startswith("<svg")
    True
    """
    if not verdicts or not verdicts[0]:
        return None
    colors = {"certified": "#2e7d32", "not_certified": "#ef6c00", "unstable": "#c62828",
              "invalid_input": "#6a1b9a", "internal_error": "#37474f"}
    fig, ax = _figure(6.0, 4.0)
    for i, k_i in enumerate(ki):
        for j, k_p in enumerate(kp):
            ax.scatter([k_p], [k_i], s=120, marker="s", color=colors.get(verdicts[i][j], "#999999"))
    for name, color in colors.items():
        if any(name in row for row in verdicts):
            ax.scatter([], [], s=60, marker="s", color=color, label=name)
    if len(kp) > 1 and min(kp) > 0 and max(kp) / min(kp) > 20:
        ax.set_xscale("log")
    if len(ki) > 1 and min(ki) > 0 and max(ki) / min(ki) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("kp")
    ax.set_ylabel("ki")
    ax.legend(fontsize="small", loc="best")
    ax.set_title("Closed-loop verdict per PI gain pair")
    return _svg(fig)


def loop_simulation_chart(sim: Mapping[str, Any] | None) -> str | None:
    """Closed-loop runs from several starts: the estimate against the reference, the actuator against
    its limits, over time in seconds (``sim["runs"]`` as :func:`certify.loop.check.check_closed_loop`
    writes it).

    >>> loop_simulation_chart({"t": [0, 10, 20], "runs": {"actuator": [[0.2, 0.3, 0.3]], "estimate": [[90, 100, 108]],
    ...                        "reference": 108.0, "u_min": 0.0, "u_max": 1.0}}).startswith("<svg")
    True
    """
    runs = None if not sim else sim.get("runs")
    if not runs or not runs.get("estimate"):
        return None
    assert sim is not None  # runs came from it
    t = [float(v) for v in sim.get("t") or []]
    fig, _ = _figure(7.0, 4.6)
    fig.clf()
    ax1, ax2 = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    for line in runs["estimate"]:
        ax1.plot(t if len(t) == len(line) else range(len(line)), line, linewidth=0.9, alpha=0.8)
    if runs.get("reference") is not None:
        ax1.axhline(float(runs["reference"]), color="black", linestyle="--", linewidth=1.0, label="reference")
        ax1.legend(fontsize="small", loc="best")
    ax1.set_ylabel("estimate")
    ax1.set_title(f"Closed loop from {len(runs['estimate'])} starts")
    for line in runs.get("actuator") or []:
        ax2.plot(t if len(t) == len(line) else range(len(line)), line, linewidth=0.9, alpha=0.8)
    for key, label in (("u_min", "actuator limits"), ("u_max", None)):
        if runs.get(key) is not None:
            ax2.axhline(float(runs[key]), color="#c62828", linestyle=":", linewidth=1.0, label=label)
    ax2.legend(fontsize="small", loc="best")
    ax2.set_ylabel("actuator")
    ax2.set_xlabel("time t [s]" if t else "time step k")
    return _svg(fig)
