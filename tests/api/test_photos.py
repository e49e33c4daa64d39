"""Photo upload and download: /api/v1/photos, and linking photos to incidents."""

import hashlib
import io
import logging
import os
import random
import struct
import time
import uuid
import zlib

import pytest
from PIL import Image
from sqlalchemy import func, select

from gridgov.errors import ValidationFailed
from gridgov.models import Area, Photo
from gridgov.services.photos import attach_photos, photo_ids_of_incident
from tests.factories import make_incident, make_user
from tests.helpers import bearer, configure

URL = "/api/v1/photos"
WORKER_MICROGRID = "330212001001001001"
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@pytest.fixture(autouse=True)
def upload_dir(app, tmp_path, monkeypatch):
    """A fresh upload folder for every test."""
    path = tmp_path / "uploads"
    configure(monkeypatch, app, UPLOAD_DIR=path)
    return path


def image_bytes(fmt: str, size=(64, 48), mode="RGB", seed=1, **save) -> bytes:
    """A real image: random pixels, so compressed data runs through the whole file."""
    rng = random.Random(seed)
    image = Image.frombytes(mode, size, rng.randbytes(len(mode) * size[0] * size[1]))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size, a few KB on disk however many pixels it declares."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body)
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def upload(client, headers, data: bytes, filename="photo.jpg", content_type="image/jpeg"):
    return client.post(
        URL,
        headers=headers,
        data={"file": (io.BytesIO(data), filename, content_type)},
        content_type="multipart/form-data",
    )


def upload_id(client, headers, data: bytes | None = None, seed: int = 1) -> str:
    response = upload(client, headers, data or image_bytes("JPEG", seed=seed))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def stored_files(upload_dir):
    return sorted(p for p in upload_dir.rglob("*") if p.is_file()) if upload_dir.exists() else []


def photo_count(db_session) -> int:
    return db_session.scalar(select(func.count()).select_from(Photo))


def assert_error(response, status: int, error: str):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == status
    assert body["error"] == error
    return body


# --- upload and download --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_upload_then_download_gives_the_same_bytes_and_type(client, auth, upload_dir, fmt):
    data = image_bytes(fmt, size=(40, 30))
    # The name and the part's type say JPEG whatever the bytes are: the bytes decide.
    response = upload(client, auth("grid_worker"), data, "IMG_0001.jpg", "image/jpeg")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "content_type", "size_bytes", "width", "height", "sha256"}
    assert len(body["id"]) == 32
    assert body["content_type"] == CONTENT_TYPES[fmt]
    assert (body["size_bytes"], body["width"], body["height"]) == (len(data), 40, 30)
    assert response.headers["Location"].endswith(f"{URL}/{body['id']}")

    extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    sha = body["sha256"]
    assert stored_files(upload_dir) == [upload_dir / sha[:2] / f"{sha}.{extension}"]

    download = client.get(f"{URL}/{body['id']}", headers=auth("grid_worker"))
    assert download.status_code == 200
    assert download.data == data
    assert download.mimetype == CONTENT_TYPES[fmt]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Cache-Control"] == "private, max-age=86400"
    assert download.headers["ETag"] == f'"{sha}"'


