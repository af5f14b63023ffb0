"""Building outbox emails: subject, text and HTML bodies, and the deterministic Message-ID.

Alerts are rendered from Django templates (``notifications/templates/notifications/``). HTML
templates are autoescaped, so a product title such as ``<script>`` arrives as text; the
plain-text templates turn autoescaping off on purpose. Account emails come rendered from
:func:`accounts.emails.account_email_render`.

Every email is a :class:`CopySafeEmail`, so its links and tokens arrive unbroken.
"""

from __future__ import annotations

import email.message
import email.policy
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import Truncator

from accounts.emails import RenderedEmail
from notifications.models import Notification
from scraping import money
from scraping.inputs import canonical_url
from tracking.models import RULE_STRENGTH, PricePoint, RuleKind

# Subjects stay readable in a mail client's list; the body carries the full title.
SUBJECT_TITLE_CHARS = 60
# SMTP's hard limit on a line, without its CRLF (RFC 5321 4.5.3.1.6, RFC 5322 2.1.1).
SMTP_MAX_LINE = 998


class CopySafeEmail(EmailMultiAlternatives):
    """An email whose text parts travel as written (7bit, or 8bit when not ASCII).

    Python's email package sends any part with a line over 78 characters as quoted-printable,
    which turns ``?token=`` into ``?token=3D`` and breaks a long link with ``=`` + newline: a
    link or token copied from the raw message, a console backend's output or a client showing
    the source does not work. Lines up to SMTP's limit of 998 characters are legal as they are,
    so text parts are re-set with an identity encoding; only a part with a longer line keeps a
    wrapping encoding (and its links survive decoding).
    """

    def message(self, *, policy: email.policy.Policy | None = email.policy.default) -> email.message.EmailMessage:
        msg = super().message(policy=policy)
        for part in msg.walk():
            if part.get_content_maintype() == "text" and not part.is_multipart() and not part.is_attachment():
                _send_as_written(part)
        return msg


def _send_as_written(part: email.message.EmailMessage) -> None:
    text = part.get_content()
    encoded = text.encode("utf-8")
    if max((len(line) for line in encoded.splitlines()), default=0) > SMTP_MAX_LINE:
        return
    cte = "7bit" if encoded.isascii() else "8bit"
    # clear_content keeps the other headers (Subject, To... on a single-part message).
    subtype = part.get_content_subtype()
    part.clear_content()
    part.set_content(text, subtype=subtype, charset="utf-8", cte=cte)


def format_money(amount: Decimal | None, currency: str, *, language: str = "") -> str:
    """The amount in its currency's format for a reader of ``language`` (English when blank):
    ``$89.99``, ``€5.00``, ``1.234,50 €`` in German, ``￥1,235``; ``unknown`` for no amount."""
    if amount is None:
        return "unknown"
    return money.format_money(amount, currency, language=language or None)


def _one_line(text: str) -> str:
    """Collapse whitespace: a title with a newline must not become a broken mail header."""
    return " ".join(text.split())


def mail_domain() -> str:
    """The domain our Message-IDs belong to: that of DEFAULT_FROM_EMAIL, else of SITE_URL."""
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return domain or urlsplit(settings.SITE_URL).hostname or "localhost"


def notification_message_id(notification: Notification) -> str:
    """The same Message-ID for every attempt at one notification.

    SMTP cannot be exactly-once: a worker that crashes after the server's OK sends again on
    retry. Receivers (and mailbox providers) drop a second message with the same Message-ID.
    """
    return f"<notification-{notification.pk}.{notification.idempotency_key}@{mail_domain()}>"


def _lowest_point(product_id: int) -> PricePoint | None:
    points: QuerySet[PricePoint] = PricePoint.objects.filter(product_id=product_id)
    return points.order_by("price", "observed_at").first()


@dataclass(frozen=True, slots=True)
class ShownReason:
    """A reason as an email shows it."""

    kind: str
    label: str
    detail: str
    price: str
    observed_at: datetime | None


def _shown_reasons(notification: Notification) -> list[ShownReason]:
    """The reasons the user is told about (not the suppressed ones), strongest first."""
    shown = []
    for reason in notification.reasons or []:
        if not isinstance(reason, dict) or reason.get("suppressed"):
            continue
        kind = str(reason.get("kind", ""))
        observed = parse_datetime(str(reason.get("observed_at") or ""))
        price = reason.get("observed_price")
        shown.append(
            ShownReason(
                kind=kind,
                label=RuleKind(kind).label if kind in RuleKind.values else kind,
                detail=str(reason.get("detail", "")),
                price=format_money(Decimal(str(price)), notification.currency, language=notification.user.language)
                if price is not None
                else "",
                observed_at=observed,
            )
        )
    order = {kind: index for index, kind in enumerate(RULE_STRENGTH)}
    # Stable: reasons of one observation keep their order; a merged email lists each kind's
    # strongest first, then by time.
    shown.sort(key=lambda reason: order.get(reason.kind, len(order)))
    return shown


