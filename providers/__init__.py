"""Outbound adapters: one module per channel provider behind providers.base.Provider.

`carriers/` (issue 5) holds the order-tracking carrier adapters.
"""