def test_download_answers_304_to_a_matching_etag(client, auth):
    photo_id = upload_id(client, auth("grid_worker"))
    first = client.get(f"{URL}/{photo_id}", headers=auth("grid_worker"))
    again = client.get(
        f"{URL}/{photo_id}",
        headers={**auth("grid_worker"), "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.data == b""


def test_a_jpeg_with_extra_frames_mpo_is_a_jpeg(client, auth):
    first, second = (Image.new("RGB", (32, 24), colour) for colour in ("red", "blue"))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    response = upload(client, auth("grid_worker"), buffer.getvalue())
    assert response.status_code == 201
    assert response.get_json()["content_type"] == "image/jpeg"


@pytest.mark.parametrize("username", ["grid_worker", "town_supervisor", "admin"])
def test_any_signed_in_user_may_upload(client, auth, username):
    assert upload(client, auth(username), image_bytes("PNG")).status_code == 201


def test_upload_logs_one_line_without_contents(client, auth, demo_users, caplog):
    with caplog.at_level(logging.INFO, logger="gridgov.services.photos"):
        photo_id = upload_id(client, auth("grid_worker"))
    lines = [r.getMessage() for r in caplog.records if r.name == "gridgov.services.photos"]
    assert len(lines) == 1
    assert photo_id in lines[0]
    assert f"user {demo_users['grid_worker'].id}" in lines[0]
    assert "image/jpeg" in lines[0]


def test_same_bytes_twice_are_two_photos_and_one_file(client, auth, upload_dir, db_session):
    data = image_bytes("PNG")
    first = upload(client, auth("grid_worker"), data).get_json()
    second = upload(client, auth("town_supervisor"), data).get_json()
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"]
    assert len(stored_files(upload_dir)) == 1
    rows = db_session.scalars(select(Photo).where(Photo.id.in_([first["id"], second["id"]])))
    assert {row.storage_path for row in rows} == {f"{first['sha256'][:2]}/{first['sha256']}.png"}
    for photo_id in (first["id"], second["id"]):
        assert client.get(f"{URL}/{photo_id}", headers=auth("admin")).data == data


# --- refused uploads ------------------------------------------------------------------------


def _truncated_jpeg() -> bytes:
    data = image_bytes("JPEG", size=(128, 128))
    return data[: len(data) // 2]


def _png_header_then_garbage() -> bytes:
    data = image_bytes("PNG")
    header_end = 8 + 25  # signature + IHDR chunk
    return data[:header_end] + random.Random(7).randbytes(2000)


def _jpeg_header_then_garbage() -> bytes:
    data = image_bytes("JPEG", size=(128, 128))
    start_of_scan = data.index(b"\xff\xda")
    scan_data = start_of_scan + 2 + int.from_bytes(data[start_of_scan + 2 : start_of_scan + 4])
    return data[:scan_data] + random.Random(3).randbytes(len(data) - scan_data)


def _png_with_bad_crc() -> bytes:
    data = bytearray(image_bytes("PNG"))
    data[-20] ^= 0xFF  # inside the last IDAT chunk
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"just some text, honestly\n" * 20, id="text-named-jpg"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 100, id="png-signature-garbage"),
        pytest.param(_png_header_then_garbage(), id="png-header-garbage"),
        pytest.param(_png_with_bad_crc(), id="png-bad-crc"),
        pytest.param(image_bytes("PNG", size=(64, 64))[:2000], id="truncated-png"),
        pytest.param(_jpeg_header_then_garbage(), id="jpeg-header-garbage"),
        pytest.param(_truncated_jpeg(), id="truncated-jpeg"),
        pytest.param(image_bytes("WEBP")[:-40], id="truncated-webp"),
        pytest.param(b"", id="empty"),
    ],
)
def test_what_is_not_a_whole_image_is_422(client, auth, upload_dir, db_session, data):
    before = photo_count(db_session)
    response = upload(client, auth("grid_worker"), data, "photo.jpg", "image/jpeg")
    assert_error(response, 422, "photo_not_an_image")
    assert photo_count(db_session) == before
    assert stored_files(upload_dir) == []


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_types_are_415(client, auth, upload_dir, fmt):
    response = upload(client, auth("grid_worker"), image_bytes(fmt), "photo.jpg", "image/jpeg")
    body = assert_error(response, 415, "photo_unsupported_type")
    assert body["details"]["detected"] == fmt.lower()
    assert stored_files(upload_dir) == []


def test_heic_is_415(client, auth):
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0mif1heic" + b"\0" * 100
    assert_error(upload(client, auth("grid_worker"), heic), 415, "photo_unsupported_type")


