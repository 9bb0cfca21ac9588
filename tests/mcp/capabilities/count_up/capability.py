"""A capability that never ends for a negative n: the timeout tests call it that way."""


def count_up(n: int) -> int:
    """Count from zero up to n, one step at a time; returns n."""
    i = 0
    while i != n:
        i += 1
    return i
