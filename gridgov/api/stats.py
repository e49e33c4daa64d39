"""Indicators and rankings: /api/v1/stats (formulas documented in gridgov.services.stats)."""

import csv
import io
from collections.abc import Iterable, Iterator

from flask import Response

from gridgov.api.input import Blueprint
from gridgov.api.security import current_user
from gridgov.extensions import db
from gridgov.schemas.stats import (
    IndicatorsQuerySchema,
    IndicatorsSchema,
    RankingQuerySchema,
    RankingSchema,
)
from gridgov.services import stats
from gridgov.settings import settings

blp = Blueprint(
    "stats",
    __name__,
    url_prefix="/api/v1/stats",
    description="Indicators and rankings of areas (每月一晾晒, 季度排名).",
)

CSV_MIMETYPE = "text/csv"
CSV_DOC = {
    "type": "string",
    "description": "UTF-8 CSV with a BOM; the first row names the columns.",
}
# Excel opens a UTF-8 CSV as UTF-8 (Chinese names intact) only when it starts with a BOM.
BOM = "\ufeff"
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@blp.route("/indicators")
@blp.arguments(IndicatorsQuerySchema, location="query")
@blp.response(200, IndicatorsSchema)
@blp.alt_response(
    200, schema=CSV_DOC, content_type=CSV_MIMETYPE, description="JSON, or CSV.", success=True
)
@blp.alt_response(403, description="`forbidden`: the area is outside your scope.")
@blp.alt_response(404, description="`area_not_found`.")
def get_indicators(args):
    """Counts and rates of an area for a period; `format=csv` for a spreadsheet."""
    report = stats.area_indicators(
        db.session,
        user=current_user(),
        area_code=args["area"],
        period=args["period"],
        max_backdate=settings().patrol_max_backdate,
    )
    area = report.indicators.area
    if args["format"] == "csv":
        filename = f"indicators-{area.code}-{report.period.label}.csv"
        return csv_response(_indicator_rows(report), filename=filename)
    return report


def _indicator_rows(report: stats.IndicatorReport) -> Iterator[list]:
    area, period = report.indicators.area, report.period
    definitions = stats.definitions()
    yield [
        "area_code",
        "area_name",
        "from",
        "to",
        "as_of",
        "indicator",
        "value",
        "numerator",
        "denominator",
        "definition",
    ]
    context = [area.code, area.name, period.first_day, period.last_day, report.as_of.isoformat()]
    for name, count in report.indicators.counts.items():
        yield [*context, name, count, "", "", definitions[name]]
    for name, rate in report.indicators.rates.items():
        value = "" if rate.value is None else rate.value
        yield [*context, name, value, rate.numerator, rate.denominator, definitions[name]]


@blp.route("/ranking")
@blp.arguments(RankingQuerySchema, location="query")
@blp.response(200, RankingSchema)
@blp.alt_response(
    200, schema=CSV_DOC, content_type=CSV_MIMETYPE, description="JSON, or CSV.", success=True
)
@blp.alt_response(403, description="`forbidden`: the parent (or the level) is beyond your scope.")
@blp.alt_response(404, description="`area_not_found`: no such parent.")
def get_ranking(args):
    """The areas at a level ranked by one indicator, best first; `format=csv` for a file."""
    result = stats.ranking(
        db.session,
        user=current_user(),
        level=args["level"],
        period=args["period"],
        indicator=args["indicator"],
        parent_code=args.get("parent"),
        max_backdate=settings().patrol_max_backdate,
    )
    if args["format"] == "csv":
        filename = f"ranking-{result.level}-{result.indicator}-{result.period.label}.csv"
        return csv_response(_ranking_rows(result), filename=filename)
    return result


def _ranking_rows(result: stats.Ranking) -> Iterator[list]:
    yield ["rank", "code", "name", "indicator", "value", "numerator", "denominator", "from", "to"]
    period = result.period
    for item in result.items:
        yield [
            "" if item.rank is None else item.rank,
            item.code,
            item.name,
            result.indicator,
            "" if item.value is None else item.value,
            item.numerator,
            "" if item.denominator is None else item.denominator,
            period.first_day,
            period.last_day,
        ]


def csv_response(rows: Iterable[list], *, filename: str) -> Response:
    """Stream rows (the first one the header) as a UTF-8 CSV with a BOM, for Excel."""

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        yield BOM
        for row in rows:
            writer.writerow([_cell(value) for value in row])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return Response(
        generate(),
        mimetype=CSV_MIMETYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
