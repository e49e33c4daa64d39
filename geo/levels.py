"""Area levels: the one registry of the tree's levels, from the district down to the finest.

Each level has a name, its code length (a code extends its parent's code), its parent level,
the incident column that stores an incident's area at that level, the label the map shows, and
optionally a vector-tile layer of its outlines. Routing, scoping, the routing answer, the tile
layers, the demo tree and the map page read this registry rather than keeping copies.

Adding a level (say one under the micro-grid) is this registry plus a migration: the
incident's new `<level>_id` column, the area table's level and code-length checks (generated
from here, see gridgov/models/area.py) and, for a new finest level, the partial GiST index
routing uses. tests/api/test_area_levels.py runs the service on an extended registry.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class Level:
    name: str
    code_length: int
    parent: str | None
    column: str  # the incident column holding the incident's area at this level
    label: str  # as the map page shows it
    tile_layer: str | None = None  # vector-tile layer of this level's outlines
    tile_min_zoom: int | None = None


class LevelRegistry:
    """The levels of the area tree, root first; each level's parent is the one before it."""

    def __init__(self, levels: Iterable[Level]) -> None:
        """Check that `levels` form one chain from a root with ever longer codes."""
        self.levels = tuple(levels)
        if not self.levels or self.levels[0].parent is not None:
            raise ValueError("the first level must be the root (no parent)")
        for parent, level in pairwise(self.levels):
            if level.parent != parent.name:
                raise ValueError(f"level {level.name!r} must have parent {parent.name!r}")
            if level.code_length <= parent.code_length:
                raise ValueError(f"level {level.name!r} must have longer codes than its parent")
        self._by_name = {level.name: level for level in self.levels}
        self._by_length = {level.code_length: level for level in self.levels}
        if len(self._by_name) != len(self.levels):
            raise ValueError("level names must be unique")

    def __iter__(self) -> Iterator[Level]:
        return iter(self.levels)

    def __len__(self) -> int:
        return len(self.levels)

    def __getitem__(self, name: str) -> Level:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """Level names, root first."""
        return tuple(level.name for level in self.levels)

    @property
    def root(self) -> Level:
        """The top level (the district)."""
        return self.levels[0]

    @property
    def leaf(self) -> Level:
        """The finest level, the one points are routed to."""
        return self.levels[-1]

    @property
    def upward(self) -> tuple[Level, ...]:
        """The levels from the finest up to the root: a routed point's parent chain."""
        return self.levels[::-1]

    def by_code_length(self, length: int) -> Level | None:
        """The level whose codes have `length` digits, or None."""
        return self._by_length.get(length)

    def segment(self, level: Level) -> int:
        """How many digits `level`'s codes add to their parent's (the root: its whole code)."""
        if level.parent is None:
            return level.code_length
        return level.code_length - self[level.parent].code_length

    def as_config(self) -> list[dict]:
        """The registry as plain data, for the map page."""
        return [
            {
                "name": level.name,
                "code_length": level.code_length,
                "parent": level.parent,
                "label": level.label,
                "tile_layer": level.tile_layer,
                "tile_min_zoom": level.tile_min_zoom,
            }
            for level in self.levels
        ]


# GB/T 2260 district, GB/T 10114 town or street, then three digits a level.
LEVELS = LevelRegistry(
    (
        Level("district", 6, None, "district_id", "区"),
        Level("town", 9, "district", "town_id", "街道/镇"),
        Level("community", 12, "town", "community_id", "社区"),
        Level("grid", 15, "community", "grid_id", "网格", tile_layer="grids", tile_min_zoom=11),
        Level(
            "microgrid",
            18,
            "grid",
            "microgrid_id",
            "微网格",
            tile_layer="microgrids",
            tile_min_zoom=13,
        ),
    )
)
