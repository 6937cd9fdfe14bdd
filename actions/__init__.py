"""Domain logic: takes a session and plain values, changes state, publishes.

Nothing here imports Flask or Celery (DESIGN.md, rules of the inside).
"""
