"""The one exception type for mistakes a user can fix (bad flag, missing file, bad data).

`ieg.main` turns it into a single line on stderr and exit status 2, with no traceback.
Libraries below `ieg/` raise it; they never print or exit themselves.
"""


class UserError(Exception):
  """A problem the user can fix; the message names the problem and the fix."""

  def __init__(self, message: str, exit_code: int = 2):
    super().__init__(message)
    self.exit_code = exit_code
