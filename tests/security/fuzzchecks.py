"""Schemathesis hooks for the fuzz runs (loaded through SCHEMATHESIS_HOOKS): a learner never reaches a
staff route."""

from __future__ import annotations

import ast
import threading
from typing import Any

import schemathesis

# CPython 3.11's ast.parse is not thread-safe: two threads parsing at once can fail with "SystemError: AST
# constructor recursion depth mismatch" (python/cpython gh-106905, fixed in later releases). Hypothesis
# parses lambda sources to describe strategies, and schemathesis runs two workers, so the fuzzing phase
# crashed now and then on 3.11. Parsing one at a time costs nothing measurable here.
_PARSE = ast.parse
_PARSE_LOCK = threading.Lock()


def _parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
    with _PARSE_LOCK:
        return _PARSE(*args, **kwargs)


ast.parse = _parse_one_at_a_time  # type: ignore[assignment]

# What the middleware answers before a route's handler runs: policy refusals, unmatched paths or methods,
# oversized requests. Any other status means the handler ran.
NOT_REACHED = {401, 403, 404, 405, 413, 414, 429}


@schemathesis.check
def learner_stays_out_of_staff_routes(ctx: Any, response: Any, case: Any) -> bool | None:
    """A learner's request to a route whose policy does not admit learners is refused before the handler."""
    raw = getattr(case.operation.definition, "raw", {}) or {}
    allowed = raw.get("x-roles")
    if allowed is None or "learner" in allowed:
        return None
    if response.status_code not in NOT_REACHED:
        raise AssertionError(f"a learner got {response.status_code} from staff-only "
                             f"{case.operation.method.upper()} {case.operation.path} (roles {allowed})")
    return None
