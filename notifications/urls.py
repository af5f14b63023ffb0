"""Notification endpoints, mounted at ``/api/``."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from notifications.views import NotificationViewSet, TestEmailView

router = SimpleRouter()
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = [
    # Before the router, whose detail route would otherwise match "test" as an id.
    path("notifications/test/", TestEmailView.as_view(), name="notification-test"),
    *router.urls,
]
