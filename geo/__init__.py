"""Pure geometry helpers: coordinate systems, point validation, no web or database code."""
