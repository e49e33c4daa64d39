"""Open311 GeoReport v2 parameters: the POST form and the GET Service Requests query.

The spec's "Optional Arguments" rule applies throughout: a parameter sent empty is the same as
one not sent. Field errors are phrased for an Open311 client (its parameter names: lat, long).
"""

import re
from datetime import date, datetime

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from geo.points import NOT_A_NUMBER, SWAPPED_COORDINATES, PointError, parse_input_point
from gridgov.schemas.common import check_day, check_instant
from gridgov.services.open311_requests import (
    MAX_DESCRIPTION,
    MAX_REQUESTS,
    RequestQuery,
    RequestSubmission,
)

# attribute[code]=value, and attribute[code][]=value for each value of a multivaluelist.
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_REQUEST_ID = re.compile(r"^[0-9]{1,18}$")


def _text(maximum: int) -> fields.String:
    return fields.String(validate=validate.Length(max=maximum))


class ServiceRequestFormSchema(Schema):
    """POST Service Request (application/x-www-form-urlencoded), loaded from {name: [values]}."""

    class Meta:
        unknown = EXCLUDE  # api_key is checked by the endpoint; extensions are ignored

    service_code = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        error_messages={"required": "service_code was not provided."},
    )
    jurisdiction_id = _text(100)
    lat = fields.String()
    long = fields.String()
    address_string = _text(500)
    address_id = _text(100)
    email = fields.Email(validate=validate.Length(max=254))
    device_id = _text(200)
    account_id = _text(200)
    first_name = _text(100)
    last_name = _text(100)
    phone = fields.String(validate=validate.Regexp(r"^[0-9+()\- ]{3,40}$"))
    description = _text(MAX_DESCRIPTION)
    media_url = fields.Url(
        schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000)
    )
    attributes = fields.Dict(keys=fields.String(), values=fields.Raw())

    @pre_load
    def flatten(self, data, **kwargs):
        """{name: [values]} → single values and an attributes map; drop empty parameters."""
        flat: dict = {}
        attributes: dict[str, list[str]] = {}
        repeated = []
        for name, values in data.items():
            values = [v for v in (values if isinstance(values, list) else [values]) if v != ""]
            _refuse_nul(name, values)
            match = _ATTRIBUTE.match(name)
            if match:
                if values:
                    attributes.setdefault(match.group(1), []).extend(values)
            elif values:
                if len(values) > 1 and name in self.fields:
                    repeated.append(name)
                flat[name] = values[0]
        if repeated:
            raise ValidationError({name: ["was sent more than once."] for name in repeated})
        flat["attributes"] = attributes
        return flat

    @validates_schema
    def check_point(self, data, **kwargs):
        if ("lat" in data) != ("long" in data):
            raise ValidationError(
                "lat and long must both be sent (WGS-84 degrees).",
                field_name="lat" if "lat" not in data else "long",
            )

    @post_load
    def to_submission(self, data, **kwargs) -> RequestSubmission:
        lat, long = data.pop("lat", None), data.pop("long", None)
        location = parse_lat_long(lat, long) if lat is not None else None
        attributes = {code: tuple(values) for code, values in data.pop("attributes").items()}
        return RequestSubmission(
            **data,
            location=location,
            lat=location.input_lat if location else None,
            long=location.input_lon if location else None,
            attributes=attributes,
        )


def _refuse_nul(name: str, values: list) -> None:
    # PostgreSQL text cannot hold U+0000; refused here rather than failing in the database.
    if any(isinstance(v, str) and "\x00" in v for v in values):
        raise ValidationError({name: ["must not contain NUL (U+0000) characters."]})


def parse_lat_long(lat_text: str, long_text: str):
    """A WGS-84 InputPoint from the spec's lat/long strings, or a ValidationError saying why."""
    numbers = {}
    for name, text in (("lat", lat_text), ("long", long_text)):
        try:
            numbers[name] = float(text)
        except ValueError:
            raise ValidationError(
                f"{name} must be a number in WGS-84 degrees, got {text!r}.", field_name=name
            ) from None
    lat, lon = numbers["lat"], numbers["long"]
    try:
        return parse_input_point(lon, lat, "wgs84")
    except PointError as error:
        if error.code == SWAPPED_COORDINATES:
            raise ValidationError(
                f"lat={lat!r} and long={lon!r} look swapped: lat is the latitude and long the"
                f" longitude (did you mean lat={lon!r}, long={lat!r}?).",
                field_name="lat",
            ) from error
        field = "long" if error.field == "lon" else (error.field or "lat")
        if error.code == NOT_A_NUMBER:
            message = f"{field} must be a finite number in WGS-84 degrees."
        else:
            message = error.message.replace("lon ", "long ").rstrip(".") + "."
        raise ValidationError(message, field_name=field) from error


class CommaList(fields.Field):
    """A comma-delimited list ("can be declared multiple times, comma delimited")."""

    def __init__(self, *, choices=None, pattern=None, maximum=MAX_REQUESTS, **kwargs):
        super().__init__(**kwargs)
        self.choices, self.pattern, self.maximum = choices, pattern, maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Expected a comma-delimited list.")
        items = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        if len(items) > self.maximum:
            raise ValidationError(f"At most {self.maximum} values.")
        for item in items:
            if self.choices and item not in self.choices:
                raise ValidationError(f"{item!r} is not one of {', '.join(self.choices)}.")
            if self.pattern and not self.pattern.match(item):
                raise ValidationError(f"{item!r} is not a valid value.")
        return items


class W3DateTime(fields.Field):
    """A date (YYYY-MM-DD, a whole local day) or a date-time with Z or an offset (w3 note)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Expected a w3 date-time such as 2010-01-01T00:00:00Z.")
        text = value.strip()
        try:
            if len(text) == 10:
                return check_day(date.fromisoformat(text))
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"{text!r} is not a w3 date-time such as 2010-01-01T00:00:00Z."
            ) from None
        if moment.tzinfo is None:
            raise ValidationError(f"{text!r} needs a time zone: Z or an offset such as +08:00.")
        return check_instant(moment)


class ServiceRequestsQuerySchema(Schema):
    """GET Service Requests query parameters."""

    class Meta:
        unknown = EXCLUDE  # jurisdiction_id (one jurisdiction here), page extensions, …

    service_request_id = CommaList(pattern=_REQUEST_ID)
    service_code = CommaList(maximum=100)
    start_date = W3DateTime()
    end_date = W3DateTime()
    status = CommaList(choices=("open", "closed"))

    @pre_load
    def drop_empty(self, data, **kwargs):
        for name, value in data.items():
            _refuse_nul(name, [value])
        return {name: value for name, value in data.items() if value != ""}

    @post_load
    def to_query(self, data, **kwargs) -> RequestQuery:
        ids = data.get("service_request_id")
        return RequestQuery(
            service_request_ids=tuple(int(i) for i in ids) if ids else None,
            service_codes=data.get("service_code", ()),
            start=data.get("start_date"),
            end=data.get("end_date"),
            statuses=data.get("status", ()),
        )
