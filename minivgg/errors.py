"""Errors that reach the user as one sentence and exit code 2 (see cli.main)."""


class UserError(ValueError):
    """Bad input from the user (file, flag, weights): printed as one line, exit code 2."""


class WeightsError(UserError):
    """A weights file is missing, corrupt or fails verification."""
