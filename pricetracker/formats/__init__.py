"""Date formats that override Django's locale defaults (``FORMAT_MODULE_PATH``)."""
