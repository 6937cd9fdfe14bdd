"""Live chat (PROTOCOL.md section 4), by what it does.

- `access`: who may see or write to a conversation (404 / 403)
- `shapes`: the JSON of a conversation and a message, and a conversation's topic
- `conversations`: open, list, typing, join and leave, resolve, archive, rate
- `messages`: send (one entry: it picks its path itself), system messages, history
- `receipts`: delivered and read
- `agents`: agent profiles and status, the store's customers, canned replies, chat figures
- `attachments`: files in a conversation, and where their bytes are kept
- `errors`: `ChatError`, the one refusal of these actions

Verbs in the Zulip manner: `access_*` fetches and checks who may, the rest
changes state and queues its events on the session (they go out after the
commit). `me` is anything with `.id` and `.role` (api.auth.Principal).
"""
