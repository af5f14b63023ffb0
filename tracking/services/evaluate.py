"""Evaluate: apply a tracker's alert rules to a new observation and call the alert hook once.

Runs inside the transaction that recorded the observation (the outbox row the hook writes
commits or rolls back with it). An observation is a SUCCESS run with a price (its
:class:`~tracking.models.PricePoint`); FAILED and BLOCKED runs never reach this module, so
they neither fire, arm nor disarm anything.

The rules (``AlertRule.kind``), each comparing the observation with the product's history
*before* it (:class:`History`):

============== ====================================================================================
kind           fires when
============== ====================================================================================
below_target   price <= ``price`` and the rule is armed (a new rule is armed: the first observation
               counts). It then disarms; an observation above ``price`` re-arms it. With
               ``repeat=each_lower``, while disarmed it also fires on each price strictly lower than
               the lowest it fired at since it last disarmed.
drop_percent   price <= the previous observation's price x (1 - ``percent``/100).
new_low        price < every price observed in the previous ``days`` days (null: ever), and there
               is at least one such earlier observation.
back_in_stock  the observation is in stock, and the previous successful run with a known stock
               state was out of stock or unavailable. A run in stock *without* a price is not a
               stock state here (nothing can be bought at an unknown price): the alert comes with
               the first price.
any_change     price differs from the previous observation's price (``direction``: both, down, up).
============== ====================================================================================

"The previous observation" is the previous SUCCESS with a price. A rule within
``cooldown_minutes`` of its last alert (``last_fired_at``) still fires and changes its state, but
its reason is marked suppressed: the firing is recorded, not sent.

Exactly once: every rule that fired on one observation goes into one :class:`TrackerAlert`,
handed to the hook once, which writes one outbox row per (tracker, observation) (a unique
constraint). below_target's state moves by conditional UPDATEs from the state this evaluation
read, so of two evaluations racing on one rule only one fires it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from django.db import transaction
from django.db.models import Q

from tracking.hooks import AlertOutcome, AlertReason, TrackerAlert, alert_handlers
from tracking.models import (
    RULE_STRENGTH,
    AlertRule,
    AvailabilityChoices,
    Direction,
    PricePoint,
    Repeat,
    RuleKind,
    RunStatus,
    ScrapeRun,
    Tracker,
    plain_number,
)

OUT_OF_STOCK = (AvailabilityChoices.OUT_OF_STOCK, AvailabilityChoices.UNAVAILABLE)
_TENTH = Decimal("0.1")


class History:
    """The product's history before one observation, as the rules need it; each part is read
    at most once per observation (shared by every tracker of the product) and only if a rule
    asks for it.

    ``cached_price`` / ``cached_availability``: the product's cache of its last successful run
    *before* this observation (the scrape loaded the product under its claim, so no other run
    has recorded since). They answer the common case without a query.
    """

    def __init__(
        self,
        *,
        point: PricePoint,
        cached_price: Decimal | None = None,
        cached_availability: str = "",
    ) -> None:
        self.point = point
        self.cached_price = cached_price
        self.cached_availability = cached_availability
        self._lows: dict[int | None, Decimal | None] = {}

    def _earlier_points(self) -> Q:
        return Q(product_id=self.point.product_id) & ~Q(pk=self.point.pk)

    @cached_property
    def previous_price(self) -> Decimal | None:
        """The price of the previous successful observation with a price (None: this is the first)."""
        if self.cached_price is not None:
            return self.cached_price
        # One backward probe of price_history_product_idx (product, observed_at).
        return (
            PricePoint.objects.filter(self._earlier_points(), observed_at__lte=self.point.observed_at)
            .order_by("-observed_at", "-pk")
            .values_list("price", flat=True)
            .first()
        )

    def low_since(self, days: int | None) -> Decimal | None:
        """The lowest earlier price in the last ``days`` days (ever if None); None without any.

        Read through price_history_low_idx (product, price, observed_at) in price order: the
        first row inside the window is the answer, so it is never a scan of the history.
        """
        if days not in self._lows:
            points = PricePoint.objects.filter(self._earlier_points())
            if days is not None:
                points = points.filter(observed_at__gte=self.point.observed_at - timedelta(days=days))
            self._lows[days] = points.order_by("price").values_list("price", flat=True).first()
        return self._lows[days]

    @cached_property
    def previous_stock(self) -> str | None:
        """The stock state of the previous successful run that had one (see back_in_stock)."""
        if self.cached_availability in OUT_OF_STOCK:
            return self.cached_availability
        if self.cached_availability == AvailabilityChoices.IN_STOCK and self.cached_price is not None:
            return AvailabilityChoices.IN_STOCK
        # The last run said nothing usable (unknown, or in stock without a price): look further
        # back, newest first, through scrape_runs_product_idx (product, -created_at).
        stock = Q(availability__in=OUT_OF_STOCK) | Q(
            availability=AvailabilityChoices.IN_STOCK, price_point__isnull=False
        )
        return (
            ScrapeRun.objects.filter(stock, product_id=self.point.product_id, status=RunStatus.SUCCESS)
            .exclude(pk=self.point.run_id)
            .order_by("-created_at", "-pk")
            .values_list("availability", flat=True)
            .first()
        )


@dataclass(slots=True)
class RuleRow:
    """The columns of an :class:`~tracking.models.AlertRule` that evaluation reads, without a
    model instance: a product with 50 trackers of 10 rules loads 500 of them on every scrape,
    and building model instances was most of the evaluation's cost (BENCHMARKS.md, "Alert rules")."""

    pk: int
    tracker_id: int
    kind: str
    price: Decimal | None
    repeat: str
    percent: Decimal | None
    days: int | None
    direction: str
    cooldown_minutes: int
    armed: bool
    lowest_alerted: Decimal | None
    last_fired_at: datetime | None


