"""Use cases. Functions take the session as first argument, flush but never commit, and raise
gridgov.errors.DomainError subclasses. No Flask here."""
