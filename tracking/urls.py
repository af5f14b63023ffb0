from django.urls import path
from rest_framework.routers import SimpleRouter

from tracking.views import AlertRuleViewSet, ScrapeRunViewSet, TrackerViewSet

router = SimpleRouter()
router.register("trackers", TrackerViewSet, basename="tracker")
router.register("scrape-runs", ScrapeRunViewSet, basename="scrape-run")

# A tracker's alert rules, a sub-resource of the tracker.
rule_list = AlertRuleViewSet.as_view({"get": "list", "post": "create"})
rule_detail = AlertRuleViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})

urlpatterns = [
    path("trackers/<int:tracker_pk>/rules/", rule_list, name="tracker-rule-list"),
    path("trackers/<int:tracker_pk>/rules/<int:pk>/", rule_detail, name="tracker-rule-detail"),
    *router.urls,
]
