"""Photos: check uploaded bytes are a real JPEG/PNG/WEBP, store them by content hash, decide
who may see them, and link them to incidents.

The type is decided by the bytes alone (never the file name or the client's Content-Type):
Pillow must recognise the format and decode the whole image, so a valid header followed by
garbage is refused. Files are stored content-addressed under the upload folder as
`<sha256[:2]>/<sha256>.<ext>`, written atomically; the same bytes uploaded twice share one file
but get a Photo row each. Nothing is stripped or re-encoded.

The file is written before the row commits, so an upload whose transaction fails leaves a file
no row refers to; `flask photos prune` finds such files once they are older than a grace
period (an upload still in flight is younger) and deletes them on request. Storing bytes that
are already on disk refreshes the file's time, so a file an upload has just reused is young
again and kept.
"""

import hashlib
import io
import logging
import os
import re
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridgov.errors import (
    DomainError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from gridgov.models import Photo, User
from gridgov.services.scope import get_visible_incident

log = logging.getLogger(__name__)

# A phone photo is at most ~50 megapixels (a 200 MP sensor bins to 12-50 MP); anything larger
# is refused before it is decoded (decompression bombs: a few KB of PNG can decode to GBs).
MAX_PIXELS = 50_000_000

# Pillow format → (content type, file extension). MPO is how Pillow names a JPEG carrying
# extra frames (some phone cameras write them); it is a JPEG and is stored as one.
ACCEPTED_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "MPO": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
# Image formats recognised only to say "unsupported type" (415) instead of "not an image".
# Formats with weak signatures (TGA, …) are left out so random bytes are not taken for them.
REFUSED_FORMATS = ("GIF", "BMP", "TIFF", "ICO", "AVIF", "JPEG2000", "PSD")
# The Pillow openers tried, in order (its JPEG opener also yields MPO).
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", *REFUSED_FORMATS)
# A JPEG with a depth map or preview (MPO) has 2-3 frames; more means an animation.
MAX_FRAMES = 4
# ISO-BMFF brands of HEIF/HEIC (iPhone photos), which Pillow cannot open without a plugin.
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}

PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")
# A stored file, relative to the upload folder, and an interrupted atomic write's temporary.
STORED_FILE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]+$")
TEMPORARY_FILE = re.compile(r"^[0-9a-f]{2}/\.upload-[^/]*\.tmp$")


class PhotoTooLarge(PayloadTooLarge):
    """More bytes than the configured maximum."""

    code = "photo_too_large"


class PhotoUnsupportedType(UnsupportedMediaType):
    """An image, but not of a type the service stores."""

    code = "photo_unsupported_type"


class PhotoNotAnImage(ValidationFailed):
    """Bytes that do not decode as a whole image."""

    code = "photo_not_an_image"


class PhotoTooManyPixels(ValidationFailed):
    """An image whose dimensions exceed the pixel limit (a possible decompression bomb)."""

    code = "photo_too_many_pixels"


class PhotoNotFound(NotFound):
    """No such photo, or not one the caller may see (the two are never told apart)."""

    code = "photo_not_found"


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    extension: str
    width: int
    height: int


