"""Stock and reservations (PROTOCOL.md section 7), by what they do.

- `stock`: levels per product, variant and location; set, adjust, read;
  availability, the audit row and the events of every change, low stock
- `reservations`: hold (the reference path, in the caller's transaction),
  commit, release, expire
- `batch`: holds that arrive together in a process, in one statement
  (`hold_together`, for a caller that serves many)
"""
