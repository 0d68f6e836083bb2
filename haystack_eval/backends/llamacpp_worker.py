"""The process that holds a llama.cpp model for the ``llamacpp`` backend: ``python -m`` this module.

It runs apart from the sweep so that a crash inside llama.cpp (a segfault or a failed GGML_ASSERT,
which no Python code can catch) ends this process, not the sweep: the backend sees the pipe close,
records the cell as an error or retries it in a new worker, and goes on.

Protocol, over stdin and stdout: each message is a 4-byte big-endian length and that many bytes of
JSON. The worker first sends ``{"ready": true}`` (or ``{"error": "load", ...}``), then answers each
request in order. Requests: ``{"op": "complete", "text", "max_tokens", "stop"}``,
``{"op": "chat", "messages", "max_tokens"}`` and ``{"op": "clear"}``. Replies:
``{"text", "finish_reason", "usage", "reused"}`` or ``{"error": "context" | "invalid", "message"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from pathlib import Path
from typing import IO, Any

__all__ = ["BATCH", "read_message", "write_message"]

BATCH = 512  # prompt tokens per forward pass: llama.cpp's default, a good fit for small CPU models
_HEADER = struct.Struct(">I")


def write_message(stream: IO[bytes], message: dict[str, Any]) -> None:
    """Send one framed JSON message."""
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """Receive one framed JSON message; None when the other side has closed the pipe."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        return None
    message: dict[str, Any] = json.loads(data)
    return message


def _reusable(llama: Any, tokens: list[int]) -> int:
    """Prompt tokens llama.cpp will take from its cache: the common prefix with what it holds, in whole batches."""
    held = llama._input_ids[: llama.n_tokens]  # the tokens whose KV entries the context holds
    prefix = int(llama.longest_token_prefix(held, tokens))
    # Keep only whole batches of the prefix, so the rest is evaluated in the same 512-token chunks as
    # from an empty cache: the same arithmetic, so the order of the cells cannot change an answer.
    aligned = min(prefix, len(tokens) - 1) // BATCH * BATCH
    if aligned < llama.n_tokens:
        llama._ctx.kv_cache_seq_rm(-1, aligned, -1)
        llama.n_tokens = aligned
    return aligned


def _clear(llama: Any) -> None:
    llama._ctx.kv_cache_clear()
    llama.reset()


def answer(llama: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One request's reply (a plain dict, ready to send)."""
    if request["op"] == "clear":
        _clear(llama)
        return {"cleared": True}
    try:
        if request["op"] == "complete":
            tokens = llama.tokenize(request["text"].encode("utf-8"), add_bos=True, special=False)
            reused = _reusable(llama, tokens)
            # Token ids, not text: the prompt is tokenized once, here.
            out = llama.create_completion(tokens, max_tokens=request["max_tokens"], temperature=0.0, top_k=1,
                                          stop=request["stop"] or None)
            choice = out["choices"][0]
            text = choice["text"]
        else:
            # The chat template renders the tokens inside llama-cpp-python, where its own prefix reuse
            # could make an answer depend on the order of the cells: start from an empty cache.
            _clear(llama)
            reused = 0
            out = llama.create_chat_completion(messages=request["messages"], max_tokens=request["max_tokens"],
                                               temperature=0.0, top_k=1)
            choice = out["choices"][0]
            text = choice["message"]["content"] or ""
    except ValueError as exc:
        kind = "context" if "context window" in str(exc) else "invalid"
        return {"error": kind, "message": str(exc)}
    return {"text": text, "finish_reason": choice.get("finish_reason"), "usage": out.get("usage") or {},
            "reused": reused}


def serve(path: Path, n_ctx: int, threads: int, inbox: IO[bytes], outbox: IO[bytes]) -> int:
    """Load the model, then answer requests until stdin closes."""
    from haystack_eval.backends.gguf import load_llama
    from haystack_eval.errors import ConfigError

    try:
        llama = load_llama(path, n_ctx=n_ctx, n_batch=BATCH, n_threads=threads, seed=0)
    except ConfigError as exc:
        write_message(outbox, {"error": "load", "message": exc.line()})
        return 1
    write_message(outbox, {"ready": True})
    while (request := read_message(inbox)) is not None:
        write_message(outbox, answer(llama, request))
    llama.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--n-ctx", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    # Replies go out on a private copy of stdout; fd 1 itself now points at stderr, so that anything
    # native code prints cannot corrupt the framing.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return serve(args.model, args.n_ctx, args.threads, sys.stdin.buffer, outbox)


if __name__ == "__main__":
    raise SystemExit(main())
