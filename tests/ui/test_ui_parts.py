"""The UI's small parts: escaping by construction, the pictures, the bind rule."""

from __future__ import annotations

import pytest

import symbiont
from symbiont.ui import UnsafeBind, check_bind
from symbiont.ui.html import Safe, fmt, join
from symbiont.ui.svg import Node, heat_map, line_plot, lineage_tree


def test_values_are_escaped_unless_they_are_markup() -> None:
    evil = "<script>alert('x')</script>"
    out = fmt("<td>{}</td>", evil)
    assert out == "<td>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</td>"
    assert fmt("<p>{}</p>", out).count("<td>") == 1  # Safe passes through once
    assert "<script>" not in evil + out and isinstance(evil + out, Safe)
    assert (out + evil).endswith("&lt;/script&gt;")
    assert join([evil, out]).startswith("&lt;script&gt;")
    assert fmt('<a href="{}">', '" onmouseover="x') == '<a href="&quot; onmouseover=&quot;x">'


def test_tree_has_a_node_per_revision_and_an_edge_per_parent() -> None:
    nodes = [
        Node(0, (), "accepted", "promote", 1.0, "/r/0"),
        Node(1, (0,), "accepted", "promote", 2.0, "/r/1", active=True),
        Node(2, (0,), "rejected", "trial", None, "/r/2"),
        Node(3, (1, 2), "accepted", "promote", 3.0, "/r/3"),  # a crossover
        Node(4, (4,), "rejected", "parse", None, "/r/4"),  # a self-loop must not hang
    ]
    svg = lineage_tree(nodes)
    assert svg.count("<circle") == 5
    assert svg.count("<line") == 5 and svg.count('class="edge cross"') == 2
    assert 'class="node accepted active"' in svg


def test_plots_skip_what_they_cannot_draw() -> None:
    assert "no scores" in line_plot([], x_label="x", y_label="y")
    svg = line_plot([(0, 1.0, "accepted"), (1, float("nan"), "rejected")], x_label="x", y_label="y")
    assert svg.count("<circle") == 1
    assert "no grid cells" in heat_map({}, (10, 10))
    assert heat_map({(0, 0): 1.0, (2, 1): 3.0}, (3, 2)).count("<rect") == 6


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_only_loopback_without_a_token(host: str) -> None:
    with pytest.raises(UnsafeBind, match="not a loopback address"):
        check_bind(host, None)
    check_bind(host, "token")
    for loopback in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        check_bind(loopback, None)


def test_serve_ui_needs_a_store() -> None:
    with symbiont.Runtime(store=False) as rt, pytest.raises(symbiont.SymbiontError, match="store"):
        rt.serve_ui()
