"""The classroom load test's short mode runs end to end without an error (CI; not a timed test).

A class of 30 learners signs in against the real daemon, then reads articles with their assets, searches,
uses suggestions and plays a video for about a minute, driven by Locust worker processes. The numbers are
not judged here (the machine is shared); any failed request, learner who could not sign in, or step that
served no page fails the test.
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_classroom_short_runs_without_errors() -> None:
    run = subprocess.run([sys.executable, str(REPO / "tests" / "bench" / "classroom.py"), "--short"],
                         capture_output=True, text=True, timeout=540, cwd=REPO)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "short run: no errors" in run.stdout
