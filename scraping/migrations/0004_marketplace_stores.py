"""One Store row per Amazon retail marketplace, with its currency and language.

The table is copied here, not imported from scraping.marketplaces: a migration must keep doing
what it did when it was written, whatever the module later says. Limits come from the settings,
as on any store's first use (scraping.models.get_store), and the plausible maximum price scales
with the currency; an existing row (amazon.com, created on first use before this migration) only
gains its currency and language.
"""

from decimal import Decimal

from django.conf import settings
from django.db import migrations

MARKETPLACES = (
    ("amazon.com", "Amazon.com", "USD", "en-US"),
    ("amazon.ca", "Amazon.ca", "CAD", "en-CA"),
    ("amazon.com.mx", "Amazon.com.mx", "MXN", "es-MX"),
    ("amazon.com.br", "Amazon.com.br", "BRL", "pt-BR"),
    ("amazon.co.uk", "Amazon.co.uk", "GBP", "en-GB"),
    ("amazon.de", "Amazon.de", "EUR", "de-DE"),
    ("amazon.fr", "Amazon.fr", "EUR", "fr-FR"),
    ("amazon.it", "Amazon.it", "EUR", "it-IT"),
    ("amazon.es", "Amazon.es", "EUR", "es-ES"),
    ("amazon.nl", "Amazon.nl", "EUR", "nl-NL"),
    ("amazon.se", "Amazon.se", "SEK", "sv-SE"),
    ("amazon.pl", "Amazon.pl", "PLN", "pl-PL"),
    ("amazon.com.be", "Amazon.com.be", "EUR", "fr-BE"),
    ("amazon.com.tr", "Amazon.com.tr", "TRY", "tr-TR"),
    ("amazon.ae", "Amazon.ae", "AED", "en-AE"),
    ("amazon.sa", "Amazon.sa", "SAR", "ar-SA"),
    ("amazon.eg", "Amazon.eg", "EGP", "ar-EG"),
    ("amazon.in", "Amazon.in", "INR", "en-IN"),
    ("amazon.co.jp", "Amazon.co.jp", "JPY", "ja-JP"),
    ("amazon.sg", "Amazon.sg", "SGD", "en-SG"),
    ("amazon.com.au", "Amazon.com.au", "AUD", "en-AU"),
)


# The plausible maximum of a new store, by currency (1,000,000 dollars' worth, rounded up).
PLAUSIBLE_MAXIMUM = {
    "USD": Decimal("1000000"),
    "CAD": Decimal("2000000"),
    "MXN": Decimal("25000000"),
    "BRL": Decimal("10000000"),
    "GBP": Decimal("1000000"),
    "EUR": Decimal("1000000"),
    "SEK": Decimal("15000000"),
    "PLN": Decimal("5000000"),
    "TRY": Decimal("50000000"),
    "AED": Decimal("5000000"),
    "SAR": Decimal("5000000"),
    "EGP": Decimal("100000000"),
    "INR": Decimal("100000000"),
    "JPY": Decimal("200000000"),
    "SGD": Decimal("2000000"),
    "AUD": Decimal("2000000"),
}


def create_marketplace_stores(apps, schema_editor):
    Store = apps.get_model("scraping", "Store")
    for code, name, currency, language in MARKETPLACES:
        store, created = Store.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "currency": currency,
                "language": language,
                "min_interval_minutes": settings.SCRAPE_MIN_INTERVAL_MINUTES,
                "requests_per_minute": settings.SCRAPE_RATE_PER_MINUTE,
                "max_plausible_price": PLAUSIBLE_MAXIMUM[currency],
            },
        )
        if not created:
            Store.objects.filter(pk=store.pk).update(currency=currency, language=language)


class Migration(migrations.Migration):
    dependencies = [("scraping", "0003_store_currency_language_base_url")]

    # Reversing leaves the rows: products may point at them, and an empty store is harmless.
    operations = [migrations.RunPython(create_marketplace_stores, migrations.RunPython.noop)]
