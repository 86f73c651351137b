"""Which part a process plays in the process tree."""

from enum import Enum


class ProcessRole(Enum):
    """The primary runs supervisors, schedulers and background workers once; workers only serve HTTP."""

    PRIMARY = "primary"
    WORKER = "worker"
