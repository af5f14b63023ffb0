"""Alert rules: a user's rules on a tracker (create, change, delete), checked and limited.

What each kind means and when it fires is in :mod:`tracking.services.evaluate`. The parameters
are checked here once for every caller (API, admin, bulk import); the database checks them
again (``alert_rules_parameters_valid``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from decimal import Decimal

from django.db import transaction

from accounts.models import User
from scraping.results import MAX_STORABLE_PRICE
from tracking.errors import InvalidRule, RuleLimitReached
from tracking.models import (
    MAX_COOLDOWN_MINUTES,
    NEW_LOW_MAX_DAYS,
    RULE_PARAMETERS,
    AlertRule,
    Direction,
    Repeat,
    RuleKind,
    Tracker,
)
from tracking.services.evaluate import tracker_evaluate_current

# Every parameter a rule may carry; each kind uses the ones in RULE_PARAMETERS.
PARAMETERS = ("price", "repeat", "percent", "days", "direction")
# Defaults of the parameters a kind uses when the client leaves them out.
DEFAULTS: dict[str, object] = {"repeat": Repeat.ONCE, "direction": Direction.BOTH, "days": None}


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as asked for: its kind, the parameters of that kind, an optional cooldown.

    Parameters a kind does not use are None (or blank); :func:`rule_check` refuses any other.
    """

    kind: str
    price: Decimal | None = None
    repeat: str = ""
    percent: Decimal | None = None
    days: int | None = None
    direction: str = ""
    cooldown_minutes: int = 0

    @classmethod
    def of(cls, rule: AlertRule) -> RuleSpec:
        """The spec of an existing rule."""
        return cls(**{field.name: getattr(rule, field.name) for field in fields(cls)})

    def values(self) -> dict[str, object]:
        """The columns of :class:`~tracking.models.AlertRule` this spec sets."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def _given(value: object) -> bool:
    return value is not None and value != ""


def rule_check(spec: RuleSpec, *, given: frozenset[str] | None = None) -> RuleSpec:
    """``spec`` checked, with the defaults of its kind filled in; raises :class:`InvalidRule`
    naming the field. ``given``: the parameters the client sent (a parameter of another kind is
    refused even when sent as null)."""
    if spec.kind not in RuleKind.values:
        raise InvalidRule(f"Unknown kind {spec.kind!r}: use one of {', '.join(RuleKind.values)}.", field="kind")
    used = RULE_PARAMETERS[spec.kind]
    sent = given if given is not None else frozenset(name for name in PARAMETERS if _given(getattr(spec, name)))
    for name in PARAMETERS:
        if name not in used and name in sent:
            raise InvalidRule(f"A {spec.kind} rule has no {name}.", field=name)
    defaults = {name: DEFAULTS[name] for name in used if name in DEFAULTS and not _given(getattr(spec, name))}
    spec = replace(spec, **defaults)  # type: ignore[arg-type]
    if spec.kind == RuleKind.BELOW_TARGET:
        if spec.price is None:
            raise InvalidRule("A below_target rule needs a price.", field="price")
        if not Decimal("0") < spec.price <= MAX_STORABLE_PRICE:
            raise InvalidRule(f"The price must be above 0 and at most {MAX_STORABLE_PRICE}.", field="price")
        if spec.repeat not in Repeat.values:
            raise InvalidRule(f"repeat is one of {', '.join(Repeat.values)}.", field="repeat")
    elif spec.kind == RuleKind.DROP_PERCENT:
        if spec.percent is None:
            raise InvalidRule("A drop_percent rule needs a percent.", field="percent")
        if not Decimal("0") < spec.percent < Decimal("100"):
            raise InvalidRule("The percent must be above 0 and below 100.", field="percent")
    elif spec.kind == RuleKind.NEW_LOW:
        if spec.days is not None and not 1 <= spec.days <= NEW_LOW_MAX_DAYS:
            raise InvalidRule(f"days is from 1 to {NEW_LOW_MAX_DAYS}, or null for all time.", field="days")
    elif spec.kind == RuleKind.ANY_CHANGE and spec.direction not in Direction.values:
        raise InvalidRule(f"direction is one of {', '.join(Direction.values)}.", field="direction")
    if not 0 <= spec.cooldown_minutes <= MAX_COOLDOWN_MINUTES:
        raise InvalidRule(
            f"cooldown_minutes is from 0 (none) to {MAX_COOLDOWN_MINUTES} (a year).", field="cooldown_minutes"
        )
    return spec


def _lock_and_check_limit(*, tracker: Tracker, adding: int) -> None:
    """Raise :class:`RuleLimitReached` if the tracker may not take ``adding`` more rules.

    Call inside the transaction that then creates them: it locks the tracker's row
    (``select_for_update`` on PostgreSQL; on SQLite the IMMEDIATE transaction already
    serialises writers), so concurrent creates count one after another.
    """
    Tracker.objects.select_for_update().filter(pk=tracker.pk).values_list("pk", flat=True).get()
    limit = User.objects.filter(pk=tracker.user_id).values_list("max_rules_per_tracker", flat=True).get()
    count = AlertRule.objects.filter(tracker_id=tracker.pk).count()
    if count + adding > limit:
        raise RuleLimitReached(count=count, limit=limit)


def rules_add(*, tracker: Tracker, specs: Sequence[RuleSpec], evaluate: bool = True) -> list[AlertRule]:
    """Add rules to ``tracker`` within the user's per-tracker limit (all or none).

    A new below_target rule is evaluated against the product's latest observation at once (the
    first observation counts: a target above the current price alerts now). The other kinds
    compare two observations and wait for the next one.
    """
    checked = [rule_check(spec) for spec in specs]
    with transaction.atomic():
        _lock_and_check_limit(tracker=tracker, adding=len(checked))
        rules = [AlertRule.objects.create(tracker=tracker, **spec.values()) for spec in checked]
        if evaluate and tracker.enabled and any(rule.kind == RuleKind.BELOW_TARGET for rule in rules):
            tracker_evaluate_current(tracker=tracker)
            for rule in rules:  # the state the evaluation left
                rule.refresh_from_db(fields=["armed", "lowest_alerted", "last_fired_at"])
    return rules


def rule_create(*, tracker: Tracker, spec: RuleSpec) -> AlertRule:
    """Add one rule to ``tracker`` (see :func:`rules_add`)."""
    (rule,) = rules_add(tracker=tracker, specs=[spec])
    return rule


def rule_update(*, rule: AlertRule, changes: Mapping[str, object]) -> AlertRule:
    """Change a rule's parameters or cooldown (its kind never changes: delete and create).

    A below_target rule whose price changed is evaluated against the current price: a new
    target above it alerts now (if armed), one below it re-arms the rule.
    """
    if "kind" in changes and changes["kind"] != rule.kind:
        raise InvalidRule("A rule's kind cannot be changed: delete it and create another.", field="kind")
    updates = {name: value for name, value in changes.items() if name != "kind"}
    given = frozenset(name for name in updates if name in PARAMETERS)
    spec = rule_check(replace(RuleSpec.of(rule), **updates), given=given)  # type: ignore[arg-type]
    changed = [name for name, value in spec.values().items() if getattr(rule, name) != value]
    if not changed:
        return rule
    with transaction.atomic():
        for name in changed:
            setattr(rule, name, getattr(spec, name))
        rule.save(update_fields=[*changed, "updated_at"])
        if rule.kind == RuleKind.BELOW_TARGET and "price" in changed and rule.tracker.enabled:
            tracker_evaluate_current(tracker=rule.tracker)
            rule.refresh_from_db(fields=["armed", "lowest_alerted", "last_fired_at"])
    return rule


def rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule. Alerts it took part in keep their reasons (with its id)."""
    rule.delete()


def tracker_set_target(*, tracker: Tracker, price: Decimal) -> AlertRule:
    """The ``target_price`` shorthand: change the tracker's first below_target rule's price, or
    add a below_target rule (``repeat: once``) if it has none."""
    target = AlertRule.objects.filter(tracker=tracker, kind=RuleKind.BELOW_TARGET).order_by("pk").first()
    if target is None:
        return rule_create(tracker=tracker, spec=RuleSpec(kind=RuleKind.BELOW_TARGET, price=price))
    target.tracker = tracker
    return rule_update(rule=target, changes={"price": price})
