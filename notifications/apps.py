from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self) -> None:
        # tracking must not import notifications (imports flow one way), so an alert
        # reaches us through this hook, inside the scrape's finishing transaction.
        from accounts.hooks import register_account_email_sender
        from notifications.services import account_email_create, notification_create_for_alert
        from tracking.hooks import register_alert_handler

        register_alert_handler(notification_create_for_alert)
        # accounts must not import notifications either: its emails (confirmation links,
        # password resets) reach the outbox through this hook, so they are retried like alerts.
        register_account_email_sender(account_email_create)
