"""Photo upload and download: /api/v1/photos."""

from flask import send_file, url_for

from gridgov.api.input import Blueprint
from gridgov.api.security import current_user
from gridgov.errors import ValidationFailed
from gridgov.extensions import db
from gridgov.schemas.photos import PhotoSchema, PhotoUploadSchema
from gridgov.services import photos as photo_service
from gridgov.settings import settings

blp = Blueprint("photos", __name__, url_prefix="/api/v1/photos", description="Incident photos.")

CACHE_CONTROL = "private, max-age=86400"


@blp.route("", methods=["POST"])
@blp.arguments(PhotoUploadSchema, location="files")
@blp.response(201, PhotoSchema, headers={"Location": {"schema": {"type": "string"}}})
@blp.alt_response(413, description="`photo_too_large` (or `payload_too_large`).")
@blp.alt_response(415, description="`photo_unsupported_type`: GIF, BMP, TIFF, HEIC, ….")
@blp.alt_response(
    422, description="`photo_missing`, `photo_not_an_image`, `photo_too_many_pixels`."
)
def upload_photo(form):
    """Upload one photo (any signed-in user); link it to an incident through its `photos`."""
    user = current_user()
    upload = form.get("file")
    if upload is None:
        raise ValidationFailed(
            "Send the photo as the multipart form field `file`.",
            code="photo_missing",
            errors={"files": {"file": ["Missing data for required field."]}},
        )
    max_bytes = settings().bodies.photo
    # Read one byte past the limit: enough to tell "too large" without trusting Content-Length.
    data = upload.stream.read(max_bytes + 1)
    photo = photo_service.store_photo(
        db.session,
        data=data,
        uploader=user,
        upload_dir=settings().upload_dir,
        max_bytes=max_bytes,
    )
    db.session.commit()
    return photo, 201, {"Location": url_for("photos.get_photo", photo_id=photo.id)}


@blp.route("/<string:photo_id>")
@blp.response(
    200,
    description="The image bytes, with the stored content type and an `ETag` (the sha256).",
    content_type="image/*",
)
@blp.alt_response(304, description="Not modified (`If-None-Match` matched the ETag).")
@blp.alt_response(404, description="`photo_not_found`: no such photo, or not one you may see.")
def get_photo(photo_id):
    """The photo's bytes, for its uploader, admins, and whoever may see its incident."""
    photo = photo_service.get_visible_photo(db.session, user=current_user(), photo_id=photo_id)
    path = photo_service.stored_file(settings().upload_dir, photo)
    extension = path.suffix
    response = send_file(
        path,
        mimetype=photo.content_type,
        download_name=f"{photo.id}{extension}",
        etag=photo.sha256,
        conditional=True,
    )
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
