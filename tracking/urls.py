from rest_framework.routers import SimpleRouter

from tracking.views import ScrapeRunViewSet, TrackerViewSet

router = SimpleRouter()
router.register("trackers", TrackerViewSet, basename="tracker")
router.register("scrape-runs", ScrapeRunViewSet, basename="scrape-run")

urlpatterns = router.urls
