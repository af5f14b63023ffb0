"""Building alert emails: subject, text and HTML bodies, and the deterministic Message-ID.

Rendered from Django templates (``notifications/templates/notifications/``). HTML templates are
autoescaped, so a product title such as ``<script>`` arrives as text; the plain-text templates
turn autoescaping off on purpose.
"""

from __future__ import annotations

from decimal import Decimal
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from notifications.models import Notification
from scraping.inputs import canonical_url
from tracking.models import PricePoint

# Subjects stay readable in a mail client's list; the body carries the full title.
SUBJECT_TITLE_CHARS = 60
CURRENCY_SYMBOLS = {"USD": "$"}


def format_money(amount: Decimal | None, currency: str) -> str:
    """``$89.99`` for US dollars, ``89.99 EUR`` otherwise, ``unknown`` for no amount."""
    if amount is None:
        return "unknown"
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}".strip()


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


def build_alert_message(notification: Notification, *, to_email: str) -> EmailMultiAlternatives:
    """The price-drop email for ``notification``, addressed to ``to_email``."""
    product = notification.product
    full_title = _one_line(product.title) or product.asin
    lowest = _lowest_point(product.pk)
    tracker_url = ""
    if notification.tracker_id is not None:
        tracker_url = settings.SITE_URL + reverse("tracker-detail", kwargs={"pk": notification.tracker_id})
    context = {
        "title": Truncator(full_title).chars(SUBJECT_TITLE_CHARS),
        "full_title": full_title,
        "asin": product.asin,
        "price": format_money(notification.price, notification.currency),
        "target": format_money(notification.target_price, notification.currency),
        "lowest": format_money(lowest.price if lowest else notification.price, notification.currency),
        "lowest_at": lowest.observed_at if lowest else None,
        "observed_at": notification.price_point.observed_at,
        "product_url": canonical_url(product.asin),
        "tracker_url": tracker_url,
    }
    message = EmailMultiAlternatives(
        subject=_one_line(render_to_string("notifications/price_drop_subject.txt", context)),
        body=render_to_string("notifications/price_drop.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
        headers={"Message-ID": notification_message_id(notification)},
    )
    message.attach_alternative(render_to_string("notifications/price_drop.html", context), "text/html")
    return message


def build_test_message(*, to_email: str) -> EmailMultiAlternatives:
    """A test email so a user can check that alerts reach them."""
    context = {"address": to_email, "sent_at": timezone.now()}
    message = EmailMultiAlternatives(
        subject="pricetracker test email: your alerts will arrive here",
        body=render_to_string("notifications/test_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
    )
    message.attach_alternative(render_to_string("notifications/test_email.html", context), "text/html")
    return message
