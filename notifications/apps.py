from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self) -> None:
        # tracking must not import notifications (imports flow one way), so the crossing
        # reaches us through this hook, inside the scrape's finishing transaction.
        from notifications.services import notification_create_for_crossing
        from tracking.hooks import register_crossing_handler

        register_crossing_handler(notification_create_for_crossing)