def inspect_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Type and size of an accepted image, decided by decoding `data` entirely."""
    if not data:
        raise PhotoNotAnImage("The file is empty.")
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        raise _unsupported("HEIF")
    # Pillow warns above Image.MAX_IMAGE_PIXELS and raises above twice that; make the warning
    # an error too. Our own, lower limit is checked as soon as the header is read.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
                image_format, (width, height) = im.format, im.size
                if image_format not in ACCEPTED_FORMATS:
                    raise _unsupported(image_format)
                frames = getattr(im, "n_frames", 1)
                if frames > MAX_FRAMES:
                    raise _unsupported(f"Animated {image_format}")
                _check_pixels(width, height, max_pixels)
                im.verify()  # structure and checksums (PNG CRCs); leaves `im` unusable
            with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
                for frame in range(frames):  # decode every pixel: truncated data fails here
                    im.seek(frame)
                    _check_pixels(*im.size, max_pixels)
                    im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(max_pixels) from exc
        except DomainError:
            raise
        except Exception as exc:  # Pillow raises many types on hostile input (OSError, …)
            raise PhotoNotAnImage(
                "The file is not a complete JPEG, PNG or WEBP image.",
                details={"reason": type(exc).__name__},
            ) from exc
    content_type, extension = ACCEPTED_FORMATS[image_format]
    return ImageInfo(content_type, extension, width, height)


def store_photo(
    session: Session,
    *,
    data: bytes,
    uploader: User,
    upload_dir: Path,
    max_bytes: int,
    max_pixels: int = MAX_PIXELS,
) -> Photo:
    """Check `data` is an accepted image, store it by content hash and add its Photo row."""
    if len(data) > max_bytes:
        raise PhotoTooLarge(
            f"A photo may have at most {max_bytes} bytes.", details={"max_bytes": max_bytes}
        )
    info = inspect_image(data, max_pixels=max_pixels)
    sha256 = hashlib.sha256(data).hexdigest()
    relative = Path(sha256[:2]) / f"{sha256}.{info.extension}"
    _write_once(Path(upload_dir) / relative, data)
    photo = Photo(
        id=uuid.uuid4().hex,
        uploader_id=uploader.id,
        sha256=sha256,
        content_type=info.content_type,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        storage_path=relative.as_posix(),
        # The statement's clock, not the transaction's: keeps upload order within one transaction.
        created_at=func.clock_timestamp(),
    )
    session.add(photo)
    session.flush()
    log.info(
        "photo %s uploaded by user %s: %s, %d bytes",
        photo.id,
        uploader.id,
        info.content_type,
        len(data),
    )
    return photo


def get_visible_photo(session: Session, *, user: User, photo_id: str) -> Photo:
    """The photo if `user` may see it, else PhotoNotFound (as for an id that does not exist).

    Visible to its uploader, to admins, and, once linked to an incident, to whoever may see
    that incident.
    """
    photo = session.get(Photo, photo_id) if PHOTO_ID.match(photo_id) else None
    if photo is not None:
        if user.role == "admin" or photo.uploader_id == user.id:
            return photo
        if photo.incident_id is not None:
            try:
                get_visible_incident(session, user=user, incident_id=photo.incident_id)
            except NotFound:
                pass
            else:
                return photo
    raise PhotoNotFound("No such photo.")


def stored_file(upload_dir: Path, photo: Photo) -> Path:
    """The absolute path of a photo's file, checked to lie inside `upload_dir` and to exist."""
    root = Path(upload_dir).resolve()
    path = (root / photo.storage_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        log.error("photo %s: stored file %r is missing or outside", photo.id, photo.storage_path)
        raise PhotoNotFound("No such photo.")
    return path


def attach_photos(
    session: Session, *, incident_id: int, photo_ids: list[str], reporter_id: int
) -> list[Photo]:
    """Link the reporter's photos to an incident (idempotent); photo_not_attachable otherwise."""
    wanted = list(dict.fromkeys(photo_ids))
    if not wanted:
        return []
    # Lock in id order so two intakes grabbing overlapping photos cannot deadlock.
    rows = session.scalars(
        select(Photo).where(Photo.id.in_(wanted)).order_by(Photo.id).with_for_update()
    ).all()
    by_id = {photo.id: photo for photo in rows}
    problems: dict[str, list[str]] = {}
    for photo_id in wanted:
        photo = by_id.get(photo_id)
        if photo is None or photo.uploader_id != reporter_id:
            # Another user's photo gets the same answer as a missing one.
            problems[photo_id] = ["No such photo uploaded by the reporter."]
        elif photo.incident_id is not None and photo.incident_id != incident_id:
            problems[photo_id] = ["The photo belongs to another incident."]
    if problems:
        raise ValidationFailed(
            "Some photos cannot be attached to this incident.",
            code="photo_not_attachable",
            errors={"photos": problems},
        )
    for photo in rows:
        photo.incident_id = incident_id
    session.flush()
    return [by_id[photo_id] for photo_id in wanted]


def photo_ids_of_incident(session: Session, *, incident_id: int) -> list[str]:
    """Ids of the photos linked to an incident, in upload order."""
    return list(
        session.scalars(
            select(Photo.id)
            .where(Photo.incident_id == incident_id)
            .order_by(Photo.created_at, Photo.id)
        )
    )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels, width=width, height=height)


def _too_many_pixels(max_pixels: int, **size: int) -> PhotoTooManyPixels:
    return PhotoTooManyPixels(
        f"A photo may have at most {max_pixels} pixels.",
        details={"max_pixels": max_pixels, **size},
    )


def _unsupported(image_format: str) -> PhotoUnsupportedType:
    return PhotoUnsupportedType(
        f"{image_format} images are not accepted; send JPEG, PNG or WEBP.",
        details={"detected": image_format.lower(), "accepted": sorted(_accepted_types())},
    )


def _accepted_types() -> set[str]:
    return {content_type for content_type, _ in ACCEPTED_FORMATS.values()}


def _write_once(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically unless the file is already there (same hash)."""
    if path.is_file() and path.stat().st_size == len(data):
        os.utime(path)  # young again: `photos prune` leaves it to the upload reusing it
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class OrphanFiles:
    """Files under the upload folder that no photo row refers to, older than a cutoff."""

    unreferenced: list[Path]
    temporaries: list[Path]

    @property
    def paths(self) -> list[Path]:
        """Every file found."""
        return [*self.unreferenced, *self.temporaries]


def find_orphan_files(session: Session, *, upload_dir: Path, older_than: datetime) -> OrphanFiles:
    """Stored files no photo row refers to, and interrupted writes, last changed before
    `older_than`; files not named by the storage scheme are never listed."""
    root = Path(upload_dir)
    if not root.is_dir():
        return OrphanFiles([], [])
    cutoff = older_than.timestamp()
    stored, temporaries = [], []
    for path in sorted(root.glob("*/*")):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or path.stat().st_mtime >= cutoff:
            continue
        if STORED_FILE.match(relative):
            stored.append((relative, path))
        elif TEMPORARY_FILE.match(relative):
            temporaries.append(path)
    # One pass over the rows (streamed), rather than one query per file.
    referenced = set(
        session.scalars(select(Photo.storage_path).distinct().execution_options(yield_per=10_000))
    )
    unreferenced = [path for relative, path in stored if relative not in referenced]
    return OrphanFiles(unreferenced, temporaries)


def delete_files(paths: list[Path], *, older_than: datetime) -> int:
    """Delete those of `paths` still last changed before `older_than`; how many were deleted."""
    cutoff = older_than.timestamp()
    deleted = 0
    for path in paths:
        try:
            # Checked again just before: an upload may have reused (touched) the file since.
            if path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    log.info("photos: deleted %d orphan files", deleted)
    return deleted
