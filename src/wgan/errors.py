"""The one exception type for problems a user can cause and fix (bad option, bad file, bad checkpoint).

The CLI prints its message as one line and exits with code 2; nothing else catches it.
"""


class UserError(Exception):
    """A problem the user caused: the message names the thing and what to do."""
