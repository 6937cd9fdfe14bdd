"""Attachments: upload, send in a message, download, on both engines (the bytes in the database).

S3 as the store, and the same file served by another web process, are in
tests/integration/test_attachments_shared.py.
"""
from __future__ import annotations

import io

import pytest

from tests.support.chat import ADMIN, error, h, open_conv
from tests.support.files import PDF, PNG

BOTH_ENGINES = pytest.mark.engines("sqlite", "postgresql")



def upload(client, cid, data, name, declared="application/octet-stream", who="cust-1", role="customer"):
    return client.post(f"/api/v1/conversations/{cid}/attachments", headers=h(who, role),
                       data={"file": (io.BytesIO(data), name, declared)})


@BOTH_ENGINES
def test_an_image_goes_up_into_a_message_and_comes_back_to_the_participants_only(client, assigned, events):
    cid = assigned["id"]
    r = upload(client, cid, PNG, "ภาพ สินค้า.png", "image/png")
    assert r.status_code == 201, r.get_data(as_text=True)
    att = r.get_json()
    assert att["content_type"] == "image/png" and att["size"] == len(PNG) and att["filename"] == "ภาพ สินค้า.png"
    m = client.post(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1"),
                    json={"message_type": "image", "client_id": "pic-1",
                          "content": {"attachments": [{"id": att["id"], "filename": "lie.exe", "size": 1}]}})
    assert m.status_code == 201, m.get_data(as_text=True)
    # What the message carries is the server's description, not the client's.
    assert m.get_json()["content"]["attachments"] == [att]
    live = events.named("message:receive", f"conversation:{cid}")[-1].data
    assert live["content"]["attachments"] == [att]
    history = client.get(f"/api/v1/conversations/{cid}/messages", headers=h("agent-a", "agent")).get_json()
    assert history["messages"][-1]["content"]["attachments"] == [att]

    got = client.get(att["url"], headers=h("agent-a", "agent"))
    assert got.status_code == 200 and got.data == PNG and got.mimetype == "image/png"
    assert got.headers["Content-Disposition"].startswith("inline;")
    assert "filename*=UTF-8''%E0%B8%A0" in got.headers["Content-Disposition"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    assert client.get(att["url"], headers=h("cust-1")).data == PNG
    assert client.get(att["url"], headers=ADMIN).status_code == 200
    again = client.get(att["url"], headers={**h("cust-1"), "If-None-Match": got.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""

    # Another customer: not theirs, whether they ask for the bytes or only whether they changed.
    error(client.get(att["url"], headers=h("cust-2")), 403, "not_participant")
    error(client.get(att["url"], headers={**h("cust-2"), "If-None-Match": got.headers["ETag"]}), 403)
    error(client.get("/api/v1/attachments/nope", headers=h("cust-1")), 404, "attachment_not_found")


@BOTH_ENGINES
def test_a_file_is_a_download_and_a_message_names_only_its_own_conversations_files(client, assigned):
    cid = assigned["id"]
    att = upload(client, cid, PDF, "invoice.pdf").get_json()
    assert att["content_type"] == "application/pdf"
    got = client.get(att["url"], headers=h("agent-a", "agent"))
    assert got.headers["Content-Disposition"].startswith('attachment; filename="invoice.pdf"')

    other = open_conv(client, "cust-2", text="hi")
    theirs = upload(client, other["id"], PNG, "theirs.png", who="cust-2").get_json()
    before = len(client.get(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1")).get_json()["messages"])
    for content, code in (({"attachments": [{"id": theirs["id"]}]}, "invalid_attachment"),
                          ({"attachments": [{"id": "missing"}]}, "invalid_attachment"),
                          ({"attachments": [{"name": "x"}]}, "invalid_attachment"),
                          ({"attachments": [{"id": att["id"]}, {"id": att["id"]}]}, "invalid_attachment"),
                          ({"attachments": [{"id": f"a{i}"} for i in range(11)]}, None)):
        r = client.post(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1"),
                        json={"message_type": "file", "content": content})
        error(r, 400, code)
    # A PDF is no image; the agent may send the customer's file on as a file.
    error(client.post(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1"),
                      json={"message_type": "image", "content": {"attachments": [{"id": att["id"]}]}}),
          400, "invalid_attachment")
    after = client.get(f"/api/v1/conversations/{cid}/messages", headers=h("cust-1")).get_json()["messages"]
    assert len(after) == before   # nothing was written by a refusal
    r = client.post(f"/api/v1/conversations/{cid}/messages", headers=h("agent-a", "agent"),
                    json={"message_type": "file",
                          "content": {"text": "your invoice", "attachments": [{"id": att["id"]}]}})
    assert r.status_code == 201 and r.get_json()["content"]["attachments"] == [att]


def test_the_bytes_decide_the_type_and_the_limits_hold(client, assigned):
    cid = assigned["id"]
    # A page called a picture is stored as the text it is: served as text, never as an image.
    page = upload(client, cid, b"<html><script>alert(1)</script></html>", "cat.png", "image/png").get_json()
    assert page["content_type"] == "text/plain"
    error(upload(client, cid, b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(100), "x.exe",
                 "application/x-msdownload"), 415, "unsupported_type")
    error(upload(client, cid, bytes(range(256)) * 4, "blob.bin"), 415, "unsupported_type")
    error(upload(client, cid, b"x" * 950_000, "big.txt", "text/plain"), 413, "too_large")
    error(upload(client, cid, b"", "empty.txt", "text/plain"), 400, "empty_file")
    error(client.post(f"/api/v1/conversations/{cid}/attachments", headers=h("cust-1"), data={}), 400, "missing_file")
    error(upload(client, cid, PNG, "x.png", who="cust-2"), 403, "not_participant")
    assert upload(client, cid, PNG, "../../etc/passwd\x07.png").get_json()["filename"] == "passwd.png"
