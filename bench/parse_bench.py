"""Parsing cost of ``scraping.pages.analyse`` on the real saved pages in ../shared/amazon.

Usage (from the repository root)::

    uv run python bench/parse_bench.py [--repeat 5] [--soup-repeat 1]

For every product page it times, in the same run: a bare ``lxml.html.fromstring`` (the floor any
DOM-based parser pays), a full ``BeautifulSoup(page, "lxml")`` (what a naive parser pays), and our
``analyse()`` (classify + parse). Each figure is the median of ``--repeat`` runs. It then reports
the medians, the analyse/lxml ratio, the peak Python heap of one ``analyse()`` and of one full
BeautifulSoup parse (tracemalloc; libxml2's own C buffers are not counted), the process's peak
RSS, and the median ``analyse()`` time on captcha and error pages. The ratio is also given for
amazon.com pages and for the other marketplaces' pages apart (the manifest's ``non_us``), each
analysed with its marketplace's currency as the provider passes it, so a non-US page can be
seen to cost no more than a US one. Skips cleanly (exit 0) when the corpus is absent.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lxml.html  # type: ignore[import-untyped]  # lxml ships no types (the types-lxml package would add them)
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scraping.marketplaces import find_marketplace  # noqa: E402  (needs the repository root on sys.path)
from scraping.pages import analyse  # noqa: E402

CORPUS = ROOT.parent / "shared" / "amazon"


def median_ms(func: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        func()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def peak_kib(func: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per page for lxml and analyse (median)")
    parser.add_argument("--soup-repeat", type=int, default=1, help="runs per page for full BeautifulSoup")
    args = parser.parse_args()

    manifest = CORPUS / "MANIFEST.json"
    if not manifest.is_file():
        print(f"shared Amazon corpus not found at {CORPUS}: nothing to measure.")
        return 0
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    pages = {entry["id"]: (entry["kind"], (CORPUS / "pages" / f"{entry['id']}.html").read_bytes()) for entry in entries}
    # The marketplace's currency, as the provider of the page's store passes it to analyse().
    hints = {
        entry["id"]: getattr(find_marketplace(entry.get("marketplace", "")), "currency", None) for entry in entries
    }
    non_us = {entry["id"] for entry in entries if entry.get("non_us")}
    analyse(200, "text/html", next(body for kind, body in pages.values() if kind == "product"))  # warm imports

    print(f"python {platform.python_version()}, {platform.machine()}, {len(pages)} pages from {CORPUS}")
    print(f"{'page':52} {'KB':>6} {'lxml ms':>8} {'soup ms':>8} {'ours ms':>8} {'ours/lxml':>9} {'ours KiB':>9}")
    rows = []
    for page_id, (kind, body) in pages.items():
        if kind != "product":
            continue
        lxml_ms = median_ms(partial(lxml.html.fromstring, body), args.repeat)
        soup_ms = median_ms(partial(BeautifulSoup, body, "lxml"), args.soup_repeat)
        ours = partial(analyse, 200, "text/html", body, currency_hint=hints[page_id])
        ours_ms = median_ms(ours, args.repeat)
        ours_kib = peak_kib(ours)
        rows.append((page_id, len(body), lxml_ms, soup_ms, ours_ms, ours_kib))
        print(
            f"{page_id[:52]:52} {len(body) / 1024:6.0f} {lxml_ms:8.1f} {soup_ms:8.1f} {ours_ms:8.1f}"
            f" {ours_ms / lxml_ms:9.2f} {ours_kib:9.0f}"
        )

    blocked_ms = [
        median_ms(partial(analyse, 200, "text/html", body), args.repeat)
        for kind, body in pages.values()
        if kind in ("captcha", "error")
    ]
    largest = max(rows, key=lambda row: row[1])
    soup_kib = peak_kib(lambda: BeautifulSoup(pages[largest[0]][1], "lxml"))

    def med(index: int) -> float:
        return statistics.median(row[index] for row in rows)

    print()
    print(f"product pages: {len(rows)} (median size {med(1) / 1024:.0f} KB)")
    print(f"median lxml.html.fromstring: {med(2):.1f} ms")
    print(f"median BeautifulSoup(lxml), whole page: {med(3):.1f} ms")
    print(f"median analyse(): {med(4):.1f} ms")
    print(f"median ratio analyse/lxml (per page): {statistics.median(row[4] / row[2] for row in rows):.2f}")
    print(f"worst ratio analyse/lxml: {max(row[4] / row[2] for row in rows):.2f}")
    for label, group in (
        ("amazon.com", [row for row in rows if row[0] not in non_us]),
        ("other marketplaces", [row for row in rows if row[0] in non_us]),
    ):
        if group:
            ratios = [row[4] / row[2] for row in group]
            print(
                f"  {label} ({len(group)} pages): median ratio {statistics.median(ratios):.2f}, "
                f"worst {max(ratios):.2f}, median analyse() {statistics.median(row[4] for row in group):.1f} ms"
            )
    print(f"peak Python heap of one analyse(): median {med(5):.0f} KiB, max {max(row[5] for row in rows):.0f} KiB")
    print(f"peak Python heap of one full BeautifulSoup parse of the largest page ({largest[0]}): {soup_kib:.0f} KiB")
    print(f"captcha/error pages: {len(blocked_ms)}, median analyse(): {statistics.median(blocked_ms) * 1000:.0f} us")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
