#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# Exit status of a command stopped by a configuration error (sysexits' EX_CONFIG), so a process
# manager can tell "fix the environment" from a crash.
EXIT_CONFIG_ERROR = 78


def main() -> None:
    """Run administrative tasks; a configuration error prints its message alone and exits 78."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricetracker.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # The settings (pricetracker/env.py) name the variable and the fix; a 40-line traceback
        # through Django's settings loader above that message only hid it. --traceback shows it.
        if "--traceback" in sys.argv:
            raise
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(EXIT_CONFIG_ERROR)


if __name__ == "__main__":
    main()
