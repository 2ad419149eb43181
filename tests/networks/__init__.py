"""Tests of networks/: sizes against hand counts, wiring against numpy, TextCNN against its reference."""
