"""A capability that fails on some inputs (b = 0): the deprecation tests call it that way."""


def ratio(a: int, b: int) -> float:
    """a divided by b."""
    return a / b