@pytest.mark.parametrize(
    "width, height",
    [
        pytest.param(20000, 20000, id="over-twice-pillow-limit"),
        pytest.param(10000, 10000, id="over-pillow-warning"),
        pytest.param(8000, 7000, id="over-our-limit"),
    ],
)
def test_decompression_bombs_are_422(client, auth, upload_dir, width, height):
    bomb = png_of_zeros(width, height)
    assert len(bomb) < 200_000
    response = upload(client, auth("grid_worker"), bomb, "bomb.png", "image/png")
    body = assert_error(response, 422, "photo_too_many_pixels")
    assert body["details"]["max_pixels"] == 50_000_000
    assert stored_files(upload_dir) == []


def test_a_large_but_allowed_pixel_count_is_accepted(client, auth):
    response = upload(client, auth("grid_worker"), png_of_zeros(5000, 4000))
    assert response.status_code == 201
    assert (response.get_json()["width"], response.get_json()["height"]) == (5000, 4000)


def test_missing_file_field_is_422_photo_missing(client, auth):
    headers = auth("grid_worker")
    no_field = client.post(
        URL,
        headers=headers,
        data={"photo": (io.BytesIO(image_bytes("PNG")), "p.png", "image/png")},
        content_type="multipart/form-data",
    )
    body = assert_error(no_field, 422, "photo_missing")
    assert "file" in body["errors"]["files"]
    as_text_field = client.post(
        URL, headers=headers, data={"file": "not a file"}, content_type="multipart/form-data"
    )
    assert_error(as_text_field, 422, "photo_missing")
    assert_error(client.post(URL, headers=headers), 422, "photo_missing")
    assert_error(client.post(URL, headers=headers, json={"file": "x"}), 422, "photo_missing")


def test_more_than_photo_max_bytes_is_413_and_stores_nothing(
    app, client, auth, upload_dir, db_session, monkeypatch
):
    data = image_bytes("PNG")
    before = photo_count(db_session)
    configure(monkeypatch, app, PHOTO_MAX_BYTES=len(data) - 1)
    body = assert_error(upload(client, auth("grid_worker"), data), 413, "photo_too_large")
    assert body["details"]["max_bytes"] == len(data) - 1
    assert photo_count(db_session) == before
    assert stored_files(upload_dir) == []
    configure(monkeypatch, app, PHOTO_MAX_BYTES=len(data))
    assert upload(client, auth("grid_worker"), data).status_code == 201


def test_a_body_over_max_content_length_is_413_payload_too_large(
    app, client, auth, monkeypatch, upload_dir
):
    configure(monkeypatch, app, MAX_CONTENT_LENGTH=2000)
    response = upload(client, auth("grid_worker"), image_bytes("PNG", size=(100, 100)))
    assert_error(response, 413, "payload_too_large")
    assert stored_files(upload_dir) == []


def test_photos_need_a_token(client, auth):
    assert_error(upload(client, {}, image_bytes("PNG")), 401, "token_missing")
    photo_id = upload_id(client, auth("grid_worker"))
    assert_error(client.get(f"{URL}/{photo_id}"), 401, "token_missing")


# --- who may download -------------------------------------------------------------------------


@pytest.fixture
def outsiders(app, db_session):
    """Headers of a supervisor of another town and a worker of another grid."""
    town = db_session.scalar(
        select(Area.code)
        .where(Area.level == "town", Area.code != "330212001")
        .order_by(Area.code)
        .limit(1)
    )
    grid = db_session.scalar(
        select(Area.code)
        .where(Area.level == "grid", Area.code.like(f"{town}%"))
        .order_by(Area.code)
        .limit(1)
    )
    supervisor = make_user(
        db_session, username="other_supervisor", role="supervisor", area_code=town
    )
    worker = make_user(db_session, username="other_worker", role="worker", area_code=grid)
    return {"supervisor": bearer(app, supervisor), "worker": bearer(app, worker)}


