"""Command-line sub-commands of the sync feature."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this feature's sub-commands to the `appliance` parser."""
