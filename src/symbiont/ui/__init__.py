"""`symbiont ui`: a web UI over the store — capabilities, lineages, runs, searches, transcripts.

symbiont ui                           # http://127.0.0.1:8707/, read-only
symbiont ui --allow-actions           # run / deprecate / restore / activate from the pages
SYMBIONT_UI_TOKEN=... symbiont ui --host 0.0.0.0

handle = runtime.serve_ui()           # in-process: activation swaps the live function
"""

from __future__ import annotations

from symbiont.ui.app import UIConfig, create_app
from symbiont.ui.server import RunningUI, UnsafeBind, check_bind, serve, start_in_thread

__all__ = [
    "RunningUI",
    "UIConfig",
    "UnsafeBind",
    "check_bind",
    "create_app",
    "serve",
    "start_in_thread",
]