def test_who_may_see_a_photo_linked_to_an_incident(client, db_session, auth, demo_users, outsiders):
    photo_id = upload_id(client, auth("grid_worker"))
    reporter = demo_users["grid_worker"]

    def status(headers):
        return client.get(f"{URL}/{photo_id}", headers=headers).status_code

    # Before linking: only the uploader and admins.
    assert status(auth("grid_worker")) == 200
    assert status(auth("admin")) == 200
    assert status(auth("town_supervisor")) == 404

    incident = make_incident(db_session, reporter=reporter, microgrid_code=WORKER_MICROGRID)
    attach_photos(
        db_session, incident_id=incident.id, photo_ids=[photo_id], reporter_id=reporter.id
    )
    for username in ("grid_worker", "admin", "town_supervisor", "district_supervisor", "grid_head"):
        assert status(auth(username)) == 200, username

    unknown = client.get(f"{URL}/{uuid.uuid4().hex}", headers=outsiders["worker"])
    assert_error(unknown, 404, "photo_not_found")
    for who in ("supervisor", "worker"):
        refused = client.get(f"{URL}/{photo_id}", headers=outsiders[who])
        assert refused.status_code == 404, who
        assert refused.get_data() == unknown.get_data()  # existence is never revealed


def test_a_photo_on_an_unrouted_incident_is_seen_by_its_reporter_and_admins(
    client, db_session, auth, demo_users
):
    photo_id = upload_id(client, auth("grid_worker"))
    reporter = demo_users["grid_worker"]
    incident = make_incident(db_session, reporter=reporter)
    assert incident.routing_method == "unrouted" and incident.town_id is None
    attach_photos(
        db_session, incident_id=incident.id, photo_ids=[photo_id], reporter_id=reporter.id
    )
    assert client.get(f"{URL}/{photo_id}", headers=auth("admin")).status_code == 200
    assert client.get(f"{URL}/{photo_id}", headers=auth("grid_worker")).status_code == 200
    assert client.get(f"{URL}/{photo_id}", headers=auth("town_supervisor")).status_code == 404


@pytest.mark.parametrize("photo_id", ["nothex", "A" * 32, "0" * 33, "0" * 32])
def test_unknown_or_malformed_ids_are_404(client, auth, photo_id):
    assert_error(client.get(f"{URL}/{photo_id}", headers=auth("admin")), 404, "photo_not_found")


def test_download_never_leaves_the_upload_folder(client, db_session, auth, upload_dir):
    photo_id = upload_id(client, auth("grid_worker"))
    secret = upload_dir.parent / "secret.jpg"
    secret.write_bytes(b"secret")
    photo = db_session.get(Photo, photo_id)
    for path in ("../secret.jpg", str(secret), "../../../../etc/passwd"):
        photo.storage_path = path
        db_session.flush()
        response = client.get(f"{URL}/{photo_id}", headers=auth("grid_worker"))
        assert_error(response, 404, "photo_not_found")


def test_a_lost_file_is_404(client, auth, upload_dir):
    photo_id = upload_id(client, auth("grid_worker"))
    for path in stored_files(upload_dir):
        path.unlink()
    assert_error(client.get(f"{URL}/{photo_id}", headers=auth("admin")), 404, "photo_not_found")


# --- attach_photos / photo_ids_of_incident --------------------------------------------------


def test_attach_photos_keeps_upload_order_and_is_idempotent(client, db_session, auth, demo_users):
    reporter = demo_users["grid_worker"]
    first, second = (upload_id(client, auth("grid_worker"), seed=s) for s in (1, 2))
    incident = make_incident(db_session, reporter=reporter, microgrid_code=WORKER_MICROGRID)
    attached = attach_photos(
        db_session, incident_id=incident.id, photo_ids=[second, first], reporter_id=reporter.id
    )
    assert [p.id for p in attached] == [second, first]
    assert all(p.incident_id == incident.id for p in attached)
    assert photo_ids_of_incident(db_session, incident_id=incident.id) == [first, second]
    again = attach_photos(
        db_session, incident_id=incident.id, photo_ids=[first, first], reporter_id=reporter.id
    )
    assert [p.id for p in again] == [first]
    assert photo_ids_of_incident(db_session, incident_id=incident.id) == [first, second]
    assert attach_photos(db_session, incident_id=incident.id, photo_ids=[], reporter_id=1) == []


