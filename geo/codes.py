"""Area codes: a 6-digit district code extended by 3 digits per level down to the micro-grid.

``330212`` (district) → ``330212001`` (town or street) → ``330212001001`` (community) →
``330212001001001`` (grid) → ``330212001001001001`` (micro-grid). Below the district every
3-digit segment is a child number from ``001`` to ``999``; ``000`` is malformed because this
scheme never pads codes with zeros (unlike 12-digit statistical codes such as ``330212000000``).
"""

LEVEL_CODE_LENGTH = {"district": 6, "town": 9, "community": 12, "grid": 15, "microgrid": 18}

_LEVEL_BY_LENGTH = {length: level for level, length in LEVEL_CODE_LENGTH.items()}
_SEGMENT = 3
_DISTRICT_LENGTH = LEVEL_CODE_LENGTH["district"]
_LEAF_LENGTH = LEVEL_CODE_LENGTH["microgrid"]


def level_of_code(code: str) -> str:
    """Return the level of an area code, raising ValueError if the code is malformed."""
    # isascii() because str.isdigit() also accepts digits such as "３" or "²".
    if not isinstance(code, str) or not (code.isascii() and code.isdigit()):
        raise ValueError(f"area code must be a string of ASCII digits, got {code!r}")
    level = _LEVEL_BY_LENGTH.get(len(code))
    if level is None:
        raise ValueError(f"area code {code!r} has {len(code)} digits, expected 6, 9, 12, 15 or 18")
    if code[:_DISTRICT_LENGTH] == "000000":
        raise ValueError(f"area code {code!r} has no district part")
    for start in range(_DISTRICT_LENGTH, len(code), _SEGMENT):
        if code[start : start + _SEGMENT] == "000":
            raise ValueError(f"area code {code!r} has a 000 segment at digit {start + 1}")
    return level


def parent_code(code: str) -> str | None:
    """Return the code of the parent area, or None for a district."""
    level_of_code(code)
    if len(code) == _DISTRICT_LENGTH:
        return None
    return code[:-_SEGMENT]


def child_code(parent_code: str, n: int) -> str:
    """Return the code of child number ``n`` (1..999) of ``parent_code``."""
    level_of_code(parent_code)
    if len(parent_code) == _LEAF_LENGTH:
        raise ValueError(f"micro-grid {parent_code!r} has no child areas")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 999:
        raise ValueError(f"child number must be an int from 1 to 999, got {n!r}")
    return f"{parent_code}{n:03d}"


def is_descendant(code: str, ancestor_code: str, *, include_self: bool = False) -> bool:
    """Return True if ``code`` lies strictly below ``ancestor_code`` (or equals it if asked)."""
    level_of_code(code)
    level_of_code(ancestor_code)
    if code == ancestor_code:
        return include_self
    return len(code) > len(ancestor_code) and code.startswith(ancestor_code)
