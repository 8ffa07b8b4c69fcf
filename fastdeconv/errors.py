"""Exceptions and the one helper that words every argument error.

Every message has three parts: what was given, what was expected, and how
to fix it, so a user never has to decode a kernel's internal complaint.
"""


class ShapeError(ValueError):
    """A shape, rank, channel count or output_shape that cannot work."""


def message(given, expected, fix=None):
    """Join the three parts of an error message."""
    text = f"{given}; expected {expected}."
    if fix:
        text += f" {fix}"
    return text
