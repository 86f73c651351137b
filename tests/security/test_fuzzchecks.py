"""The fuzz run's own check can fail: a learner's 2xx/4xx from a staff route is reported."""

from types import SimpleNamespace

import pytest

from tests.security.fuzzchecks import learner_stays_out_of_staff_routes


def _case(roles: list[str] | None) -> SimpleNamespace:
    raw = {} if roles is None else {"x-roles": roles}
    return SimpleNamespace(operation=SimpleNamespace(definition=SimpleNamespace(raw=raw), method="get",
                                                     path="/api/v1/users"))


@pytest.mark.parametrize("status", [200, 201, 400, 409, 422, 500])
def test_handler_reached_by_a_learner_is_a_failure(status: int) -> None:
    with pytest.raises(AssertionError, match="staff-only"):
        learner_stays_out_of_staff_routes(None, SimpleNamespace(status_code=status), _case(["system_admin"]))


@pytest.mark.parametrize(("roles", "status"), [(["system_admin"], 403), (["system_admin"], 401),
                                               (["learner", "system_admin"], 200), (None, 200)])
def test_refusals_and_learner_routes_pass(roles: list[str] | None, status: int) -> None:
    assert learner_stays_out_of_staff_routes(None, SimpleNamespace(status_code=status), _case(roles)) is None