RULE_COLUMNS = tuple(name for name in RuleRow.__dataclass_fields__)


def rules_of(tracker_ids: Collection[int], *, kinds: Collection[str] | None = None) -> dict[int, list[RuleRow]]:
    """The rules of these trackers (of ``kinds`` only, if given), by tracker, oldest first: one query."""
    rules = AlertRule.objects.filter(tracker_id__in=list(tracker_ids))
    if kinds is not None:
        rules = rules.filter(kind__in=list(kinds))
    by_tracker: dict[int, list[RuleRow]] = {tracker_id: [] for tracker_id in tracker_ids}
    for values in rules.order_by("tracker_id", "pk").values_list(*RULE_COLUMNS):
        row = RuleRow(*values)
        by_tracker[row.tracker_id].append(row)
    return by_tracker


@dataclass(frozen=True, slots=True)
class _Firing:
    rule: RuleRow
    detail: str
    # A conditional UPDATE that must match for the firing to count (below_target's state).
    claim: Callable[[], int] | None = None


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _below_target(rule: RuleRow, point: PricePoint, history: History) -> _Firing | None:
    target = rule.price
    if target is None:  # never: the database requires a price for this kind
        return None
    price = point.price
    if price > target:
        if not rule.armed:
            # Re-arm. Decided by the database row, not the in-memory object, which may be stale.
            AlertRule.objects.filter(pk=rule.pk, armed=False, price=target).update(armed=True, lowest_alerted=None)
            rule.armed, rule.lowest_alerted = True, None
        return None
    if rule.armed:
        detail = f"at or below your target of {_money(target)}"
    elif rule.repeat == Repeat.EACH_LOWER and (rule.lowest_alerted is None or price < rule.lowest_alerted):
        detail = f"below your target of {_money(target)} and lower than before"
        if rule.lowest_alerted is not None:
            detail += f" ({_money(rule.lowest_alerted)})"
    else:
        return None

    def claim() -> int:
        # Of two processes evaluating the same rule, one moves it from the state both read.
        current = AlertRule.objects.filter(
            pk=rule.pk, armed=rule.armed, price=target, lowest_alerted=rule.lowest_alerted
        )
        claimed = current.update(armed=False, lowest_alerted=price)
        if claimed:
            rule.armed, rule.lowest_alerted = False, price
        return claimed

    return _Firing(rule, detail, claim)


def _drop_percent(rule: RuleRow, point: PricePoint, history: History) -> _Firing | None:
    previous, percent = history.previous_price, rule.percent
    if previous is None or previous <= 0 or percent is None:
        return None
    # price <= previous x (1 - p/100), in exact decimals: price x 100 <= previous x (100 - p).
    if point.price * 100 > previous * (100 - percent):
        return None
    drop = ((previous - point.price) * 100 / previous).quantize(_TENTH, rounding=ROUND_HALF_UP)
    return _Firing(rule, f"-{plain_number(drop)}% from {_money(previous)}")


def _new_low(rule: RuleRow, point: PricePoint, history: History) -> _Firing | None:
    low = history.low_since(rule.days)
    if low is None or point.price >= low:
        return None
    window = "ever seen" if rule.days is None else f"in {rule.days} days"
    return _Firing(rule, f"lowest price {window} (previous low {_money(low)})")


def _back_in_stock(rule: RuleRow, point: PricePoint, history: History) -> _Firing | None:
    if point.availability != AvailabilityChoices.IN_STOCK:
        return None
    previous = history.previous_stock
    if previous not in OUT_OF_STOCK:
        return None
    return _Firing(rule, f"back in stock (was {AvailabilityChoices(previous).label.lower()})")


def _any_change(rule: RuleRow, point: PricePoint, history: History) -> _Firing | None:
    previous = history.previous_price
    if previous is None or point.price == previous:
        return None
    down = point.price < previous
    if (rule.direction == Direction.DOWN and not down) or (rule.direction == Direction.UP and down):
        return None
    return _Firing(rule, f"{'down' if down else 'up'} {_money(abs(point.price - previous))} from {_money(previous)}")


