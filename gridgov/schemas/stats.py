"""Schemas of the indicator and ranking endpoints (formulas: gridgov.services.stats)."""

from datetime import date

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from gridgov.schemas.areas import CODE_PATTERN
from gridgov.schemas.common import Day
from gridgov.services import stats

FORMATS = ("json", "csv")
# Days before 2000 or after 2999 are typing errors, not periods.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)
PERIOD_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2]|Q[1-4])$"


class PeriodQuerySchema(Schema):
    """`period=YYYY-MM|YYYY-Qn`, or `from`+`to` dates; default: this month in China time.

    Loads into {"period": stats.Period, "format": …} plus the endpoint's own fields.
    """

    period = fields.String(
        validate=validate.Regexp(PERIOD_PATTERN, error="Use YYYY-MM or YYYY-Qn."),
        metadata={"description": "A month (2024-03) or a quarter (2024-Q1), China time."},
    )
    first_day = Day(
        data_key="from",
        validate=validate.Range(min=FIRST_DAY, max=LAST_DAY),
        metadata={"description": "First day (YYYY-MM-DD, China time); needs `to`."},
    )
    last_day = Day(
        data_key="to",
        validate=validate.Range(min=FIRST_DAY, max=LAST_DAY),
        metadata={"description": "Last day, included; needs `from`."},
    )
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(FORMATS),
        metadata={"description": "csv: a UTF-8 (with BOM) CSV file with a header row."},
    )

    @validates_schema
    def one_kind_of_period(self, data, **kwargs):
        first, last = data.get("first_day"), data.get("last_day")
        if "period" in data and (first or last):
            raise ValidationError("Give either period or from/to, not both.", "period")
        if (first is None) != (last is None):
            raise ValidationError("from and to go together.", "to" if first else "from")
        if first and last:
            if last < first:
                raise ValidationError("Must not be before from.", "to")
            if (last - first).days + 1 > stats.MAX_PERIOD_DAYS:
                raise ValidationError(f"At most {stats.MAX_PERIOD_DAYS} days after from.", "to")

    @post_load
    def to_period(self, data, **kwargs):
        first, last = data.pop("first_day", None), data.pop("last_day", None)
        if "period" in data:
            data["period"] = stats.period_from_label(data["period"])
        elif first and last:
            data["period"] = stats.day_period(first, last)
        else:
            data["period"] = stats.current_month()
        return data


class IndicatorsQuerySchema(PeriodQuerySchema):
    area = fields.String(
        required=True,
        validate=validate.Regexp(CODE_PATTERN),
        metadata={"description": "Code of the area (any level) within your scope."},
    )


class RankingQuerySchema(PeriodQuerySchema):
    level = fields.String(required=True, validate=validate.OneOf(stats.RANKING_LEVELS))
    indicator = fields.String(
        load_default=stats.DEFAULT_RANKING_INDICATOR,
        validate=validate.OneOf(stats.RANKABLE),
        metadata={"description": "A rate, or overdue (a count; fewer ranks first)."},
    )
    parent = fields.String(
        validate=validate.Regexp(CODE_PATTERN),
        metadata={"description": "Rank the areas under this one (default: your scope)."},
    )


class StatsAreaSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    level = fields.String(required=True)


PeriodSchema = Schema.from_dict(
    {
        "label": fields.String(required=True),
        "from": fields.Date(
            required=True,
            attribute="first_day",
            metadata={"description": "First day, China time."},
        ),
        "to": fields.Date(
            required=True, attribute="last_day", metadata={"description": "Last day, included."}
        ),
        "start": fields.DateTime(required=True, metadata={"description": "First instant."}),
        "end": fields.DateTime(required=True, metadata={"description": "Exclusive end."}),
    },
    name="StatsPeriod",
)


class RateSchema(Schema):
    value = fields.Float(
        required=True, allow_none=True, metadata={"description": "null when denominator is 0"}
    )
    numerator = fields.Integer(required=True)
    denominator = fields.Integer(required=True)


CountsSchema = Schema.from_dict(
    {
        name: fields.Integer(required=True, metadata={"description": text})
        for name, text in stats.COUNT_DEFINITIONS.items()
    },
    name="IndicatorCounts",
)
RatesSchema = Schema.from_dict(
    {
        name: fields.Nested(RateSchema, required=True, metadata={"description": rate.formula})
        for name, rate in stats.RATE_DEFINITIONS.items()
    },
    name="IndicatorRates",
)


class IndicatorsSchema(Schema):
    """Dumps a stats.IndicatorReport."""

    area = fields.Nested(StatsAreaSchema, required=True, attribute="indicators.area")
    period = fields.Nested(PeriodSchema, required=True)
    as_of = fields.DateTime(
        required=True, metadata={"description": "When outcomes were read: min(now, end)."}
    )
    counts = fields.Nested(CountsSchema, required=True, attribute="indicators.counts")
    rates = fields.Nested(RatesSchema, required=True, attribute="indicators.rates")
    definitions = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Each count's definition and each rate's formula."},
    )


class RankedAreaSchema(Schema):
    rank = fields.Integer(
        required=True, allow_none=True, metadata={"description": "Ties share; null: no value."}
    )
    code = fields.String(required=True)
    name = fields.String(required=True)
    value = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"type": "number", "description": "A rate (4 places) or the overdue count."},
    )
    numerator = fields.Integer(required=True)
    denominator = fields.Integer(required=True, allow_none=True)


class RankingSchema(Schema):
    """Dumps a stats.Ranking."""

    level = fields.String(required=True)
    parent = fields.String(required=True, allow_none=True)
    indicator = fields.String(required=True)
    definition = fields.String(required=True)
    order = fields.String(
        required=True, metadata={"description": "desc: higher is better; asc: lower is better."}
    )
    period = fields.Nested(PeriodSchema, required=True)
    as_of = fields.DateTime(required=True)
    items = fields.List(fields.Nested(RankedAreaSchema), required=True)
