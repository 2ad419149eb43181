"""The bottom layer: what every package needs and nothing of the project itself.

`UserError` (`core.errors`) is the one exception for mistakes a user can fix; `Registry`
(`core.registry`) is the name -> implementation table behind a choice flag; `Range`
(`core.ranges`) is the declared range of a numeric setting. Modules here import
only the standard library, so `datasets`, `networks`, `methods` and `ieg` can all lean on them.
"""