_EVALUATORS: dict[str, Callable[[RuleRow, PricePoint, History], _Firing | None]] = {
    RuleKind.BELOW_TARGET: _below_target,
    RuleKind.DROP_PERCENT: _drop_percent,
    RuleKind.NEW_LOW: _new_low,
    RuleKind.BACK_IN_STOCK: _back_in_stock,
    RuleKind.ANY_CHANGE: _any_change,
}


def in_cooldown(rule: RuleRow, moment: datetime) -> bool:
    """True while ``moment`` is within the rule's cooldown of its last alert (the end is free)."""
    if not rule.cooldown_minutes or rule.last_fired_at is None:
        return False
    return moment < rule.last_fired_at + timedelta(minutes=rule.cooldown_minutes)


def _strength(firing: _Firing) -> tuple[int, int]:
    return RULE_STRENGTH.index(firing.rule.kind), firing.rule.pk


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one tracker's rules did on one observation: the alert handed to the hook, and the
    rules whose alert the user will get (their cooldowns start: :func:`alerts_record`)."""

    alert: TrackerAlert
    told: tuple[int, ...]


def tracker_evaluate(
    *, tracker: Tracker, point: PricePoint, history: History, rules: list[RuleRow] | None = None
) -> Evaluation | None:
    """Apply ``tracker``'s rules to one observation and hand every rule that fired to the alert
    hook as one :class:`TrackerAlert` (None: none fired). Then call :func:`alerts_record` with
    this and the product's other evaluations.

    ``rules``: the tracker's rules as :func:`rules_of` reads them (read here if not given; the
    caller reads them for all of a product's trackers at once). Must run inside the transaction
    that recorded ``point``.
    """
    if not tracker.enabled:
        return None
    if rules is None:
        rules = rules_of([tracker.pk])[tracker.pk]
    firings = []
    for rule in rules:
        firing = _EVALUATORS[rule.kind](rule, point, history)
        if firing is not None and (firing.claim is None or firing.claim()):
            firings.append(firing)
    if not firings:
        return None
    firings.sort(key=_strength)
    moment = point.observed_at
    reasons = tuple(
        AlertReason(
            kind=firing.rule.kind,
            rule_id=firing.rule.pk,
            detail=firing.detail,
            suppressed="cooldown" if in_cooldown(firing.rule, moment) else "",
        )
        for firing in firings
    )
    targets = [firing.rule.price for firing in firings if firing.rule.kind == RuleKind.BELOW_TARGET]
    alert = TrackerAlert(
        tracker=tracker,
        point=point,
        reasons=reasons,
        previous_price=history.previous_price,
        target_price=targets[0] if targets else None,
    )
    outcomes = {handler(alert) for handler in alert_handlers()}
    told: tuple[int, ...] = ()
    if AlertOutcome.QUEUED in outcomes:
        # The user will be told about these rules: their cooldowns start now.
        told = tuple(reason.rule_id for reason in reasons if not reason.suppressed and reason.rule_id is not None)
    return Evaluation(alert=alert, told=told)


def alerts_record(*, evaluations: Collection[Evaluation], moment: datetime) -> None:
    """Record when the rules and trackers of these evaluations last alerted: two UPDATEs for all
    of a product's trackers, not two per tracker (BENCHMARKS.md, "Alert rules")."""
    told = [rule_id for evaluation in evaluations for rule_id in evaluation.told]
    if not told:
        return
    AlertRule.objects.filter(pk__in=told).update(last_fired_at=moment)
    trackers = [evaluation.alert.tracker for evaluation in evaluations if evaluation.told]
    Tracker.objects.filter(pk__in=[tracker.pk for tracker in trackers]).update(last_alert_at=moment)
    for tracker in trackers:
        tracker.last_alert_at = moment


def tracker_evaluate_current(*, tracker: Tracker) -> TrackerAlert | None:
    """Re-evaluate a tracker's below_target rules against its product's latest observation
    (after a rule was created or its price changed): a target above the current price alerts
    at once, one below it re-arms. The other kinds compare two observations and wait for the
    next one.
    """
    point = PricePoint.objects.filter(product_id=tracker.product_id).order_by("-observed_at", "-pk").first()
    if point is None:
        return None
    with transaction.atomic():
        # Fresh rules, read inside the transaction that changes them.
        current = Tracker.objects.select_related("user").filter(pk=tracker.pk).first()
        if current is None:
            return None
        rules = rules_of([current.pk], kinds={RuleKind.BELOW_TARGET})[current.pk]
        evaluation = tracker_evaluate(tracker=current, point=point, history=History(point=point), rules=rules)
        if evaluation is None:
            return None
        alerts_record(evaluations=[evaluation], moment=point.observed_at)
    tracker.last_alert_at = current.last_alert_at
    return evaluation.alert
