"""The exception types the CLI turns into one line and an exit code.

UserError: a problem the user caused and can fix (bad option, bad file, bad checkpoint): exit code 2.
TrainingDiverged: a loss or a parameter became NaN or infinite: exit code 3, last good checkpoint kept.
Nothing else catches them.
"""


class UserError(Exception):
    """A problem the user caused: the message names the thing and what to do."""


class TrainingDiverged(RuntimeError):
    """A loss, the penalty or a parameter became NaN or infinite."""
