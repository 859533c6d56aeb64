#!/usr/bin/env python3
"""A coordinatord agent that signs what it sends (docs/PROTOCOL.md section 10).

Under `coordinatord run --trust FILE`, every message on coord:requests, coord:approvals and
coord:steps:results must be a JWS in compact serialization (RFC 7515) signed with EdDSA over
Ed25519 (RFC 8037):

    BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)

with the header {"alg":"EdDSA","kid":"<principal id>","iat":<signing time>} and the payload the
message's JSON exactly as it would be sent unsigned. The signature covers the ASCII of the first
two parts joined by the dot. That is all there is to it: this file is meant to be copied.

`iat` is the signing time in whole seconds since the Unix epoch (protocol v3). The daemon refuses
a message signed more than --signature-max-age (300 s) before its Redis's clock or more than 60 s
after it, and answers a second copy of the same signed bytes as a duplicate: sign each message
when you send it, and sign it again (a new `iat`) to send it again. A message that is not signed,
or whose signature does not verify, gets no reply at all. Under --reply-prefix P, `reply_to` must
start with P<agent id>: (this agent's own namespace, which its Redis user can read).

    pip install cryptography redis
    coordinatord keys generate --id cost-agent-1 --out cost-agent-1.key --role agent
    # paste the printed line into the trust file (with "customers" and "actions"), then:
    python3 signed_agent.py --id cost-agent-1 --key cost-agent-1.key recommend --customer cust-1
    python3 signed_agent.py --id cost-agent-1 --key cost-agent-1.key serve
    python3 signed_agent.py --id cost-agent-1 --key cost-agent-1.key sign '{"kind":"get_plan","plan_id":"…"}'

Redis: REDIS_URL (default redis://localhost:6379/0). With deploy/redis/users.acl, connect as the
agent's own Redis user (redis://cost-agent-1:PASSWORD@host:6379/0) and use reply keys under
`replies:<agent id>:`.
"""

import argparse
import base64
import json
import os
import sys
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_key(path: str) -> Ed25519PrivateKey:
    """The key file of `coordinatord keys generate`: base64 of the 32-byte Ed25519 seed."""
    with open(path, "rb") as f:
        seed = base64.b64decode(f.read().strip())
    if len(seed) != 32:
        raise ValueError(f"{path}: expected base64 of a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def sign(message: dict, kid: str, key: Ed25519PrivateKey, issued_at: int = None) -> str:
    """The compact JWS of `message`, signed as principal `kid` now (or at `issued_at`)."""
    iat = int(time.time()) if issued_at is None else int(issued_at)
    header = json.dumps({"alg": "EdDSA", "kid": kid, "iat": iat}, separators=(",", ":")).encode()
    payload = json.dumps(message, separators=(",", ":")).encode()
    signing_input = b64url(header) + "." + b64url(payload)
    signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url(signature)


class Agent:
    def __init__(self, agent_id: str, key: Ed25519PrivateKey, redis_url: str, prefix: str, reply_prefix: str):
        import redis  # only needed to talk to Redis; `sign` works without it

        self.id = agent_id
        self.key = key
        self.redis = redis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.replies = f"{reply_prefix}{agent_id}:{uuid.uuid4()}"

    def request(self, message: dict, timeout: float = 30) -> dict:
        """Pushes a signed request and waits for its reply."""
        message = dict(message, reply_to=self.replies)
        message.setdefault("request_id", str(uuid.uuid4()))
        self.redis.lpush(f"{self.prefix}:requests", sign(message, self.id, self.key))
        popped = self.redis.brpop([self.replies], timeout=timeout)
        if popped is None:
            raise TimeoutError(f"no reply on {self.replies} within {timeout} s")
        return json.loads(popped[1])

    def recommend(self, customer: str, action: str, resources: list, risk: str = "low", execute_now: bool = False) -> dict:
        """A `coordinate` request with one recommendation of this agent."""
        return self.request({
            "kind": "coordinate",
            "customer_id": customer,
            "execute_now": execute_now,
            "recommendations": [{
                "id": f"rec-{uuid.uuid4()}",
                "agent_id": self.id,  # must be the signer's principal id
                "type": "cost",
                "title": f"{action} on {', '.join(resources)}",
                "action": action,
                "risk_level": risk,
                "affected_resources": resources,
                "priority": 5,
                "confidence": 0.9,
            }],
        })

    def serve(self, run_step) -> None:
        """Runs the steps the daemon sends this agent (--executor agents), answering signed."""
        steps = f"{self.prefix}:agent:{self.id}:steps"
        while True:
            popped = self.redis.brpop([steps], timeout=5)
            if popped is None:
                continue
            step = json.loads(popped[1])
            result = {"plan_id": step["plan_id"], "step_id": step["step_id"], "rollback": step.get("rollback", False)}
            if "attempt" in step:
                result["attempt"] = step["attempt"]  # echo the dispatch's token (section 5)
            try:
                output, rollback_data = run_step(step)
                result.update(ok=True, result=output, rollback_data=rollback_data)
            except Exception as error:  # report the failure; the daemon rolls back
                result.update(ok=False, error=str(error))
            self.redis.lpush(f"{self.prefix}:steps:results", sign(result, self.id, self.key))


def example_step(step: dict):
    """Replace with the real work. Returns (result, rollback_data)."""
    print(f"{'rolling back' if step.get('rollback') else 'running'} {step['action']} of plan {step['plan_id']}", file=sys.stderr)
    time.sleep(0.1)
    return {"done": True}, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", required=True, help="this agent's principal id (its agent_id)")
    parser.add_argument("--key", required=True, help="the private key file of `coordinatord keys generate`")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    parser.add_argument("--prefix", default=os.environ.get("COORD_PREFIX", "coord"))
    parser.add_argument("--reply-prefix", default=os.environ.get("COORD_REPLY_PREFIX", "replies:"))
    commands = parser.add_subparsers(dest="command", required=True)
    sign_cmd = commands.add_parser("sign", help="print the JWS of a JSON message (for redis-cli LPUSH)")
    sign_cmd.add_argument("message")
    recommend = commands.add_parser("recommend", help="send one signed recommendation and print the reply")
    recommend.add_argument("--customer", required=True)
    recommend.add_argument("--action", default="scale_down")
    recommend.add_argument("--resource", action="append", default=None)
    recommend.add_argument("--risk", default="low")
    recommend.add_argument("--execute-now", action="store_true")
    commands.add_parser("serve", help="run this agent's steps (--executor agents)")
    args = parser.parse_args()

    key = load_key(args.key)
    if args.command == "sign":
        print(sign(json.loads(args.message), args.id, key))
        return
    agent = Agent(args.id, key, args.redis_url, args.prefix, args.reply_prefix)
    if args.command == "recommend":
        reply = agent.recommend(args.customer, args.action, args.resource or ["i-1"], args.risk, args.execute_now)
        print(json.dumps(reply, indent=2))
    else:
        agent.serve(example_step)


if __name__ == "__main__":
    main()
