"""Admin template tags for the big tracking tables."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from typing import Any

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.contrib.admin.views.main import ChangeList
from django.db.models import DateField, QuerySet
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


def indexed_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Django's date hierarchy (same context, same template) without its full scans.

    Django lists the years, months or days that have rows with ``SELECT DISTINCT
    date_trunc(...)`` over every matching row: seconds on a million scrape runs. This lists every
    year, month or day between the first and the last matching row instead, found with two
    ``ORDER BY ... LIMIT 1`` queries on the indexed column. The price of that is a link now and
    then to a day without rows, which shows an empty list.
    """
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field_name}__{part}" for part in ("year", "month", "day"))
    year, month, day = (cl.params.get(name) for name in (year_field, month_field, day_field))
    field = cl.opts.get_field(field_name)
    if not isinstance(field, DateField):  # the admin's checks (admin.E128) make it one; DateTimeField is one too
        raise TypeError(f"date_hierarchy {field_name!r} is not a date field")
    context: dict[str, Any] = {"show": True, "field_name": field.verbose_name}

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field_name}__"])

    if year and month and day:
        chosen = date(int(year), int(month), int(day))
        context["back"] = {
            "link": link({year_field: year, month_field: month}),
            "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
        }
        context["choices"] = [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}]
        return context

    # cl.queryset already carries the chosen year or month as a range filter.
    bounds = _bounds(cl.queryset, field_name)
    if bounds is None:
        context["back"] = None
        context["choices"] = []
        return context
    first, last = bounds
    # Like Django: with no date chosen, start at the narrowest level that holds every row.
    if not (year or month) and first.year == last.year:
        year = str(first.year)
        if first.month == last.month:
            month = str(first.month)

    if year and month:
        days = calendar.monthrange(int(year), int(month))[1]
        first_day = first.day if (first.year, first.month) == (int(year), int(month)) else 1
        last_day = last.day if (last.year, last.month) == (int(year), int(month)) else days
        context["back"] = {"link": link({year_field: year}), "title": str(year)}
        context["choices"] = [
            {
                "link": link({year_field: year, month_field: month, day_field: number}),
                "title": capfirst(formats.date_format(date(int(year), int(month), number), "MONTH_DAY_FORMAT")),
            }
            for number in range(first_day, last_day + 1)
        ]
    elif year:
        first_month = first.month if first.year == int(year) else 1
        last_month = last.month if last.year == int(year) else 12
        context["back"] = {"link": link({}), "title": _("All dates")}
        context["choices"] = [
            {
                "link": link({year_field: year, month_field: number}),
                "title": capfirst(formats.date_format(date(int(year), number, 1), "YEAR_MONTH_FORMAT")),
            }
            for number in range(first_month, last_month + 1)
        ]
    else:
        context["back"] = None
        context["choices"] = [
            {"link": link({year_field: str(number)}), "title": str(number)}
            for number in range(first.year, last.year + 1)
        ]
    return context


def _bounds(queryset: QuerySet, field_name: str) -> tuple[datetime, datetime] | None:
    """The first and last value of ``field_name``, in local time; None without rows.

    Two ORDER BY ... LIMIT 1 queries rather than one MIN/MAX aggregate: each walks one end of an
    index, where SQLite answers a MIN and MAX together by scanning all of it.
    """
    values = queryset.values_list(field_name, flat=True)
    first = values.order_by(field_name).first()
    last = values.order_by(f"-{field_name}").first()
    if first is None or last is None:
        return None
    return _local(first), _local(last)


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


@register.tag(name="indexed_date_hierarchy")
def indexed_date_hierarchy_tag(parser: template.base.Parser, token: template.base.Token) -> InclusionAdminNode:
    return InclusionAdminNode(
        "indexed_date_hierarchy",
        parser,
        token,
        func=indexed_date_hierarchy,
        template_name="date_hierarchy.html",
        takes_context=False,
    )
