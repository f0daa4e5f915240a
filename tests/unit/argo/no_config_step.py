"""A step module for the lint tests that forgot its module-level Config."""

from __future__ import annotations


def main() -> int:
    return 0
