"""Renaming the model TrackingConfig to Tracker (migration tracking 0008) keeps its table, its
rows and the permissions staff users were given on it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.tracking_factories import make_product, make_tracker
from tracking.models import Tracker

RENAME = ("tracking", "0008_tracker")


def _migrate(targets) -> None:
    MigrationExecutor(connection).migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_the_rename_keeps_the_rows_and_the_staff_permissions(store, alice, django_user_model):
    tracker = make_tracker(alice, make_product(store))
    graph = MigrationExecutor(connection).loader.graph
    (before,) = [parent for parent in graph.node_map[RENAME].parents if parent.key[0] == "tracking"]
    _migrate([before.key])
    old = Permission.objects.get(content_type__app_label="tracking", codename="change_trackingconfig")
    staff = django_user_model.objects.create_user("staff@example.com", "pw-staff-123456", is_staff=True)
    staff.user_permissions.add(old)

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert Tracker._meta.db_table == "tracking_configs"
    assert Tracker.objects.filter(pk=tracker.pk).exists()
    staff = django_user_model.objects.get(pk=staff.pk)
    assert staff.has_perm("tracking.change_tracker")
    assert not Permission.objects.filter(codename__endswith="_trackingconfig").exists()
