"""Tests of methods/: every method's step against numpy references, on tiny models (toy_models)."""
