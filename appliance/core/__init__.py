"""Core building blocks shared by every feature: errors, tasks, blocking pools, clock, process role."""
