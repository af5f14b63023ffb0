"""A property-based test of the alert rules: Hypothesis drives random walks (prices, stock
states, failed and blocked runs, waits, redelivered tasks) and random rule sets through the real
scrape path (claim, task body, recording, evaluation, outbox, send), and compares every alert
with :class:`Reference`, an independent model written from the table in issue 13.

Compared after every step: per observation, which rules fired and which were suppressed by their
cooldown (the outbox rows), and how many emails the user got (one per observation with at least
one rule not suppressed, never more).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from accounts.models import User
from notifications.models import Notification
from scraping.models import Store
from scraping.results import Availability, ErrorKind, ScrapeResult, ScrapeStatus
from tracking import services
from tracking.models import Product, Tracker

START = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
OUT = (Availability.OUT_OF_STOCK, Availability.UNAVAILABLE)
_ids = itertools.count()

# --- the reference model -----------------------------------------------------------------------


@dataclass
class RefRule:
    """A rule as the issue describes it, with the state the table implies."""

    id: int
    kind: str
    price: Decimal | None = None
    repeat: str = "once"
    percent: Decimal | None = None
    days: int | None = None
    direction: str = "both"
    cooldown: int = 0
    armed: bool = True
    lowest: Decimal | None = None
    last_alert: datetime | None = None


@dataclass
class Reference:
    """The issue's table, line by line. Observations are successful runs; failed and blocked runs
    never reach it. ``alerts``: per observation on which a rule fired, ``{(rule id, suppressed)}``."""

    rules: list[RefRule]
    prices: list[tuple[datetime, Decimal]] = field(default_factory=list)
    stock: list[str] = field(default_factory=list)  # "out" or "in", for back_in_stock
    alerts: list[set[tuple[int, bool]]] = field(default_factory=list)
    emails: int = 0

    def observe(self, moment: datetime, price: Decimal | None, availability: str) -> None:
        if price is None:
            # No price: not an observation for the price rules. A stock state for back_in_stock
            # only if out of stock or unavailable (in stock at no price is not buyable yet).
            if availability in OUT:
                self.stock.append("out")
            return
        previous = self.prices[-1][1] if self.prices else None
        previous_stock = self.stock[-1] if self.stock else None
        fired = [
            rule for rule in self.rules if self._fires(rule, moment, price, availability, previous, previous_stock)
        ]
        if fired:
            outcome = {(rule.id, self._in_cooldown(rule, moment)) for rule in fired}
            self.alerts.append(outcome)
            if any(not suppressed for _, suppressed in outcome):
                self.emails += 1
                for rule in fired:
                    if not self._in_cooldown(rule, moment):
                        rule.last_alert = moment
        self.prices.append((moment, price))
        if availability in OUT:
            self.stock.append("out")
        elif availability == Availability.IN_STOCK:
            self.stock.append("in")

    @staticmethod
    def _in_cooldown(rule: RefRule, moment: datetime) -> bool:
        return bool(rule.cooldown and rule.last_alert and moment < rule.last_alert + timedelta(minutes=rule.cooldown))

    def _fires(
        self,
        rule: RefRule,
        moment: datetime,
        price: Decimal,
        availability: str,
        previous: Decimal | None,
        previous_stock: str | None,
    ) -> bool:
        if rule.kind == "below_target":
            assert rule.price is not None
            if price > rule.price:  # re-armed by an observation above the price
                rule.armed, rule.lowest = True, None
                return False
            if rule.armed:
                rule.armed, rule.lowest = False, price
                return True
            if rule.repeat == "each_lower" and rule.lowest is not None and price < rule.lowest:
                rule.lowest = price
                return True
            return False
        if rule.kind == "drop_percent":
            assert rule.percent is not None
            return previous is not None and price <= previous * (1 - rule.percent / 100)
        if rule.kind == "new_low":
            since = None if rule.days is None else moment - timedelta(days=rule.days)
            window = [earlier for at, earlier in self.prices if since is None or at >= since]
            return bool(window) and price < min(window)
        if rule.kind == "back_in_stock":
            return availability == Availability.IN_STOCK and previous_stock == "out"
        if rule.kind == "any_change":
            if previous is None or price == previous:
                return False
            return rule.direction == "both" or (rule.direction == "down") == (price < previous)
        raise AssertionError(rule.kind)


# --- strategies ------------------------------------------------------------------------------------

PRICES = st.sampled_from(["5.00", "8.10", "9.00", "9.01", "10.00", "11.00", "12.50", "20.00"]).map(Decimal)
COOLDOWNS = st.sampled_from([0, 0, 30, 90])
RULES: st.SearchStrategy[dict] = st.one_of(
    st.builds(
        dict,
        kind=st.just("below_target"),
        price=st.sampled_from([Decimal("9.00"), Decimal("10.00"), Decimal("11.00")]),
        repeat=st.sampled_from(["once", "each_lower"]),
        cooldown_minutes=COOLDOWNS,
    ),
    st.builds(
        dict,
        kind=st.just("drop_percent"),
        percent=st.sampled_from([Decimal("1"), Decimal("10"), Decimal("12.5"), Decimal("50")]),
        cooldown_minutes=COOLDOWNS,
    ),
    st.builds(dict, kind=st.just("new_low"), days=st.sampled_from([None, 1, 2]), cooldown_minutes=COOLDOWNS),
    st.builds(dict, kind=st.just("back_in_stock"), cooldown_minutes=COOLDOWNS),
    st.builds(
        dict, kind=st.just("any_change"), direction=st.sampled_from(["both", "down", "up"]), cooldown_minutes=COOLDOWNS
    ),
)
STOCK = st.sampled_from(
    [Availability.IN_STOCK] * 4 + [Availability.OUT_OF_STOCK, Availability.UNAVAILABLE, Availability.UNKNOWN]
)


class OneProvider:
    """The amazon.com provider, answering what the step scripted (twice, should a price be confirmed)."""

    def __init__(self) -> None:
        self.next: ScrapeResult | None = None

    def scrape(self, ref: str) -> ScrapeResult:
        assert self.next is not None
        return self.next


# --- the machine -----------------------------------------------------------------------------------


class AlertRulesMachine(RuleBasedStateMachine):
    def __init__(self, *, store: Store, provider: OneProvider, capture) -> None:
        super().__init__()
        self.store, self.provider, self.capture = store, provider, capture

    @initialize(rules=st.lists(RULES, min_size=1, max_size=4))
    def a_tracker_with_rules(self, rules: list[dict]) -> None:
        n = next(_ids)
        self.now = START
        # Each walk starts at the same moment: the store's request slot starts afresh too.
        Store.objects.filter(pk=self.store.pk).update(next_request_at=None)
        self.user = User.objects.create_user(f"walker{n}@example.com", None, email_verified_at=timezone.now())
        self.product = Product.objects.create(store=self.store, asin=f"B0WALK{n:04d}", interval_minutes=60)
        self.tracker = Tracker.objects.create(user=self.user, product=self.product, interval_minutes=60)
        created = services.rules_add(
            tracker=self.tracker, specs=[services.RuleSpec(**spec) for spec in rules], evaluate=False
        )
        self.model = Reference(
            rules=[
                RefRule(
                    id=rule.pk,
                    kind=rule.kind,
                    price=rule.price,
                    repeat=rule.repeat,
                    percent=rule.percent,
                    days=rule.days,
                    direction=rule.direction,
                    cooldown=rule.cooldown_minutes,
                )
                for rule in created
            ]
        )
        self.last_token: uuid.UUID | None = None

    def _scrape(self, result: ScrapeResult) -> None:
        self.provider.next = result
        with time_machine.travel(self.now, tick=False), self.capture(execute=True):
            token = services.product_claim(product_id=self.product.pk)
            assert token is not None
            run = services.product_scrape(product_id=self.product.pk, claim_token=token)
        assert run is not None and run.status == result.status, (run and run.message, result)
        self.last_token = token
        self.now += timedelta(minutes=1)

    @rule(price=PRICES)
    def a_price_in_stock(self, price: Decimal) -> None:
        self.an_observation(price, Availability.IN_STOCK)

    @rule(price=PRICES, availability=STOCK)
    def a_price(self, price: Decimal, availability: Availability) -> None:
        self.an_observation(price, availability)

    @rule(availability=STOCK)
    def no_price(self, availability: Availability) -> None:
        self.an_observation(None, availability)

    def an_observation(self, price: Decimal | None, availability: Availability) -> None:
        self._scrape(
            ScrapeResult(
                status=ScrapeStatus.SUCCESS,
                price=price,
                currency="USD",
                availability=availability,
                title="Walked product",
                rule="scripted" if price is not None else "no_price:scripted",
            )
        )
        self.model.observe(self.now - timedelta(minutes=1), price, availability)

    @rule(status=st.sampled_from([ScrapeStatus.FAILED, ScrapeStatus.BLOCKED]))
    def a_failure(self, status: ScrapeStatus) -> None:
        kind = ErrorKind.CAPTCHA if status == ScrapeStatus.BLOCKED else ErrorKind.TIMEOUT
        self._scrape(ScrapeResult(status=status, error_kind=kind))

    @rule(minutes=st.sampled_from([5, 29, 30, 31, 60, 89, 90, 240, 60 * 24, 60 * 30]))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def the_last_task_is_delivered_again(self) -> None:
        if self.last_token is None:
            return
        with time_machine.travel(self.now, tick=False), self.capture(execute=True):
            again = services.product_scrape(product_id=self.product.pk, claim_token=self.last_token)
        assert again is None

    @invariant()
    def the_alerts_are_the_models(self) -> None:
        if not hasattr(self, "tracker"):
            return
        rows = Notification.objects.filter(tracker=self.tracker).order_by("pk")
        recorded = [{(reason["rule_id"], bool(reason["suppressed"])) for reason in row.reasons} for row in rows]
        assert recorded == self.model.alerts
        emails = [message for message in mail.outbox if message.to == [self.user.email]]
        assert len(emails) == self.model.emails


@pytest.mark.django_db
def test_alerts_match_the_reference_model_on_random_walks(store, monkeypatch, django_capture_on_commit_callbacks):
    # Blocked runs must not pause the store (the walk would stop), nor failures delay the next check.
    Store.objects.filter(pk=store.pk).update(breaker_threshold=1_000_000)
    store.refresh_from_db()
    provider = OneProvider()
    monkeypatch.setattr("tracking.services.scrape.get_provider", lambda code: provider)

    run_state_machine_as_test(
        lambda: AlertRulesMachine(store=store, provider=provider, capture=django_capture_on_commit_callbacks),
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
