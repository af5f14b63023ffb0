"""URL configuration: the REST API under /api/, the admin under /admin/, / to the API docs."""

from typing import cast

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import include, path, reverse_lazy
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from pricetracker.api import json_error_view
from pricetracker.health import HealthView
from pricetracker.metrics import metrics_view


@require_safe
def home(request: HttpRequest) -> HttpResponseRedirect:
    """``/``: there is no site, only the API; its interactive docs are the front page."""
    return redirect("docs")


# The admin's "View site" link (it defaults to "/", which was a 404). Lazy: the URLconf is still
# loading here; the admin renders it as the string it is.
admin.site.site_url = cast(str, reverse_lazy("docs"))

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/", include("tracking.urls")),
    path("api/", include("notifications.urls")),
    path("api/health/", HealthView.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

# JSON instead of HTML error pages: clients of this API never see a Django debug or HTML page.
handler400 = json_error_view(400, "Bad request.", "bad_request")
handler403 = json_error_view(403, "Forbidden.", "forbidden")
handler404 = json_error_view(404, "Not found.", "not_found")
handler500 = json_error_view(500, "Internal server error. The error was logged.", "server_error")
