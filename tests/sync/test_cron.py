"""The cron parser: fields, names, steps, timezones, DST and the missed-window lookup."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from appliance.sync.cron import Cron, CronError

UTC_ZONE = ZoneInfo("UTC")
CHICAGO = ZoneInfo("America/Chicago")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_hourly_next_and_last():
    cron = Cron.parse("@hourly")
    assert cron.next_after(at("2026-11-26T07:00:00"), UTC_ZONE) == at("2026-11-26T08:00:00")
    assert cron.next_after(at("2026-11-26T07:59:59"), UTC_ZONE) == at("2026-11-26T08:00:00")
    assert cron.last_at_or_before(at("2026-11-26T07:00:00"), UTC_ZONE) == at("2026-11-26T07:00:00")
    assert cron.last_at_or_before(at("2026-11-26T07:42:10"), UTC_ZONE) == at("2026-11-26T07:00:00")


def test_daily_report_in_facility_timezone():
    cron = Cron.parse("0 3 * * *")
    # 03:00 in Chicago (CST, UTC-6) is 09:00 UTC in November.
    assert cron.next_after(at("2026-11-26T07:00:00"), CHICAGO) == at("2026-11-26T09:00:00")
    assert cron.last_at_or_before(at("2026-11-26T07:00:00"), CHICAGO) == at("2026-11-25T09:00:00")
    # In July (CDT, UTC-5) the same wall time is 08:00 UTC.
    assert cron.next_after(at("2026-07-01T00:00:00"), CHICAGO) == at("2026-07-01T08:00:00")


def test_lists_ranges_steps_and_names():
    cron = Cron.parse("*/15 9-17 * jan-mar mon-fri")
    assert cron.minutes == frozenset({0, 15, 30, 45})
    assert cron.hours == frozenset(range(9, 18))
    assert cron.months == frozenset({1, 2, 3})
    assert cron.weekdays == frozenset({1, 2, 3, 4, 5})
    # Saturday 2027-01-02 → Monday 2027-01-04 09:00.
    assert cron.next_after(at("2027-01-01T17:50:00"), UTC_ZONE) == at("2027-01-04T09:00:00")
    assert Cron.parse("0 0 * * 7").weekdays == frozenset({0})
    assert Cron.parse("5,10 0 1 * *").minutes == frozenset({5, 10})


def test_day_of_month_or_weekday_like_vixie_cron():
    cron = Cron.parse("0 0 13 * fri")  # the 13th OR any Friday
    assert cron.next_after(at("2026-11-26T00:00:00"), UTC_ZONE) == at("2026-11-27T00:00:00")  # a Friday
    assert cron.next_after(at("2026-12-12T00:00:00"), UTC_ZONE) == at("2026-12-13T00:00:00")  # a Sunday


def test_dst_gap_and_overlap_fire_once():
    cron = Cron.parse("30 2 * * *")
    # 2026-03-08: 02:30 does not exist in Chicago; it runs one hour later (08:30 UTC), once.
    fired = cron.next_after(at("2026-03-08T06:00:00"), CHICAGO)
    assert fired == at("2026-03-08T08:30:00")
    assert cron.next_after(fired, CHICAGO) == at("2026-03-09T07:30:00")
    # 2026-11-01: 01:30 happens twice; an every-day 01:30 job fires at the first one only.
    cron = Cron.parse("30 1 * * *")
    first = cron.next_after(at("2026-11-01T05:00:00"), CHICAGO)
    assert first == at("2026-11-01T06:30:00")
    assert cron.next_after(first, CHICAGO) == at("2026-11-02T07:30:00")


@pytest.mark.parametrize(
    ("expr", "word"),
    [
        ("* * * *", "5 fields"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "weekday"),
        ("*/0 * * * *", "step"),
        ("x * * * *", "minute"),
        ("5-1 * * * *", "minute"),
    ],
)
def test_bad_expressions_name_the_field(expr, word):
    with pytest.raises(CronError, match=word):
        Cron.parse(expr)


def test_impossible_expression():
    with pytest.raises(CronError, match="never fires"):
        Cron.parse("0 0 31 2 *").next_after(at("2026-01-01T00:00:00"), UTC_ZONE)
