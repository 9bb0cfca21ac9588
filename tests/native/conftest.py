"""Native tests compile into a fresh on-disk cache (set before any kernel is declared)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["SYMBIONT_NATIVE_CACHE"] = tempfile.mkdtemp(prefix="symbiont-native-test-")
sys.path.insert(0, str(Path(__file__).parent))
