"""Thin HTTP blueprints: parse, authorise, call an action, answer."""
