"""A local OpenAI-compatible chat server for the small real model (llama.cpp on the CPU).

Why not llama.cpp's own server: its built-in function-calling chat format ignores `tools`
unless `tool_choice` is set and drops `tool` messages, so the agent would never see its tool
results. This server renders every request with the model's *own* chat template (read from the
GGUF's metadata, the Jinja template the model was trained with, tools included), and parses
the `<tool_call>{...}</tool_call>` blocks the template asks for back into OpenAI tool calls. A
block whose JSON is broken stays in the text, as a real server would leave it: the agent must
cope with that.

One request at a time (a CPU model serves one generation at full speed, two at half each),
`n_threads` = the machine's cores. Every request and reply is appended to a JSON-lines log.

    python llama_server.py --model-dir DIR --port 0 --ready-file F [--log F]

Runs in the interpreter of the provisioned environment (numpy, jinja2, diskcache), with the
provisioned folder on `sys.path` for `llama_cpp`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL_ID = "qwen2.5-coder-0.5b-instruct-q4_k_m"
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_STOPS = ["<|im_end|>", "<|endoftext|>"]


class Engine:
    def __init__(self, model_dir: Path, n_ctx: int, threads: int) -> None:
        sys.path.insert(0, str(model_dir))
        import jinja2.sandbox
        import llama_cpp

        gguf = next(model_dir.glob("*.gguf"))
        self.llm = llama_cpp.Llama(
            str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
        self.template = env.from_string(self.llm.metadata["tokenizer.chat_template"])
        self.n_ctx = n_ctx
        self.lock = threading.Lock()

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        shown = []
        for m in messages:
            m = dict(m)
            if m.get("content") is None:
                m["content"] = ""
            elif isinstance(m["content"], list):  # content parts: keep the text ones
                m["content"] = "".join(
                    p.get("text", "") for p in m["content"] if isinstance(p, dict)
                )
            calls = []
            for c in m.get("tool_calls") or []:
                fn = dict(c.get("function", c))
                with contextlib.suppress(TypeError, ValueError):
                    fn["arguments"] = json.loads(fn.get("arguments") or "{}")
                calls.append({"function": fn})
            if calls:
                m["tool_calls"] = calls
            shown.append(m)
        fns = [t.get("function", t) for t in tools or []]
        return self.template.render(messages=shown, tools=fns or None, add_generation_prompt=True)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = self.render(body.get("messages") or [], body.get("tools"))
        n_prompt = len(self.llm.tokenize(prompt.encode("utf-8"), special=True))
        budget = self.n_ctx - n_prompt - 8
        if budget < 16:
            raise ValueError(
                f"the prompt has {n_prompt} tokens, over this server's context of {self.n_ctx}"
            )
        max_tokens = min(
            int(body.get("max_tokens") or body.get("max_completion_tokens") or 1024), budget
        )
        started = time.perf_counter()
        with self.lock:
            out = self.llm.create_completion(
                prompt,
                max_tokens=max_tokens,
                temperature=float(body.get("temperature", 0.7) or 0.0),
                top_p=float(body.get("top_p", 0.95) or 0.95),
                stop=_STOPS,
                seed=int(body["seed"]) if isinstance(body.get("seed"), int) else -1,
            )
        choice = out["choices"][0]
        text = choice["text"]
        calls = []
        if body.get("tools"):
            kept = text
            for m in _TOOL_CALL.finditer(text):
                try:
                    call = json.loads(m.group(1))
                    name, args = call["name"], call.get("arguments", {})
                except (ValueError, KeyError, TypeError):
                    continue  # broken JSON stays in the text
                calls.append(
                    {
                        "id": f"call_{len(calls)}_{int(time.time() * 1000) % 100000}",
                        "type": "function",
                        "function": {
                            "name": str(name),
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                )
                kept = kept.replace(m.group(0), "", 1)
            text = kept.strip() if calls else text
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        if calls:
            finish = "tool_calls"
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        usage = out.get("usage") or {}
        return {
            "id": out.get("id", "chatcmpl-local"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_ID,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": int(usage.get("prompt_tokens", n_prompt)),
                "completion_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", n_prompt)),
            },
            "x_seconds": round(time.perf_counter() - started, 3),
        }


def serve(engine: Engine, port: int, log_path: Path | None) -> ThreadingHTTPServer:
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route GET {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "the body is not JSON"}})
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route POST {self.path}"}})
                return
            if body.get("stream"):
                self._send(400, {"error": {"message": "this server does not stream"}})
                return
            try:
                reply = engine.complete(body)
            except ValueError as exc:
                self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
                return
            if log_path is not None:
                with log_lock, log_path.open("a") as f:
                    f.write(json.dumps({"request": body, "reply": reply}) + "\n")
            # The client may have given up (its timeout); the generation is done all the same.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(200, reply)

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    return httpd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file", type=Path, default=None)
    ap.add_argument("--log", type=Path, default=None)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    engine = Engine(args.model_dir, args.ctx, args.threads)
    httpd = serve(engine, args.port, args.log)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    if args.ready_file:
        args.ready_file.write_text(url)
    print(url, flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
