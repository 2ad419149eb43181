"""The entrance: `python -m ieg.main` reads the flags and wires one run from the packages below.

`main` (the command line), `flags` (the only module that reads flags), `config` (`RunConfig` and
its validation), `presets` (a paper's settings), `experiment` (data -> network -> method -> fit)
and its wiring: `strategy`, `optimizers`, `schedules`. `run/` holds the run directory's mechanics
and `reports/` what a run shows a person. `quiet_import` is imported first, before TensorFlow.
"""