def test_attach_photos_refuses_others_unknown_and_taken_photos(
    client, db_session, auth, demo_users
):
    reporter = demo_users["grid_worker"]
    own = upload_id(client, auth("grid_worker"), seed=1)
    taken = upload_id(client, auth("grid_worker"), seed=2)
    foreign = upload_id(client, auth("grid_head"), seed=3)
    unknown = uuid.uuid4().hex
    incident = make_incident(db_session, reporter=reporter, microgrid_code=WORKER_MICROGRID)
    other = make_incident(db_session, reporter=reporter, microgrid_code=WORKER_MICROGRID)
    attach_photos(db_session, incident_id=other.id, photo_ids=[taken], reporter_id=reporter.id)

    with pytest.raises(ValidationFailed) as refused:
        attach_photos(
            db_session,
            incident_id=incident.id,
            photo_ids=[own, taken, foreign, unknown],
            reporter_id=reporter.id,
        )
    assert refused.value.code == "photo_not_attachable"
    assert refused.value.http_status == 422
    assert set(refused.value.errors["photos"]) == {taken, foreign, unknown}
    # Nothing was linked: not even the reporter's own photo.
    assert photo_ids_of_incident(db_session, incident_id=incident.id) == []
    assert db_session.get(Photo, own).incident_id is None
    assert photo_ids_of_incident(db_session, incident_id=other.id) == [taken]


def test_openapi_documents_the_multipart_upload(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    body = spec["paths"]["/api/v1/photos"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert "/api/v1/photos/{photo_id}" in spec["paths"]


# --- `flask photos prune`: files no photo row refers to ------------------------------------


def _age(path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def _orphan(upload_dir, seed: int, hours_old: float):
    data = image_bytes("JPEG", seed=seed)
    digest = hashlib.sha256(data).hexdigest()
    path = upload_dir / digest[:2] / f"{digest}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    _age(path, hours_old)
    return path


def test_prune_lists_then_deletes_only_old_unreferenced_files(app, client, auth, upload_dir):
    headers = auth("grid_worker")
    kept_id = upload_id(client, headers, seed=1)
    (referenced,) = stored_files(upload_dir)
    _age(referenced, 48)  # old, but a row refers to it
    old_orphan = _orphan(upload_dir, seed=2, hours_old=48)
    young_orphan = _orphan(upload_dir, seed=3, hours_old=1)  # maybe an upload in flight
    interrupted = old_orphan.parent / ".upload-abc123.tmp"
    interrupted.write_bytes(b"half a photo")
    _age(interrupted, 48)
    stranger = old_orphan.parent / "notes.txt"  # not ours to delete
    stranger.write_text("left by an operator")
    _age(stranger, 48)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["photos", "prune"])
    assert dry.exit_code == 0, dry.output
    assert "1 unreferenced files and 1 interrupted writes older than 24 h" in dry.output
    assert old_orphan.name in dry.output and interrupted.name in dry.output
    assert all(p.exists() for p in (old_orphan, interrupted, young_orphan, stranger))

    applied = runner.invoke(args=["photos", "prune", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert "deleted 2 files" in applied.output
    assert not old_orphan.exists() and not interrupted.exists()
    assert all(p.exists() for p in (referenced, young_orphan, stranger))
    assert client.get(f"{URL}/{kept_id}", headers=headers).status_code == 200
    # a shorter grace period reaches the younger orphan
    shorter = runner.invoke(args=["photos", "prune", "--older-than-hours", "1", "--apply"])
    assert "deleted 1 files" in shorter.output
    assert not young_orphan.exists()


def test_uploading_bytes_already_on_disk_makes_the_file_young_again(client, auth, upload_dir):
    orphan = _orphan(upload_dir, seed=4, hours_old=48)
    upload_id(client, auth("grid_worker"), seed=4)  # the same bytes: the file is reused
    assert time.time() - orphan.stat().st_mtime < 60
    assert stored_files(upload_dir) == [orphan]


def test_prune_with_no_upload_folder_finds_nothing(app, upload_dir):
    result = app.test_cli_runner().invoke(args=["photos", "prune", "--apply"])
    assert result.exit_code == 0, result.output
    assert "0 unreferenced files and 0 interrupted writes" in result.output
