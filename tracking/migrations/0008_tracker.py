# The model TrackingConfig is now Tracker (its table stays tracking_configs). Content types are
# renamed by Django's own RenameModel handling; permission codenames are not, so they are
# renamed here, and staff users keep the tracker permissions they were given.

from django.db import migrations

OLD = ("trackingconfig", "tracking config")
NEW = ("tracker", "tracker")


def _rename(apps, old, new):
    Permission = apps.get_model("auth", "Permission")
    for action in ("add", "change", "delete", "view"):
        Permission.objects.filter(content_type__app_label="tracking", codename=f"{action}_{old[0]}").update(
            codename=f"{action}_{new[0]}", name=f"Can {action} {new[1]}"
        )


def rename_permissions(apps, schema_editor):
    _rename(apps, OLD, NEW)


def restore_permissions(apps, schema_editor):
    _rename(apps, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("notifications", "0002_account_emails"),
        ("tracking", "0007_manual_scrape_limit_and_rescrape_trigger"),
    ]

    operations = [
        migrations.RenameModel("TrackingConfig", "Tracker"),
        migrations.RunPython(rename_permissions, restore_permissions),
    ]
