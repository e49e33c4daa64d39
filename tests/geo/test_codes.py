import pytest

from geo.codes import LEVEL_CODE_LENGTH, child_code, is_descendant, level_of_code, parent_code

DISTRICT = "330212"
TOWN = "330212001"
COMMUNITY = "330212001002"
GRID = "330212001002003"
MICROGRID = "330212001002003004"


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (DISTRICT, "district"),
        (TOWN, "town"),
        ("330212100", "town"),
        (COMMUNITY, "community"),
        (GRID, "grid"),
        (MICROGRID, "microgrid"),
    ],
)
def test_level_of_code(code, level):
    assert level_of_code(code) == level
    assert len(code) == LEVEL_CODE_LENGTH[level]


@pytest.mark.parametrize(
    "code",
    [
        "",
        "33021",
        "3302120",
        "33021200",
        "3302120011",
        "3302120010020030040",
        "33021a001",
        " 330212",
        "330212 ",
        "３３０２１２",  # full-width digits pass str.isdigit()
        "000000",
        "330212000",
        "330212001000",
        "330212001002003000",
        None,
        330212,
    ],
)
def test_level_of_code_rejects_malformed(code):
    with pytest.raises(ValueError):
        level_of_code(code)


def test_parent_code():
    assert parent_code(DISTRICT) is None
    assert parent_code(TOWN) == DISTRICT
    assert parent_code(COMMUNITY) == TOWN
    assert parent_code(GRID) == COMMUNITY
    assert parent_code(MICROGRID) == GRID
    with pytest.raises(ValueError):
        parent_code("3302120")


def test_child_code():
    assert child_code(DISTRICT, 1) == TOWN
    assert child_code(DISTRICT, 100) == "330212100"
    assert child_code(TOWN, 2) == COMMUNITY
    assert child_code(GRID, 4) == MICROGRID
    assert child_code(GRID, 999) == "330212001002003999"
    assert parent_code(child_code(COMMUNITY, 17)) == COMMUNITY


@pytest.mark.parametrize("n", [0, 1000, -1, 1.0, "1", True])
def test_child_code_rejects_bad_numbers(n):
    with pytest.raises(ValueError):
        child_code(TOWN, n)


def test_child_code_rejects_bad_parents():
    with pytest.raises(ValueError):
        child_code(MICROGRID, 1)
    with pytest.raises(ValueError):
        child_code("3302", 1)


def test_is_descendant():
    assert is_descendant(MICROGRID, DISTRICT)
    assert is_descendant(MICROGRID, GRID)
    assert is_descendant(TOWN, DISTRICT)
    assert not is_descendant(DISTRICT, TOWN)
    assert not is_descendant(TOWN, TOWN)
    assert is_descendant(TOWN, TOWN, include_self=True)
    assert not is_descendant("330212002", TOWN)
    assert not is_descendant("330212002001", TOWN)
    assert not is_descendant(TOWN, "330213")


def test_is_descendant_rejects_malformed():
    with pytest.raises(ValueError):
        is_descendant("3302120010", DISTRICT)
    with pytest.raises(ValueError):
        is_descendant(TOWN, "3302")
