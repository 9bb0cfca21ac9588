"""The instant model server of the search benchmarks, in a process of its own.

It runs the project's fake OpenAI server (`symbiont.testing.openai_server`) and answers
every chat request at once with a new version of a one-line function (`return x + k`,
k = 1, 2, ...), named as the request's `def NAME(x: int)` line names it (else FUNCTION_NAME). Run by `bench_search.py` so that the server's CPU time and its threads are
not counted in (nor compete for the GIL with) the harness that is measured, the same for
symbiont and for OpenEvolve. Prints its base URL, then serves until stdin closes.

    python benchmarks/_instant_server.py FUNCTION_NAME
"""

from __future__ import annotations

import itertools
import re
import sys

from symbiont.testing.openai_server import FakeOpenAIServer


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bump"
    counter = itertools.count(1)

    def answer(body: dict) -> str:
        text = str(body.get("messages", [{}])[-1].get("content", ""))
        found = re.search(r"def (\w+)\(x: int\)", text)
        fn = found.group(1) if found else name
        return f"```python\ndef {fn}(x: int) -> int:\n    return x + {next(counter)}\n```"

    server = FakeOpenAIServer(handler=answer)
    with server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
