"""LINE and Messenger customers over real HTTP: the platforms' signed webhooks into a web
process, routing and the answer's delivery by a worker to local stand-ins of the platforms'
send APIs (which check what the platforms check), on PostgreSQL and Redis."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest
import requests

from tests.support.clients import WsClient, auth, token
from tests.support.files import JPEG, PDF, PNG
from tests.support.peers import LinePeer, MessengerPeer
from tests.support.procs import WebServer, Worker

LINE_SECRET, APP_SECRET, VERIFY = "line-secret", "app-secret", "verify-me"
ADMIN = auth("adm", "admin")


@pytest.fixture
def platforms():
    line, messenger = LinePeer().start(), MessengerPeer().start()
    yield line, messenger
    line.stop()
    messenger.stop()


@pytest.fixture
def web(procs, stack_env, platforms):
    line, messenger = platforms
    env = {**stack_env, "SB_ROUTING_HOLD": "0", "SB_LINE_CHANNEL_SECRET": LINE_SECRET,
           "SB_LINE_CHANNEL_ACCESS_TOKEN": line.token, "SB_LINE_API_BASE": line.url,
           "SB_LINE_DATA_API_BASE": line.url,
           "SB_MESSENGER_APP_SECRET": APP_SECRET, "SB_MESSENGER_VERIFY_TOKEN": VERIFY,
           "SB_MESSENGER_PAGE_TOKEN": messenger.token, "SB_MESSENGER_API_BASE": messenger.url + "/v19.0"}
    server = procs.start(WebServer(env, procs.log_dir, "web"))
    procs.start(Worker(env, procs.log_dir, queues="routing,notifications", concurrency=2))
    return server


def line_body(user: str, event_id: str, text: str, message: dict | None = None) -> bytes:
    return json.dumps({"destination": "U" + "f" * 32, "events": [{
        "type": "message", "mode": "active", "timestamp": 1764800000000, "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False}, "replyToken": uuid.uuid4().hex,
        "source": {"type": "user", "userId": user},
        "message": message or {"type": "text", "id": str(uuid.uuid4().int)[:18], "quoteToken": "q",
                               "text": text}}]}).encode()


def post_line(web, body: bytes, secret: str = LINE_SECRET):
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return requests.post(f"{web.url}/api/v1/channels/line/webhook", data=body, timeout=10,
                         headers={"Content-Type": "application/json", "X-Line-Signature": sig})


def messenger_body(psid: str, mid: str, text: str | None, echo: bool = False, attachments=None) -> bytes:
    message = {"mid": mid, **({"text": text} if text else {}), **({"is_echo": True} if echo else {}),
               **({"attachments": attachments} if attachments else {})}
    return json.dumps({"object": "page", "entry": [{"id": "PAGE1", "time": 1764800000000, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": "PAGE1"}, "timestamp": 1764800000000,
        "message": message}]}]}).encode()


def post_messenger(web, body: bytes, secret: str = APP_SECRET):
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(f"{web.url}/api/v1/channels/messenger/webhook", data=body, timeout=10,
                         headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig})


def conversations_of(web, customer_id: str) -> list[dict]:
    got = requests.get(f"{web.url}/api/v1/conversations?limit=100", headers=ADMIN, timeout=10).json()
    return [c for c in got["conversations"] if c["customer_id"] == customer_id]


def messages(web, cid: str) -> list[dict]:
    return requests.get(f"{web.url}/api/v1/conversations/{cid}/messages?limit=50", headers=ADMIN,
                        timeout=10).json()["messages"]


def agent_watching(web, conversation_ids: list[str]) -> tuple[str, WsClient]:
    """An agent, connected, then online: once routing has given them every conversation
    named, subscribed to each."""
    agent = f"ag-{uuid.uuid4().hex[:6]}"
    requests.put(f"{web.url}/api/v1/agents/{agent}", headers=ADMIN, timeout=10,
                 json={"name": "Nok", "skills": [], "concurrent_limit": 5}).raise_for_status()
    watcher = WsClient(web.url, token(agent, "agent"))
    requests.put(f"{web.url}/api/v1/agents/me/status", headers=auth(agent, "agent"), timeout=10,
                 json={"status": "online"}).raise_for_status()
    seen(watcher, {("agent:assigned", cid) for cid in conversation_ids}, key="conversation_id")
    for cid in conversation_ids:
        watcher.subscribe(f"conversation:{cid}")
    return agent, watcher


def resolve(web, *conversation_ids: str) -> None:
    """The session's database is shared: leave no conversation to be requeued for another
    test's agent once this one's agent has gone."""
    for cid in conversation_ids:
        requests.post(f"{web.url}/api/v1/conversations/{cid}/resolve", headers=ADMIN, timeout=10).raise_for_status()


def seen(watcher: WsClient, wanted: set[tuple[str, str]], key: str = "message_id",
         timeout: float = 60) -> dict[tuple[str, str], dict]:
    """Waits for every (event, id) in `wanted`, in any order; their frames."""
    got: dict[tuple[str, str], dict] = {}

    def match(frame: dict) -> bool:
        pair = (frame.get("event"), (frame.get("data") or {}).get(key))
        if pair in wanted:
            got[pair] = frame
        return set(got) == wanted
    watcher.until(match, timeout)
    return got


def test_line_messages_open_one_conversation_stored_once_and_answers_go_back(web, platforms):
    line, _ = platforms
    user = "U" + uuid.uuid4().hex
    customer = f"line:{user}"
    refused = post_line(web, line_body(user, "01HBAD", "forged"), secret="not-the-secret")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_signature"
    unsigned = requests.post(f"{web.url}/api/v1/channels/line/webhook", data=line_body(user, "01HX", "x"),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert unsigned.status_code == 401
    assert conversations_of(web, customer) == []          # nothing stored

    first = post_line(web, line_body(user, "01HFIRST", "สวัสดีค่ะ where is my order?"))
    assert first.status_code == 200, first.text
    again = post_line(web, line_body(user, "01HFIRST", "สวัสดีค่ะ where is my order?"))   # LINE's redelivery
    assert again.json()["received"][0]["created"] is False
    assert post_line(web, line_body(user, "01HSECOND", "hello?")).status_code == 200
    (conv,) = conversations_of(web, customer)
    assert conv["metadata"]["source"] == "line"
    assert [m["content"]["text"] for m in messages(web, conv["id"]) if m["sender_type"] == "customer"] == [
        "สวัสดีค่ะ where is my order?", "hello?"]

    agent, watcher = agent_watching(web, [conv["id"]])
    try:
        reply = requests.post(f"{web.url}/api/v1/conversations/{conv['id']}/messages", timeout=10,
                              headers=auth(agent, "agent"), json={"content": {"text": "It ships today."}})
        assert reply.status_code == 201, reply.text
        got = seen(watcher, {("message:delivered", reply.json()["id"])})
        assert got[("message:delivered", reply.json()["id"])]["data"]["user_id"] == customer
    finally:
        watcher.close()
    (pushed,) = line.wait_for(lambda items: len(items) >= 1)
    assert pushed["to"] == user and pushed["messages"] == [{"type": "text", "text": "It ships today."}]
    stored = next(m for m in messages(web, conv["id"]) if m["id"] == reply.json()["id"])
    assert stored["status"] == "delivered"
    resolve(web, conv["id"])


def test_a_refused_answer_is_kept_on_the_message_and_a_failing_platform_is_retried(web, platforms):
    line, _ = platforms
    gone, flaky = "U" + uuid.uuid4().hex, "U" + uuid.uuid4().hex
    line.refuse.add(gone)
    for user in (gone, flaky):
        assert post_line(web, line_body(user, uuid.uuid4().hex, "hi")).status_code == 200
    convs = {u: conversations_of(web, f"line:{u}")[0]["id"] for u in (gone, flaky)}
    agent, watcher = agent_watching(web, list(convs.values()))
    try:
        line.fail_next = 2   # the next two pushes meet a 500: retried with backoff
        sent = {u: requests.post(f"{web.url}/api/v1/conversations/{cid}/messages", timeout=10,
                                 headers=auth(agent, "agent"), json={"content": {"text": f"for {u[:6]}"}}).json()
                for u, cid in convs.items()}
        got = seen(watcher, {("message:delivery_failed", sent[gone]["id"]),
                             ("message:delivered", sent[flaky]["id"])})
        assert "400" in got[("message:delivery_failed", sent[gone]["id"])]["data"]["error"]
    finally:
        watcher.close()
    kept = next(m for m in messages(web, convs[gone]) if m["id"] == sent[gone]["id"])
    assert kept["status"] == "sent" and "400" in kept["content"]["metadata"]["delivery_error"]
    resolve(web, *convs.values())


def test_messenger_verification_webhook_and_send_api(web, platforms):
    _, messenger = platforms
    verify = f"{web.url}/api/v1/channels/messenger/webhook"
    ok = requests.get(verify, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                      "hub.challenge": "1158201444"}, timeout=10)
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert requests.get(verify, params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                        "hub.challenge": "1"}, timeout=10).status_code == 403
    psid = str(uuid.uuid4().int)[:16]
    assert post_messenger(web, messenger_body(psid, "m_1", "hi"), secret="wrong").status_code == 401
    assert conversations_of(web, f"fb:{psid}") == []
    assert post_messenger(web, messenger_body(psid, "m_1", "Do you ship to Chiang Mai?")).status_code == 200
    assert post_messenger(web, messenger_body(psid, "m_1", "Do you ship to Chiang Mai?")).status_code == 200
    assert post_messenger(web, messenger_body(psid, "m_echo", "page's own", echo=True)).status_code == 200
    (conv,) = conversations_of(web, f"fb:{psid}")
    assert conv["metadata"]["source"] == "facebook"
    assert [m["content"]["text"] for m in messages(web, conv["id"]) if m["sender_type"] == "customer"] == [
        "Do you ship to Chiang Mai?"]
    agent, watcher = agent_watching(web, [conv["id"]])
    try:
        reply = requests.post(f"{web.url}/api/v1/conversations/{conv['id']}/messages", timeout=10,
                              headers=auth(agent, "agent"), json={"content": {"text": "Yes, in 2 days."}}).json()
        seen(watcher, {("message:delivered", reply["id"])})
    finally:
        watcher.close()
    (sent,) = messenger.wait_for(lambda items: len(items) >= 1)
    assert sent == {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": "Yes, in 2 days."}}
    resolve(web, conv["id"])


def test_images_and_files_from_line_and_messenger_arrive_as_attachments(web, platforms):
    line, messenger = platforms
    user, psid = "U" + uuid.uuid4().hex, str(uuid.uuid4().int)[:16]
    photo_id, pdf_id, lost_id = (str(uuid.uuid4().int)[:18] for _ in range(3))
    line.contents[photo_id], line.contents[pdf_id] = PNG, PDF
    messenger.files["receipt.jpg"] = JPEG

    for event_id, message in (
            ("01HIMG", {"type": "image", "id": photo_id, "quoteToken": "q", "contentProvider": {"type": "line"}}),
            ("01HIMG", {"type": "image", "id": photo_id, "quoteToken": "q", "contentProvider": {"type": "line"}}),
            ("01HPDF", {"type": "file", "id": pdf_id, "fileName": "ใบเสร็จ.pdf", "fileSize": len(PDF)}),
            ("01HLOST", {"type": "image", "id": lost_id, "quoteToken": "q", "contentProvider": {"type": "line"}})):
        assert post_line(web, line_body(user, event_id, "", message)).status_code == 200
    cdn = f"{messenger.url}/cdn/receipt.jpg?oh=signature"
    assert post_messenger(web, messenger_body(psid, "m_img", None, attachments=[
        {"type": "image", "payload": {"url": cdn}}])).status_code == 200

    (conv,) = conversations_of(web, f"line:{user}")
    image, pdf, lost = [m for m in messages(web, conv["id"]) if m["sender_type"] == "customer"]
    assert image["message_type"] == "image" and pdf["message_type"] == "file"
    (att,) = image["content"]["attachments"]
    assert att["content_type"] == "image/png" and att["filename"] == f"line-{photo_id}.png"
    assert requests.get(web.url + att["url"], headers=ADMIN, timeout=10).content == PNG
    assert pdf["content"]["attachments"][0]["filename"] == "ใบเสร็จ.pdf"
    # LINE no longer has it: the agent still sees that an image came, and why it is missing.
    assert lost["message_type"] == "text" and lost["content"]["text"].startswith("[image message] (not fetched:")

    (fb,) = conversations_of(web, f"fb:{psid}")
    (photo,) = [m for m in messages(web, fb["id"]) if m["sender_type"] == "customer"]
    assert photo["message_type"] == "image"
    assert photo["content"]["attachments"][0]["content_type"] == "image/jpeg"
    assert requests.get(web.url + photo["content"]["attachments"][0]["url"], headers=ADMIN, timeout=10).content == JPEG
    resolve(web, conv["id"], fb["id"])
