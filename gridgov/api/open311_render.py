"""Open311 GeoReport v2 documents in the spec's JSON and XML: the HTTP edge's rendering of
what gridgov/services/open311_requests.py finds (services, service requests) and of errors.

Fields come in the spec's order; times are W3C date-times in the district's time zone; an
empty text is null, as the spec's examples show. XML follows the Spark convention
(http://wiki.open311.org/JSON_and_XML_Conversion) under the spec's root elements.
"""

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from gridgov.services.open311_requests import Attribute, Service, ServiceRequestView

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = {"json": "application/json", "xml": "text/xml"}
# discovery's changeset while there is no category at all
NO_CHANGESET = "1970-01-01T00:00:00Z"


def attribute_document(attribute: Attribute) -> dict:
    """An attribute as the spec's service_definition shows it."""
    body: dict = {
        "variable": True,
        "code": attribute.code,
        "datatype": attribute.datatype,
        "required": attribute.required,
        "datatype_description": attribute.datatype_description,
        "order": attribute.order,
        "description": attribute.description,
    }
    if attribute.values:
        body["values"] = [{"key": v.key, "name": v.name} for v in attribute.values]
    return body


def service_document(service: Service) -> dict:
    """A service as the spec's GET Service List shows it."""
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "metadata": bool(service.attributes),
        "type": "realtime",
        "keywords": service.keywords,
        "group": service.group,
    }


def service_definition(service: Service) -> dict:
    """The spec's service_definition document."""
    attributes = sorted(service.attributes, key=lambda a: a.order)
    return {
        "service_code": service.code,
        "attributes": [attribute_document(a) for a in attributes],
    }


def request_document(view: ServiceRequestView, tz: tzinfo) -> dict:
    """The spec's request element."""
    return {
        "service_request_id": view.id,
        "status": view.status,
        "status_notes": view.status_notes,
        "service_name": view.service_name,
        "service_code": view.service_code,
        "description": view.description or None,
        "agency_responsible": view.agency_responsible,
        "service_notice": view.service_notice or None,
        "requested_datetime": w3_datetime(view.requested, tz),
        "updated_datetime": w3_datetime(view.updated, tz),
        "expected_datetime": w3_datetime(view.expected, tz) if view.expected else None,
        "address": view.address,
        "address_id": view.address_id,
        "zipcode": None,
        "lat": round(view.lat, 7),
        "long": round(view.long, 7),
        "media_url": view.media_url,
    }


def post_response(view: ServiceRequestView, *, account_id: str | None) -> dict:
    """The spec's answer to POST Service Request (realtime: an id, never a token)."""
    return {
        "service_request_id": view.id,
        "service_notice": view.service_notice or None,
        "account_id": account_id,
    }


def discovery_document(
    *, url: str, changeset: datetime | None, contact: str, key_service: str, kind: str
) -> dict:
    """The Service Discovery document (http://wiki.open311.org/Service_Discovery);
    `changeset` is when the service list last changed."""
    changeset = w3_datetime(changeset, UTC) if changeset else NO_CHANGESET
    return {
        "changeset": changeset,
        "contact": contact,
        "key_service": key_service,
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": url,
                "changeset": changeset,
                "type": kind,
                "formats": [FORMATS["xml"], FORMATS["json"]],
            }
        ],
    }


def errors_document(errors: Iterable[tuple[int, str]]) -> list[dict]:
    """The spec's error list: [{"code", "description"}, …]."""
    return [{"code": code, "description": description} for code, description in errors]


def w3_datetime(value: datetime, tz: tzinfo) -> str:
    """ISO 8601 / W3C date-time with an offset (UTC as Z), to the second."""
    text = value.astimezone(tz).isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# Spark convention (http://wiki.open311.org/JSON_and_XML_Conversion): a JSON array is an XML
# element whose children are named by the singular of its name.
XML_ITEM_NAMES = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}
# Characters XML 1.0 cannot carry at all (C0 controls other than tab, newline, return).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_document(root: str, value: object) -> bytes:
    """`value` (the JSON document) as the spec's XML, with its UTF-8 declaration."""
    element = _xml_element(root, value)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8")


def _xml_element(tag: str, value: object) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, dict):
        for key, child in value.items():
            element.append(_xml_element(key, child))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        item = XML_ITEM_NAMES[tag]
        for child in value:
            element.append(_xml_element(item, child))
    elif value is not None:
        element.text = _xml_text(value)
    return element


def _xml_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_INVALID.sub("", str(value))
