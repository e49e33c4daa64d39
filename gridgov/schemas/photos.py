"""Schemas of photo upload and download."""

from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, Schema, fields


class PhotoUploadSchema(Schema):
    """The multipart form of an upload: one file in the field `file`."""

    class Meta:
        # A file sent under another name is answered with photo_missing, not "unknown field".
        unknown = EXCLUDE

    file = Upload(
        metadata={
            "description": "The photo: JPEG, PNG or WEBP. Its type is read from the bytes; "
            "the file name and the part's Content-Type are ignored."
        }
    )


class PhotoSchema(Schema):
    id = fields.String(required=True, metadata={"description": "Use it in incident `photos`."})
    content_type = fields.String(required=True, metadata={"example": "image/jpeg"})
    size_bytes = fields.Integer(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    sha256 = fields.String(required=True, metadata={"description": "Hex digest of the bytes."})
