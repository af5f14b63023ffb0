"""Request parsers. Separate from ``pricetracker.api``, which imports DRF's views: DRF's views read
``DEFAULT_PARSER_CLASSES`` at import, so naming a class in ``api`` there would be circular."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus a 400 for JSON nested too deeply to decode.

    Python's decoder raises RecursionError (not ValueError) past ~1000 levels, which DRF does
    not catch: ``[[[[...]]]]`` in a 100 KB body was a 500.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None
