"""Attachments are shared by every web process: kept in PostgreSQL by default, or in an
S3-compatible store (moto's S3 server over real HTTP stands in for it), never on a host's disk."""
from __future__ import annotations

import uuid

import boto3
import psycopg
import pytest
import requests
from moto.server import ThreadedMotoServer

from tests.support.clients import auth
from tests.support.files import PNG
from tests.support.procs import WebServer, free_port

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture
def s3():
    """An S3 endpoint on 127.0.0.1 with a bucket of this test's own."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test-key", aws_secret_access_key="test-secret")
    bucket = f"sb-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield url, bucket, client
    server.stop()


def conversation(web, customer: str) -> str:
    r = requests.post(f"{web.url}/api/v1/conversations", headers=auth(customer, "customer"), timeout=10,
                      json={"text": "here is a photo of the damage"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload(web, customer: str, cid: str, data: bytes, name: str) -> dict:
    r = requests.post(f"{web.url}/api/v1/conversations/{cid}/attachments", headers=auth(customer, "customer"),
                      files={"file": (name, data, "image/png")}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def fetch(web, who: str, att: dict, role: str = "customer") -> requests.Response:
    return requests.get(web.url + att["url"], headers=auth(who, role), timeout=10)


def test_a_file_sent_through_one_process_is_served_by_another_from_postgresql(procs, stack_env):
    a = procs.start(WebServer(stack_env, procs.log_dir, "web-a"))
    b = procs.start(WebServer(stack_env, procs.log_dir, "web-b"))
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    cid = conversation(a, customer)
    att = upload(a, customer, cid, PNG, "damage.png")
    sent = requests.post(f"{b.url}/api/v1/conversations/{cid}/messages", headers=auth(customer, "customer"), timeout=10,
                         json={"message_type": "image", "content": {"attachments": [{"id": att["id"]}]}})
    assert sent.status_code == 201 and sent.json()["content"]["attachments"] == [att]
    got = fetch(b, customer, att)
    assert got.status_code == 200 and got.content == PNG
    assert fetch(b, f"other-{customer}", att).status_code == 403
    with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
        stored = conn.execute("SELECT data FROM attachment_blobs WHERE attachment_id = %s", (att["id"],)).fetchone()
    assert bytes(stored[0]) == PNG


def test_in_s3_and_what_was_stored_before_the_move_still_served(procs, stack_env, s3):
    url, bucket, client = s3
    s3_settings = {**S3_CREDENTIALS, "SB_ATTACHMENT_S3_BUCKET": bucket, "SB_ATTACHMENT_S3_ENDPOINT_URL": url,
                   "SB_ATTACHMENT_S3_REGION": "us-east-1"}
    # Before the move (the database, with the bucket known for reading) and after it (S3).
    before = procs.start(WebServer({**stack_env, **s3_settings}, procs.log_dir, "web-database"))
    after = procs.start(WebServer({**stack_env, **s3_settings, "SB_ATTACHMENT_STORAGE": "s3"},
                                  procs.log_dir, "web-s3"))
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    cid = conversation(before, customer)
    old = upload(before, customer, cid, PNG, "old.png")
    new = upload(after, customer, cid, PNG + b"\x00new", "new.png")
    assert client.get_object(Bucket=bucket, Key=f"attachments/{new['id']}")["Body"].read() == PNG + b"\x00new"
    with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
        in_database = {row[0] for row in conn.execute(
            "SELECT attachment_id FROM attachment_blobs WHERE attachment_id IN (%s, %s)", (old["id"], new["id"]))}
    assert in_database == {old["id"]}
    for web in (before, after):
        assert fetch(web, customer, old).content == PNG
        assert fetch(web, customer, new).content == PNG + b"\x00new"
        assert fetch(web, "boss", new, "admin").status_code == 200
        assert fetch(web, f"other-{customer}", new).status_code == 403
