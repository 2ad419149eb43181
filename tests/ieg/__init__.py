"""Tests of ieg/, the entrance: flags and their ranges, presets and precedence, the stderr filter."""
