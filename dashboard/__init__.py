"""Proctor views.

``dashboard.terminal`` renders the live student grid and alert feed in a
terminal (``proctor demo``); the web console and the student exam page are
static pages served next to it.
"""
