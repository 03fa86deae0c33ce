"""A chat-completions server on 127.0.0.1 for the teacher tests: the OpenAI protocol, over real HTTP.

    python tests/chat_server.py --mode script --answers answers.json [--actions actions.json] --log log.jsonl
    python tests/chat_server.py --mode model --model MODEL_DIR --log log.jsonl

Prints `port <N>` once it listens; GET /v1/models lists `--served` (404 with `--no-models`). Every request
is logged (one JSON line: question, action, the token-limit field it used, whether an Authorization header
came and its value's sha256) before it is answered.

- `script`: replies from `answers` (the last user message -> reply text). `actions` maps a question to the
  actions of its successive requests (the last one repeats); the default is "ok":
  ok, reasoning (the think block in `reasoning_content`), both (the think block in `reasoning_content`
  and, as well, in `content`), eos-reasoning (as reasoning, ending with DeepSeek's end-of-sequence text),
  plain (no think block), wrong, length (cut at max_tokens), 401, 429, 429-retry-after:<seconds>, 500,
  400 (OpenAI's error body: a temperature its reasoning models refuse), 400-flat (vLLM's older error body,
  `message` at the top: a context-length refusal), o1 (as OpenAI's reasoning models: a 400 with OpenAI's
  message to a request with `max_tokens`, else ok), malformed (a 200 whose body is not JSON), drop (close
  the connection without a reply), slow:<seconds>.
- `model`: the tiny model answers through transformers' generate with its chat template.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Error bodies as the servers send them: OpenAI's (and current vLLM's) under "error", older vLLM's flat.
OPENAI_MAX_TOKENS = {"error": {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
               "instead.", "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}
OPENAI_TEMPERATURE = {"error": {
    "message": "Unsupported value: 'temperature' does not support 0.6 with this model. Only the default (1) value "
               "is supported.", "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}
VLLM_CONTEXT = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                "message": "This model's maximum context length is 4096 tokens. However, you requested 8212 tokens "
                           "(20 in the messages, 8192 in the completion). Please reduce the length of the messages "
                           "or completion."}
TOKEN_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")


def completion(model: str, content: str, reasoning: str | None = None, finish_reason: str = "stop") -> dict:
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(content.split()) + 1, "total_tokens": 0}}


class Script:
    def __init__(self, answers: dict, actions: dict):
        self.answers, self.actions = answers, actions
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def action(self, question: str) -> str:
        with self.lock:
            n = self.seen.get(question, 0)
            self.seen[question] = n + 1
        plan = self.actions.get(question, ["ok"])
        return plan[min(n, len(plan) - 1)]


def make_handler(args, script: Script | None, generate):
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *unused):  # the JSON log is the record
            pass

        def reply(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out or its run was killed
                self.close_connection = True

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models" and not args.no_models:
                body = {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "test"}
                                                   for name in args.served]}
                return self.reply(200, json.dumps(body).encode())
            return self.reply(404, b'{"error": {"message": "not found"}}')

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path != "/v1/chat/completions":
                return self.reply(404, b'{"error": {"message": "not found"}}')
            question = [m["content"] for m in request["messages"] if m["role"] == "user"][-1]
            action = script.action(question) if script else "model"
            auth = self.headers.get("Authorization", "")
            limit_field = next((name for name in TOKEN_LIMIT_FIELDS if name in request), None)
            with log_lock, open(args.log, "a") as f:
                f.write(json.dumps({"question": question, "action": action, "model": request.get("model"),
                                    "limit_field": limit_field,
                                    "auth_sha256": hashlib.sha256(auth.encode()).hexdigest() if auth else None,
                                    "time": time.time()}) + "\n")
            model = request.get("model", "teacher")
            if action == "model":
                return self.reply(200, json.dumps(completion(model, generate(request))).encode())
            if action.startswith("slow:"):
                time.sleep(float(action.split(":", 1)[1]))
                action = "ok"
            answer = script.answers.get(question, "I do not know.")
            if action == "429":
                return self.reply(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}')
            if action.startswith("429-retry-after:"):
                return self.reply(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                                  Retry_After=action.split(":", 1)[1])
            if action == "401":
                return self.reply(401, b'{"error": {"message": "invalid api key", "type": "invalid_request_error"}}')
            if action == "o1":
                if limit_field == "max_tokens":
                    return self.reply(400, json.dumps(OPENAI_MAX_TOKENS).encode())
                action = "ok"
            if action in ("400", "400-flat"):
                return self.reply(400, json.dumps(OPENAI_TEMPERATURE if action == "400" else VLLM_CONTEXT).encode())
            if action == "500":
                return self.reply(500, b'{"error": {"message": "server error"}}')
            if action == "malformed":
                return self.reply(200, b'{"id": "chatcmpl-test", "choices": [')
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if action == "wrong":
                answer = "<think>\nguess\n</think>\n\nThe answer is \\boxed{-1}."
            if action in ("reasoning", "both", "eos-reasoning"):
                thought, _, final = answer.partition("</think>")
                thought = thought.replace("<think>", "").strip()
                if action == "eos-reasoning":
                    thought += "<｜end▁of▁sentence｜>"
                body = completion(model, answer if action == "both" else final.strip(), thought)
                return self.reply(200, json.dumps(body).encode())
            if action == "length":  # the right answer, but cut at max_tokens
                return self.reply(200, json.dumps(completion(model, answer, finish_reason="length")).encode())
            if action == "plain":
                answer = answer.replace("<think>", "").replace("</think>", "").strip()
            return self.reply(200, json.dumps(completion(model, answer)).encode())

    return Handler


def model_generator(path: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    lock = threading.Lock()

    def generate(request: dict) -> str:
        ids = tokenizer.apply_chat_template(request["messages"], add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with lock, torch.no_grad():
            limit = next((request[name] for name in TOKEN_LIMIT_FIELDS if request.get(name)), 32)
            out = model.generate(**ids, max_new_tokens=min(int(limit), 64),
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    return generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["script", "model"], required=True)
    parser.add_argument("--answers", help="JSON: question -> reply text (script mode)")
    parser.add_argument("--actions", help="JSON: question -> list of actions (script mode)")
    parser.add_argument("--model", help="model folder (model mode)")
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--served", nargs="+", default=["teacher-7b"], help="model names GET /v1/models lists")
    parser.add_argument("--no-models", action="store_true", help="GET /v1/models answers 404, as on a server "
                        "without a model list")
    args = parser.parse_args()
    script, generate = None, None
    if args.mode == "script":
        with open(args.answers) as f:
            answers = json.load(f)
        actions = {}
        if args.actions:
            with open(args.actions) as f:
                actions = json.load(f)
        script = Script(answers, actions)
    else:
        generate = model_generator(args.model)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args, script, generate))
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
