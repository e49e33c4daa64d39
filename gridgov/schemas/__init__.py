"""marshmallow schemas for request parsing and response documentation. They never query."""
