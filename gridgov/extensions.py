"""Flask extensions, created unbound; `create_app` binds them."""

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from gridgov.lookups import Lookups
from gridgov.models import Base

# create_savepoint only matters when the session is bound to a connection that is already in
# a transaction (the test suite); with an Engine it behaves as the default.
db = SQLAlchemy(
    metadata=Base.metadata, session_options={"join_transaction_mode": "create_savepoint"}
)
migrate = Migrate()
jwt = JWTManager()
# Limits are declared on the endpoints that need them (login); the store is
# RATELIMIT_STORAGE_URI: memory:// counts per worker process, redis://… is shared.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# Autocommit, prepared-statement connections for read-only hot-path lookups (routing).
lookups = Lookups()
