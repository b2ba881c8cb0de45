"""The owner's dashboard: a page on 127.0.0.1 beside a running character.

``roomverse node --dashboard 127.0.0.1:PORT`` serves it (:func:`serve_dashboard`): the
character's status and away/asleep switch, its memory (visits, conversations, relations,
with notes the owner can edit), the directory and a live log. Private by construction:
loopback unless the owner says otherwise, and a token drawn at each start on every request.
"""

from node.dashboard.app import create_app
from node.dashboard.serve import check_bind, serve_dashboard

__all__ = ["check_bind", "create_app", "serve_dashboard"]
