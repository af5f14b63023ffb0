"""``manage.py confirm_email EMAIL [--notification]``: confirm an account's address without email."""

from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_confirm_addresses_by_operator


class Command(BaseCommand):
    help = (
        "Mark the login address of the account EMAIL as confirmed (and, with --notification, its "
        "notification address), so alerts can go there. For operators: a local install without a mail "
        "server, or a user whose confirmation email never arrives. Run on any host with database access."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email", help="the address the account signs in with (any case)")
        parser.add_argument("--notification", action="store_true", help="also confirm its notification address")

    def handle(self, *args: object, **options: object) -> None:
        email = str(options["email"])
        try:
            confirmed = user_confirm_addresses_by_operator(email=email, notification=bool(options["notification"]))
        except LookupError:
            raise CommandError(f"No account signs in with {email}.") from None
        if not confirmed:
            self.stdout.write("Nothing to confirm: the address is already confirmed.")
        for address in confirmed:
            self.stdout.write(f"Confirmed {address}.")
