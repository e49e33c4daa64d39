"""Schemas of login, refresh and the current user."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=256)
    )


class MeSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String()
    role = fields.String(required=True)
    areas = fields.List(fields.String(), required=True)


class AccessTokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})


class LoginResultSchema(AccessTokenSchema):
    refresh_token = fields.String(required=True)
    user = fields.Nested(MeSchema, required=True)


class RefreshResultSchema(AccessTokenSchema):
    refresh_token = fields.String(
        required=True, metadata={"description": "The next refresh token; the old one is used up."}
    )


class LogoutSchema(Schema):
    refresh_token = fields.String(validate=validate.Length(min=1, max=4096))
    all = fields.Boolean(metadata={"description": "Revoke every refresh token of the caller."})

    @validates_schema
    def one_of(self, data, **kwargs):
        if not data.get("refresh_token") and not data.get("all"):
            raise ValidationError("Send the refresh_token to revoke, or all: true.")
