"""The fake store's state: what it serves for each ASIN, and the changes its control API accepts.

``POST /_control/products/<ASIN>`` and :meth:`fakestore.server.FakeStore.set_product` go through
:func:`apply_changes`, which validates every field and names the bad one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

FAULT_KINDS = (
    "captcha",
    "soft_captcha",
    "waf",
    "service_unavailable",
    "rate_limited",
    "not_found",
    "server_error",
    "slow",
    "drip",
    "oversized",
    "truncated",
    "redirect_foreign",
    "redirect_same_host",
    "redirect_loop",
    "json",
    "image",
)
# What a global fault mix draws from when no kinds are given: the blocks Amazon really serves.
DEFAULT_FAULT_MIX = ("captcha", "soft_captcha", "service_unavailable", "rate_limited")
AVAILABILITIES = ("in_stock", "out_of_stock", "unavailable")
ADVANCE_MODES = ("request", "time")


def clock() -> float:
    """Monotonic seconds; tests replace it to step time-driven price scripts."""
    return time.monotonic()


def default_price(asin: str) -> Decimal:
    """A stable price for ``asin`` between 4.99 and 499.99, so a fresh store needs no setup."""
    digest = int.from_bytes(hashlib.sha256(asin.upper().encode()).digest()[:4], "big")
    return Decimal(499 + digest % 49_501) / 100


def _money(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal string such as '12.34', not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a non-negative amount, not {value!r}")
    return amount.quantize(Decimal("0.01"))


@dataclass
class FakeProduct:
    """What the store serves for one ASIN."""

    asin: str
    title: str
    price: Decimal | None
    list_price: Decimal | None = None
    availability: str = "in_stock"
    script: list[Decimal | None] = field(default_factory=list)
    advance: str = "request"
    step_seconds: float = 60.0
    fault: str | None = None
    fault_times: int | None = None  # faulted responses left; None = until cleared
    latency_ms: int = 0
    exists: bool = True
    # Script progress.
    served: int = 0
    script_started: float = field(default_factory=lambda: clock())

    def current_price(self, now: float) -> Decimal | None:
        if not self.script:
            return self.price
        step = int((now - self.script_started) / self.step_seconds) if self.advance == "time" else self.served
        return self.script[min(step, len(self.script) - 1)]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["price"] = None if self.price is None else str(self.price)
        data["list_price"] = None if self.list_price is None else str(self.list_price)
        data["script"] = [None if price is None else str(price) for price in self.script]
        data["current_price"] = _str_or_none(self.current_price(clock()))
        del data["script_started"]
        return data


def _str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def apply_changes(product: FakeProduct, changes: dict[str, Any]) -> None:
    """Validate and apply control changes; raises ValueError naming the bad field."""
    unknown = set(changes) - {
        "price",
        "list_price",
        "title",
        "availability",
        "script",
        "advance",
        "step_seconds",
        "fault",
        "fault_times",
        "latency_ms",
        "exists",
    }
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "price" in changes:
        product.price = _money(changes["price"], "price")
    if "list_price" in changes:
        product.list_price = _money(changes["list_price"], "list_price")
    if "title" in changes:
        product.title = str(changes["title"])[:500]
    if "availability" in changes:
        if changes["availability"] not in AVAILABILITIES:
            raise ValueError(f"availability must be one of {', '.join(AVAILABILITIES)}")
        product.availability = changes["availability"]
    if "script" in changes:
        script = changes["script"] or []
        if not isinstance(script, list):
            raise ValueError("script must be a list of prices")
        product.script = [_money(price, "script entry") for price in script]
        product.served = 0
        product.script_started = clock()
    if "advance" in changes:
        if changes["advance"] not in ADVANCE_MODES:
            raise ValueError(f"advance must be one of {', '.join(ADVANCE_MODES)}")
        product.advance = changes["advance"]
    if "step_seconds" in changes:
        product.step_seconds = float(changes["step_seconds"])
        if product.step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
    if "fault" in changes:
        if changes["fault"] is not None and changes["fault"] not in FAULT_KINDS:
            raise ValueError(f"fault must be null or one of {', '.join(FAULT_KINDS)}")
        product.fault = changes["fault"]
    if "fault_times" in changes:
        product.fault_times = None if changes["fault_times"] is None else int(changes["fault_times"])
    if "latency_ms" in changes:
        product.latency_ms = max(0, int(changes["latency_ms"]))
    if "exists" in changes:
        product.exists = bool(changes["exists"])
