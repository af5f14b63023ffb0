"""The server-side SVG price chart (tracking.charts): a pure function, tested without a database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from xml.etree import ElementTree

from tracking.charts import MAX_POINTS, TargetLine, downsample, price_history_svg

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def series(*prices: str, step: timedelta = timedelta(hours=6)) -> list[tuple[datetime, Decimal]]:
    return [(START + index * step, Decimal(price)) for index, price in enumerate(prices)]


def parse(svg: str) -> ElementTree.Element:
    """The chart must be well-formed XML (it is inlined into the admin page as is)."""
    return ElementTree.fromstring(svg)  # noqa: S314 - our own output, not untrusted input


def vertices(svg: str) -> list[tuple[float, float]]:
    polyline = parse(svg).find(f"{SVG}polyline")
    assert polyline is not None
    pairs = (pair.split(",") for pair in polyline.get("points", "").split())
    return [(float(x), float(y)) for x, y in pairs]


def texts(svg: str) -> list[str]:
    return [element.text or "" for element in parse(svg).iter(f"{SVG}text")]


def test_the_price_line_has_one_vertex_per_observation_in_time_order():
    svg = price_history_svg(series("20.00", "18.50", "19.99", "15.00"), currency="USD")

    points = vertices(svg)
    assert len(points) == 4
    xs = [x for x, _ in points]
    assert xs == sorted(xs)
    # Lower prices are drawn lower (SVG y grows downwards).
    ys = [y for _, y in points]
    assert ys[3] > ys[1] > ys[2] > ys[0]


def test_the_axes_are_labelled_with_the_lowest_and_highest_price_and_the_first_and_last_date():
    svg = price_history_svg(series("20.00", "15.00", "17.25", step=timedelta(days=3)), currency="USD")

    labels = texts(svg)
    assert "15.00 USD" in labels
    assert "20.00 USD" in labels
    assert "2026-03-01" in labels
    assert "2026-03-07" in labels


def test_a_short_history_shows_times_to_the_second_with_their_zone():
    svg = price_history_svg(series("20.00", "15.00", step=timedelta(hours=1, seconds=7)))

    assert "2026-03-01 12:00:00 UTC" in texts(svg)
    assert "2026-03-01 13:00:07 UTC" in texts(svg)


def test_each_target_is_a_labelled_dashed_line_even_outside_the_observed_prices():
    targets = [TargetLine(Decimal("16.00"), "target 16.00 USD"), TargetLine(Decimal("25.00"), "target 25.00 USD")]

    svg = price_history_svg(series("20.00", "18.00"), targets=targets, currency="USD")

    lines = [line for line in parse(svg).iter(f"{SVG}line") if line.get("class") == "target"]
    assert len(lines) == 2
    assert all(line.get("stroke-dasharray") for line in lines)
    assert {"target 16.00 USD", "target 25.00 USD"} <= set(texts(svg))
    # Both lines sit inside the drawing, the higher target above the lower one.
    high, low = sorted(float(line.get("y1", "0")) for line in lines)
    assert 0 < high < low < 300


def test_a_malicious_title_and_label_are_escaped():
    title = '<script>alert("x")</script> & co'
    svg = price_history_svg(
        series("20.00", "18.00"),
        targets=[TargetLine(Decimal("19.00"), "<img src=x onerror=alert(1)>")],
        title=title,
    )

    assert "<script>" not in svg
    assert "<img" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)
    assert root.findtext(f"{SVG}title") == f"Price history of {title}"
    assert "<img src=x onerror=alert(1)>" in texts(svg)


def test_no_observations_give_a_message_instead_of_a_line():
    svg = price_history_svg([], targets=[TargetLine(Decimal("10.00"), "target 10.00")])

    assert parse(svg).find(f"{SVG}polyline") is None
    assert texts(svg) == ["No price observations yet."]


def test_a_single_observation_is_a_dot_in_the_middle():
    svg = price_history_svg(series("12.34"), currency="USD")

    assert len(vertices(svg)) == 1
    assert parse(svg).find(f"{SVG}circle") is not None
    assert "12.34 USD" in texts(svg)


def test_a_flat_price_is_drawn_without_dividing_by_zero():
    svg = price_history_svg(series("9.99", "9.99", "9.99"))

    ys = {y for _, y in vertices(svg)}
    assert len(ys) == 1
    assert 0 < ys.pop() < 300


def test_a_long_history_is_downsampled_but_keeps_its_dip_and_its_ends():
    prices = ["50.00"] * 10_000
    prices[6_001] = "19.99"  # a short dip, the thing a price watcher wants to see
    points = series(*prices, step=timedelta(minutes=30))

    kept = downsample(points)
    svg = price_history_svg(points)

    assert len(kept) <= MAX_POINTS
    assert kept[0] == points[0]
    assert kept[-1] == points[-1]
    assert points[6_001] in kept
    assert len(vertices(svg)) == len(kept)
    assert "19.99" in texts(svg)


def test_a_short_history_is_not_downsampled():
    points = series(*(f"{10 + index % 7}.00" for index in range(MAX_POINTS)))

    assert downsample(points) == points


def test_coordinates_are_plain_numbers():
    svg = price_history_svg(series("20.00", "18.00"))

    assert re.fullmatch(r"[\d.]+,[\d.]+ [\d.]+,[\d.]+", parse(svg).find(f"{SVG}polyline").get("points"))
