from django.apps import AppConfig


class FakestoreConfig(AppConfig):
    """The fake store app: no models, one management command (``manage.py fakestore``)."""

    name = "fakestore"
    verbose_name = "Fake store (tests and demo)"
