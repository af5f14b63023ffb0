"""A fake amazon.com of our own for tests, the offline demo and benchmarks (never the real store).

It ships with the product because ``serve --demo`` uses it, but it lives in its own app so that
``scraping`` holds only code that runs against the real store. :mod:`fakestore.server` is the
HTTP server and control API, :mod:`fakestore.control` its state, :mod:`fakestore.pages` its markup,
and ``manage.py fakestore`` runs it.
"""
