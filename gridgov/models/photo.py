"""Photos uploaded from phones, stored on disk by content hash and linked to incidents."""

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gridgov.models.base import Base, CreatedAtMixin


class Photo(CreatedAtMixin, Base):
    __tablename__ = "photo"

    # Random, unguessable id (uuid4 hex): photo URLs are not enumerable.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    uploader_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    incident_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("incident.id"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Relative to the configured upload folder.
    storage_path: Mapped[str] = mapped_column(String(200))
