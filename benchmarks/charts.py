"""The benchmarks' PNG charts: the measured paths side by side, as bars with their values written on.

matplotlib with the Agg backend (no display needed); one PNG per benchmark,
``benchmarks/results/<name>.png``, whose footer names the machine.
"""
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from benchmarks.results import RESULTS, chart_path  # noqa: E402

MEDIAN_COLOUR = "#4878a8"
P99_COLOUR = "#e0904a"
VALUE_COLOUR = "#5a9e6f"


def new_figure(title: str, panels: int = 1, width_per_panel: float = 5.0) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` charts side by side under one title."""
    figure, axes = plt.subplots(1, panels, figsize=(width_per_panel * panels, 4.2), squeeze=False)
    figure.suptitle(title, fontsize=12)
    return figure, list(axes[0])


def _label_bars(axes: Axes, bars, number_format: str) -> None:
    for bar in bars:
        height = bar.get_height()
        if height:
            axes.annotate(
                number_format.format(height),
                (bar.get_x() + bar.get_width() / 2, height),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )


def median_p99_bars(
    axes: Axes,
    labels: Sequence[str],
    medians: Sequence[float],
    p99s: Sequence[float],
    unit: str,
    title: str,
    number_format: str = "{:.2f}",
    log_scale: bool = False,
    second_label: str = "p99",
) -> None:
    """Each path's median and p99 (or another ``second_label``ed figure) as a pair of bars."""
    positions = range(len(labels))
    width = 0.38
    median_bars = axes.bar([x - width / 2 for x in positions], medians, width, label="median", color=MEDIAN_COLOUR)
    p99_bars = axes.bar([x + width / 2 for x in positions], p99s, width, label=second_label, color=P99_COLOUR)
    _label_bars(axes, median_bars, number_format)
    _label_bars(axes, p99_bars, number_format)
    _finish(axes, labels, unit, title, log_scale)
    axes.legend(fontsize=8)


def value_bars(
    axes: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    unit: str,
    title: str,
    number_format: str = "{:.0f}",
    log_scale: bool = False,
) -> None:
    """One bar per path."""
    bars = axes.bar(range(len(labels)), values, 0.6, color=VALUE_COLOUR)
    _label_bars(axes, bars, number_format)
    _finish(axes, labels, unit, title, log_scale)


def _finish(axes: Axes, labels: Sequence[str], unit: str, title: str, log_scale: bool) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_ylabel(unit)
    axes.set_xticks(range(len(labels)), labels, fontsize=8, rotation=15 if max(map(len, labels)) > 12 else 0)
    if log_scale:
        axes.set_yscale("log")
    else:
        axes.margins(y=0.15)
    axes.grid(axis="y", alpha=0.3)


def save_chart(figure: Figure, name: str, machine: dict) -> str:
    """Write the figure to ``results/<name>.png`` with the machine in its footer; return the path."""
    footer = "{} x{} cores, load average at start {}".format(
        machine["cpu"], machine["cores"], " ".join("{:.2f}".format(load) for load in machine["load_average"])
    )
    figure.text(0.01, 0.01, footer, fontsize=7, color="#666666")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = chart_path(name)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)
