"""The one exception type for user mistakes: tasks turn it into a one-line message, no traceback."""


class UserError(Exception):
    """Bad input or a host problem the user can fix; the message says what is wrong and what to do."""
