"""English date formats: every date and time to the second, with its time zone.

The admin is where failures are explained, and runs a few seconds apart on different workers
must read apart: Django's default ``N j, Y, P`` ("March 2, 2026, 10:15 a.m.") hides the seconds
and the zone. Only these names change; everything else keeps Django's English formats.
"""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
