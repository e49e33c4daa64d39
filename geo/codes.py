"""Area codes: a 6-digit district code extended by 3 digits per level (geo.levels).

``330212`` (district) → ``330212001`` (town or street) → ``330212001001`` (community) →
``330212001001001`` (grid) → ``330212001001001001`` (micro-grid). Below the district every
segment is a child number from ``001`` to ``999``; ``000`` is malformed because this
scheme never pads codes with zeros (unlike 12-digit statistical codes such as ``330212000000``).
"""

from geo.levels import LEVELS

LEVEL_CODE_LENGTH = {level.name: level.code_length for level in LEVELS}


def level_of_code(code: str) -> str:
    """Return the level of an area code, raising ValueError if the code is malformed."""
    # isascii() because str.isdigit() also accepts digits such as "３" or "²".
    if not isinstance(code, str) or not (code.isascii() and code.isdigit()):
        raise ValueError(f"area code must be a string of ASCII digits, got {code!r}")
    level = LEVELS.by_code_length(len(code))
    if level is None:
        expected = ", ".join(str(length) for length in LEVEL_CODE_LENGTH.values())
        raise ValueError(f"area code {code!r} has {len(code)} digits, expected one of {expected}")
    if code[: LEVELS.root.code_length] == "0" * LEVELS.root.code_length:
        raise ValueError(f"area code {code!r} has no district part")
    for below in LEVELS.levels[1 : LEVELS.levels.index(level) + 1]:
        start = below.code_length - LEVELS.segment(below)
        if code[start : below.code_length] == "0" * LEVELS.segment(below):
            raise ValueError(f"area code {code!r} has a zero segment at digit {start + 1}")
    return level.name


def parent_code(code: str) -> str | None:
    """Return the code of the parent area, or None for a district."""
    level = LEVELS[level_of_code(code)]
    if level.parent is None:
        return None
    return code[: LEVELS[level.parent].code_length]


def child_code(parent_code: str, n: int) -> str:
    """Return the code of child number ``n`` (1..999) of ``parent_code``."""
    level = LEVELS[level_of_code(parent_code)]
    if level is LEVELS.leaf:
        raise ValueError(f"{level.name} {parent_code!r} has no child areas")
    width = LEVELS.segment(LEVELS.levels[LEVELS.levels.index(level) + 1])
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < 10**width:
        raise ValueError(f"child number must be an int from 1 to {10**width - 1}, got {n!r}")
    return f"{parent_code}{n:0{width}d}"


def is_descendant(code: str, ancestor_code: str, *, include_self: bool = False) -> bool:
    """Return True if ``code`` lies strictly below ``ancestor_code`` (or equals it if asked)."""
    level_of_code(code)
    level_of_code(ancestor_code)
    if code == ancestor_code:
        return include_self
    return len(code) > len(ancestor_code) and code.startswith(ancestor_code)