def _subject(strongest: ShownReason | None, *, title: str, price: str, target: str | None, more: int) -> str:
    kind = strongest.kind if strongest else RuleKind.BELOW_TARGET
    detail = strongest.detail if strongest else ""
    if kind == RuleKind.BELOW_TARGET:
        subject = f"Price drop: {title} is now {price}" + (f" (target {target})" if target else "")
    elif kind == RuleKind.NEW_LOW:
        subject = f"New low: {title} is now {price}"
    elif kind == RuleKind.DROP_PERCENT:
        subject = f"Price drop: {title} is now {price} ({detail})"
    elif kind == RuleKind.BACK_IN_STOCK:
        subject = f"Back in stock: {title} at {price}"
    else:
        subject = f"Price change: {title} is now {price} ({detail})"
    if more:
        subject += f" (+{more} more reason{'s' if more > 1 else ''})"
    return subject


def build_alert_message(notification: Notification, *, to_email: str) -> CopySafeEmail:
    """The alert email for ``notification``, addressed to ``to_email``.

    The subject names the strongest reason; the body lists every reason (for an alert that
    waited for quiet hours, the reasons of the alerts merged into it too). The price shown is
    the latest one observed.
    """
    product, point = notification.product, notification.price_point
    if product is None or point is None:  # the database allows that for account emails only
        raise ValueError(f"notification {notification.pk} is not an alert")
    full_title = _one_line(product.title) or product.asin
    title = Truncator(full_title).chars(SUBJECT_TITLE_CHARS)
    language = notification.user.language  # amounts in the reader's language (English when unset)
    reasons = _shown_reasons(notification)
    latest = max(reasons, key=lambda reason: reason.observed_at or point.observed_at, default=None)
    price = (
        latest.price
        if latest and latest.price
        else format_money(notification.price, notification.currency, language=language)
    )
    observed_at = (latest.observed_at if latest else None) or point.observed_at
    target = (
        format_money(notification.target_price, notification.currency, language=language)
        if notification.target_price
        else None
    )
    lowest = _lowest_point(product.pk)
    tracker_url = ""
    if notification.tracker_id is not None:
        tracker_url = settings.SITE_URL + reverse("tracker-detail", kwargs={"pk": notification.tracker_id})
    context = {
        "title": title,
        "full_title": full_title,
        "asin": product.asin,
        "price": price,
        "target": target,
        "previous": format_money(notification.previous_price, notification.currency, language=language)
        if notification.previous_price is not None
        else None,
        "reasons": reasons,
        "several_observations": len({reason.observed_at for reason in reasons}) > 1,
        "below_target": any(reason.kind == RuleKind.BELOW_TARGET for reason in reasons),
        "lowest": format_money(
            lowest.price if lowest else notification.price, notification.currency, language=language
        ),
        "lowest_at": lowest.observed_at if lowest else None,
        "observed_at": observed_at,
        "product_url": canonical_url(product.asin, product.store.code),
        "tracker_url": tracker_url,
    }
    subject = _subject(reasons[0] if reasons else None, title=title, price=price, target=target, more=len(reasons) - 1)
    message = CopySafeEmail(
        subject=_one_line(subject),
        body=render_to_string("notifications/price_drop.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
        headers={"Message-ID": notification_message_id(notification)},
    )
    message.attach_alternative(render_to_string("notifications/price_drop.html", context), "text/html")
    return message


def build_test_message(*, to_email: str) -> CopySafeEmail:
    """A test email so a user can check that alerts reach them."""
    context = {"address": to_email, "sent_at": timezone.now()}
    message = CopySafeEmail(
        subject="pricetracker test email: your alerts will arrive here",
        body=render_to_string("notifications/test_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
    )
    message.attach_alternative(render_to_string("notifications/test_email.html", context), "text/html")
    return message


def build_account_message(notification: Notification, rendered: RenderedEmail) -> CopySafeEmail:
    """An account email (confirmation link, password reset) to the row's address."""
    return CopySafeEmail(
        subject=_one_line(rendered.subject),
        body=rendered.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to_email],
        headers={"Message-ID": notification_message_id(notification)},
    )
