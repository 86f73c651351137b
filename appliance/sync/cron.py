"""A small five-field cron expression (minute hour day-of-month month day-of-week) evaluated in a timezone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
MONTHS = {
    name: i
    for i, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
DAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
SEARCH_LIMIT = timedelta(days=366 * 5)


class CronError(ValueError):
    """The expression cannot be parsed; the message names the bad field."""


def _value(token: str, name: str, names: dict[str, int]) -> int:
    key = token.lower()
    if key in names:
        return names[key]
    if not token.isdigit():
        raise CronError(f"{name}: {token!r} is not a number")
    return int(token)


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    names = MONTHS if name == "month" else DAYS if name == "weekday" else {}
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, name, names), _value(b, name, names)
        else:
            start = _value(part, name, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise CronError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if name == "weekday" and 7 in values:  # both 0 and 7 mean Sunday
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; `next_after`/`last_at_or_before` give aware UTC datetimes."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_any: bool
    weekday_any: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse `m h dom mon dow` (names, ranges, lists, steps, @hourly-style aliases)."""
        text = ALIASES.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        if len(parts) != 5:
            raise CronError(f"expected 5 fields (minute hour day month weekday), got {len(parts)}")
        minutes, hours, days, months, weekdays = (
            _field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, FIELDS, strict=True)
        )
        return cls(
            expression,
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_any=parts[2] == "*",
            weekday_any=parts[4] == "*",
        )

    def _day_matches(self, local: datetime) -> bool:
        dom = local.day in self.days
        dow = (local.isoweekday() % 7) in self.weekdays
        if self.day_any or self.weekday_any:  # Vixie cron: when one is restricted, it alone decides
            return dom and dow
        return dom or dow

    def matches(self, local: datetime) -> bool:
        """Whether this naive local wall-clock minute fires."""
        return (
            local.month in self.months
            and self._day_matches(local)
            and local.hour in self.hours
            and local.minute in self.minutes
        )

    def _scan(self, local: datetime, forward: bool) -> datetime:
        """Walk wall-clock minutes, skipping whole months/days/hours that cannot match."""
        step = 1 if forward else -1
        stop = local + SEARCH_LIMIT * step
        while (local <= stop) if forward else (local >= stop):
            if local.month not in self.months or not self._day_matches(local):
                day = local.replace(hour=0, minute=0)
                local = day + timedelta(days=1) if forward else day - timedelta(minutes=1)
            elif local.hour not in self.hours:
                hour = local.replace(minute=0)
                local = hour + timedelta(hours=1) if forward else hour - timedelta(minutes=1)
            elif local.minute not in self.minutes:
                local += timedelta(minutes=step)
            else:
                return local
        raise CronError(f"{self.expression!r} never fires")

    def next_after(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """First firing strictly after `moment` (aware), in UTC."""
        local = moment.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        while True:
            found = self._scan(local, forward=True)
            fired = to_utc(found, tz)
            if fired > moment:
                return fired
            local = found + timedelta(minutes=1)

    def last_at_or_before(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """Latest firing at or before `moment` (aware), in UTC: the window a missed run belongs to."""
        local = moment.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
        while True:
            found = self._scan(local, forward=False)
            fired = to_utc(found, tz)
            if fired <= moment:
                return fired
            local = found - timedelta(minutes=1)


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """Wall-clock time in `tz` → aware UTC; an ambiguous time is its first occurrence, and a time
    skipped by a spring-forward gap runs one gap-length later (fold=0 keeps the pre-transition offset)."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)
