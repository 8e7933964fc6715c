"""Sweep specs (YAML) and their validation."""

from search_spaces.spec import SpecError, SweepSpec, load_spec, parse_spec

__all__ = ["SpecError", "SweepSpec", "load_spec", "parse_spec"]
