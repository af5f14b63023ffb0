"""Server-side SVG price charts for the admin: no JavaScript, no external assets.

:func:`price_history_svg` is a pure function: observations and target prices in, one inline
``<svg>`` string out. Every piece of text it writes is escaped here, which is what lets the
admin mark the result safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape

# The drawing in SVG user units; the element itself scales to the width of its container.
WIDTH = 800
HEIGHT = 300
MARGIN_LEFT = 90  # room for the price labels
MARGIN_RIGHT = 170  # room for the target labels
MARGIN_TOP = 20
MARGIN_BOTTOM = 40  # room for the date labels
# A line of more vertices than the plot has pixels only adds weight to the page, so longer
# histories are reduced to about this many vertices (see downsample()).
MAX_POINTS = 500
# Dates alone say little about a history shorter than this; show the time of day too.
SHOW_TIMES_BELOW = timedelta(days=2)

# The admin's own colour variables (so the chart follows its light and dark themes), with
# fallbacks for an SVG shown anywhere else.
LINE_COLOR = "var(--link-fg, #417690)"
TARGET_COLOR = "var(--error-fg, #ba2121)"
AXIS_COLOR = "var(--body-quiet-color, #666)"
GRID_COLOR = "var(--hairline-color, #e8e8e8)"
TEXT_COLOR = "var(--body-fg, #333)"

Point = tuple[datetime, Decimal]


@dataclass(frozen=True, slots=True)
class TargetLine:
    """A target price drawn as a dashed horizontal line, with its label."""

    price: Decimal
    label: str


def downsample(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """Reduce a time-ordered series to at most ``max_points`` points, keeping its extremes.

    The series is cut into equal runs and each run keeps its lowest and highest price (in time
    order), plus the first and last point of the whole series. A plain stride would drop a
    short price dip, which is exactly what someone looking at a price tracker wants to see.
    """
    if len(points) <= max_points:
        return list(points)
    inner = points[1:-1]
    buckets = max(1, (max_points - 2) // 2)
    kept: list[Point] = [points[0]]
    for index in range(buckets):
        bucket = inner[index * len(inner) // buckets : (index + 1) * len(inner) // buckets]
        if not bucket:
            continue
        low = min(range(len(bucket)), key=lambda i: bucket[i][1])
        high = max(range(len(bucket)), key=lambda i: bucket[i][1])
        kept.extend(bucket[i] for i in sorted({low, high}))
    kept.append(points[-1])
    return kept


def price_history_svg(
    points: Sequence[Point],
    *,
    targets: Sequence[TargetLine] = (),
    currency: str = "",
    title: str = "",
) -> str:
    """An inline SVG line chart of ``points`` (time-ordered ``(observed_at, price)`` pairs).

    Draws the price as a polyline (downsampled past :data:`MAX_POINTS`), the lowest and highest
    observed prices and the first and last dates on the axes, and each target as a dashed
    horizontal line with its label. No points: a short message instead of axes. One point: a dot.
    ``title`` (e.g. the product title) becomes the chart's accessible name.
    """
    name = f"Price history of {title}" if title else "Price history"
    header = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="price-chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" style="max-width: 100%; height: auto" '
        'font-family="sans-serif" font-size="12">'
        f"<title>{escape(name)}</title>"
    )
    if not points:
        message = "No price observations yet."
        return header + _text(WIDTH / 2, HEIGHT / 2, "middle", message, "empty") + "</svg>"

    plotted = downsample(points)
    prices = [price for _, price in points]
    low, high = min(prices), max(prices)
    scale = _Scale.fit(points[0][0], points[-1][0], [*prices, *(target.price for target in targets)])
    suffix = f" {currency}" if currency else ""

    parts = [header]
    # Axes, and the lowest and highest observed price as labelled grid lines.
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    parts.append(f'<path d="M{left},{top} V{bottom} H{right}" fill="none" style="stroke: {AXIS_COLOR}" class="axes"/>')
    for price in sorted({low, high}):
        y = scale.y(price)
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" style="stroke: {GRID_COLOR}" class="grid"/>'
        )
        parts.append(_text(left - 6, y + 4, "end", f"{price}{suffix}", "price-label"))
    first, last = points[0][0], points[-1][0]
    # Times to the second, with their zone, like the rest of the admin.
    date_format = "%Y-%m-%d %H:%M:%S %Z" if last - first < SHOW_TIMES_BELOW else "%Y-%m-%d"
    if first == last:
        parts.append(_text(scale.x(first), bottom + 20, "middle", _when(first, date_format), "date-label"))
    else:
        parts.append(_text(left, bottom + 20, "start", _when(first, date_format), "date-label"))
        parts.append(_text(right, bottom + 20, "end", _when(last, date_format), "date-label"))

    for target in targets:
        y = scale.y(target.price)
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" style="stroke: {TARGET_COLOR}" '
            f'stroke-dasharray="6 4" class="target"/>'
        )
        parts.append(_text(right + 6, y + 4, "start", target.label, "target-label", fill=TARGET_COLOR))

    vertices = " ".join(f"{scale.x(when):.1f},{scale.y(price):.1f}" for when, price in plotted)
    parts.append(
        f'<polyline points="{vertices}" fill="none" style="stroke: {LINE_COLOR}" stroke-width="2" '
        f'stroke-linejoin="round" class="price-line"/>'
    )
    if len(plotted) == 1:
        (when, price) = plotted[0]
        parts.append(f'<circle cx="{scale.x(when):.1f}" cy="{scale.y(price):.1f}" r="4" style="fill: {LINE_COLOR}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _when(moment: datetime, date_format: str) -> str:
    return moment.strftime(date_format).strip()  # a naive time has no zone to name


def _text(x: float, y: float, anchor: str, text: str, css_class: str, *, fill: str = TEXT_COLOR) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" style="fill: {fill}" class="{css_class}">'
        f"{escape(text)}</text>"
    )


@dataclass(frozen=True, slots=True)
class _Scale:
    """Maps times and prices to SVG coordinates inside the margins.

    Prices become floats here, and only here: pixel positions need no decimal exactness; every
    label is written from the original Decimal.
    """

    start: datetime
    seconds: float
    low: float
    high: float

    @classmethod
    def fit(cls, start: datetime, end: datetime, prices: Sequence[Decimal]) -> _Scale:
        low, high = float(min(prices)), float(max(prices))
        # Padding keeps the line and the target labels off the frame; a flat series still
        # needs a non-zero range.
        pad = (high - low) * 0.1 or max(abs(high) * 0.1, 1.0)
        return cls(start=start, seconds=(end - start).total_seconds(), low=low - pad, high=high + pad)

    def x(self, when: datetime) -> float:
        if self.seconds <= 0:  # a single instant sits in the middle
            return (MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2
        fraction = (when - self.start).total_seconds() / self.seconds
        return MARGIN_LEFT + fraction * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)

    def y(self, price: Decimal) -> float:
        fraction = (float(price) - self.low) / (self.high - self.low)
        return HEIGHT - MARGIN_BOTTOM - fraction * (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM)
