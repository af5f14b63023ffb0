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

from accounts.emails import RenderedEmail
from notifications.models import Notification
from scraping.inputs import canonical_url
from tracking.models import PricePoint

# Subjects stay readable in a mail client's list; the body carries the full title.
SUBJECT_TITLE_CHARS = 60
CURRENCY_SYMBOLS = {"USD": "$"}
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


def build_alert_message(notification: Notification, *, to_email: str) -> CopySafeEmail:
    """The price-drop email for ``notification``, addressed to ``to_email``."""
    product, point = notification.product, notification.price_point
    if product is None or point is None:  # the database allows that for account emails only
        raise ValueError(f"notification {notification.pk} is not an alert")
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
        "observed_at": point.observed_at,
        "product_url": canonical_url(product.asin),
        "tracker_url": tracker_url,
    }
    message = CopySafeEmail(
        subject=_one_line(render_to_string("notifications/price_drop_subject.txt", context)),
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
